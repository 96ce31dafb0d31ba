"""IQL (--algo iql, docs/algorithm.md section 2.9): its losses against hand-computed numbers, its
targets against the networks, and whole runs through the shared loop (files, summary, exact resume
after an interruption, several seeds in one process, option errors)."""

import dataclasses
import json
import math
import shutil
from pathlib import Path

import batches
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from calql.agent import losses
from calql.agent.iql import critic_target, iql_update_step, min_target_q
from calql.agent.state import AgentState, IQLAgentState, create_agent, new_agent
from calql.agent.update import update, update_step
from calql.cli import main
from calql.config import (
    AgentConfig,
    ConfigError,
    TrainConfig,
    config_from_dict,
    differences,
    unread_options,
    validate,
)
from calql.data.transitions import Transitions
from calql.methods import METHODS, label, method_of
from calql.options import parse_train_args
from calql.rundir import CHECKPOINT_FOLDER, CONFIG_FILE, METRICS_FILE, SUMMARY_FILE
from calql.training import checkpoint
from calql.training.loop import train_seeds
from calql.training.metrics import read_config

TINY_AGENT = AgentConfig(critic_hidden_dims=(8, 8), policy_hidden_dims=(8, 8), iql_temperature=3.0)
OBS, ACT = 3, 2

RUN = [
    "--algo",
    "iql",
    "--task",
    "pointmaze-umaze",
    "--offline-steps",
    "200",
    "--online-steps",
    "600",
    "--dataset-size",
    "4000",
    "--eval-episodes",
    "1",
    "--eval-every",
    "300",
    "--start-evals",
    "0",
    "--offline-eval-every",
    "100",
    "--updates-per-call",
    "25",
    "--batch-size",
    "16",
    "--checkpoint-every",
    "100",
    "--keep-checkpoints",
    "20",
    "--agent.critic-hidden-dims",
    "8",
    "8",
    "--agent.policy-hidden-dims",
    "8",
    "8",
    "--no-tensorboard",
]


def random_batch(seed: int, batch_size: int = 6, leading: tuple[int, ...] = ()) -> Transitions:
    return batches.random_batch(seed, OBS, ACT, batch_size, leading)


def iql_agent(seed: int = 0, config: AgentConfig = TINY_AGENT) -> IQLAgentState:
    agent = new_agent("iql", jax.random.PRNGKey(seed), OBS, ACT, config)
    assert isinstance(agent, IQLAgentState)
    return agent


# The losses, by hand


def test_expectile_loss_weighs_positive_differences_by_tau():
    # u = Q - V = [2, -1, 0.5, -3], tau 0.9: weights [0.9, 0.1, 0.9, 0.1] on [4, 1, 0.25, 9].
    difference = jnp.array([2.0, -1.0, 0.5, -3.0])
    assert float(losses.expectile_loss(difference, 0.9)) == pytest.approx((3.6 + 0.1 + 0.225 + 0.9) / 4)
    # tau 0.5 is half the mean squared error; tau 0.1 mirrors tau 0.9.
    assert float(losses.expectile_loss(difference, 0.5)) == pytest.approx(0.5 * (4 + 1 + 0.25 + 9) / 4)
    assert float(losses.expectile_loss(-difference, 0.1)) == pytest.approx(
        float(losses.expectile_loss(difference, 0.9))
    )


def test_awr_weights_are_exponentiated_advantages_clipped_at_100():
    q = jnp.array([1.0, 0.0, 3.0, 0.2])
    v = jnp.array([0.5, 0.0, -1.0, 0.4])
    # beta 2: exp([1, 0, 8, -0.4]) with e^8 = 2981 clipped to 100.
    weights = np.asarray(losses.awr_weights(q, v, 2.0))
    np.testing.assert_allclose(weights, [math.e, 1.0, 100.0, math.exp(-0.4)], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(losses.awr_weights(q, v, 0.0)), np.ones(4))  # beta 0: behaviour cloning
    # -mean(w log pi): weights [1, 2], log-probs [-1, -3] -> (1 + 6) / 2.
    assert float(losses.awr_loss(jnp.array([1.0, 2.0]), jnp.array([-1.0, -3.0]))) == pytest.approx(3.5)


def test_awr_weights_carry_no_gradient_into_q_or_v():
    def loss(q, v):
        return losses.awr_loss(losses.awr_weights(q, v, 1.0), jnp.array([-1.0, -2.0]))

    grads = jax.grad(loss, argnums=(0, 1))(jnp.array([0.3, 0.1]), jnp.array([0.0, 0.2]))
    for grad in grads:
        np.testing.assert_array_equal(np.asarray(grad), np.zeros(2))


def test_value_backup_masks_the_next_value_at_terminals():
    # gamma 0.9: 1 + 0.9 * 10 = 10 where not done; the reward alone where done.
    target = losses.value_backup(jnp.array([1.0, 2.0]), jnp.array([0.0, 1.0]), jnp.array([10.0, 10.0]), 0.9)
    np.testing.assert_allclose(np.asarray(target), [10.0, 2.0])


# The targets, against the networks


def _with_target_apart(agent: IQLAgentState) -> IQLAgentState:
    """The target critics moved away from the critics, so a test can tell which one a loss reads."""
    shifted = jax.tree.map(lambda p: p + 0.5 * jnp.sign(p + 0.1), agent.target_critic_params)
    return agent.replace(target_critic_params=shifted)


def test_the_value_regresses_on_the_min_of_the_target_critics_at_dataset_actions():
    agent = _with_target_apart(iql_agent())
    batch = random_batch(0)
    per_critic = agent.critic.apply_fn(agent.target_critic_params, batch.observations, batch.actions)
    assert per_critic.shape == (2, 6)
    expected = np.min(np.asarray(per_critic), axis=0)
    np.testing.assert_allclose(np.asarray(min_target_q(agent, batch)), expected, rtol=1e-6)
    online = np.asarray(agent.critic.apply_fn(agent.critic.params, batch.observations, batch.actions)).min(axis=0)
    assert not np.allclose(online, expected)  # the test can tell the critics from their targets
    # The step's value loss is the expectile loss of exactly that target against V(s) before the step.
    _, metrics = iql_update_step(agent, batch)
    value = np.asarray(agent.value.apply_fn(agent.value.params, batch.observations))
    difference = expected - value
    by_hand = np.mean(np.where(difference > 0, 0.9, 0.1) * difference**2)
    assert float(metrics["value/loss"]) == pytest.approx(by_hand, rel=1e-5)
    assert float(metrics["actor/advantage"]) != 0.0


def test_the_critic_target_is_the_updated_value_at_the_next_state_with_the_done_mask():
    agent = iql_agent()
    batch = random_batch(1)
    target = np.asarray(critic_target(agent.value, batch, 0.99))
    next_value = np.asarray(agent.value.apply_fn(agent.value.params, batch.next_observations))
    np.testing.assert_allclose(target, batch.rewards + 0.99 * (1 - batch.dones) * next_value, rtol=1e-6)
    np.testing.assert_array_equal(target[batch.dones == 1], batch.rewards[batch.dones == 1])
    # The step's critics regress on V after V's own step (the IQL authors' order).
    new_agent_state, metrics = iql_update_step(agent, batch)
    after = np.asarray(critic_target(new_agent_state.value, batch, TINY_AGENT.discount))
    assert float(metrics["critic/target"]) == pytest.approx(after.mean(), rel=1e-5)
    before = np.asarray(critic_target(agent.value, batch, TINY_AGENT.discount))
    assert not np.allclose(after, before)


def test_a_step_trains_v_the_critics_and_the_policy_network_and_nothing_else():
    agent = iql_agent()
    stepped, _ = update(agent, random_batch(2, leading=(3,)), np.ones(3, bool))
    changed = lambda a, b: any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))  # noqa: E731
    for name in ("actor", "critic", "value"):
        params, new_params = getattr(agent, name).params["params"], getattr(stepped, name).params["params"]
        for layer in params:
            if layer not in ("log_std_multiplier", "log_std_offset"):
                assert changed(params[layer], new_params[layer]), f"{name}/{layer} did not move"
    assert changed(agent.target_critic_params, stepped.target_critic_params)
    for frozen in ("log_std_multiplier", "log_std_offset"):  # AWR leaves the SAC-side log-std scalars alone
        assert float(stepped.actor.params["params"][frozen]) == float(agent.actor.params["params"][frozen])
    assert not changed(agent.log_temperature, stepped.log_temperature)
    assert not changed(agent.log_lagrange, stepped.log_lagrange)


def test_scanned_iql_update_equals_a_python_loop_and_is_deterministic():
    agent = iql_agent()
    batches = random_batch(3, leading=(4,))
    scanned, _ = update(agent, batches, np.ones(4, bool))
    looped, step = agent, jax.jit(update_step)
    for i in range(4):
        looped, _ = step(looped, jax.tree.map(lambda x, i=i: x[i], batches))
    for a, b in zip(jax.tree.leaves(scanned), jax.tree.leaves(looped), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    again, _ = update(iql_agent(), batches, np.ones(4, bool))
    for a, b in zip(jax.tree.leaves(scanned), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_online_actions_at_the_bound_keep_the_loss_finite():
    agent = iql_agent()
    batch = random_batch(4)
    batch = batch._replace(actions=np.sign(batch.actions).astype(np.float32))  # tanh rounds to +-1 in float32
    _, metrics = iql_update_step(agent, batch)
    assert np.isfinite(float(metrics["actor/loss"]))


def test_only_iql_agents_hold_a_value_network():
    key = jax.random.PRNGKey(0)
    for algo in ("calql", "cql"):
        agent = new_agent(algo, key, OBS, ACT, TINY_AGENT)
        assert type(agent) is AgentState and agent.calibrate == (algo == "calql")
        reference = create_agent(key, OBS, ACT, TINY_AGENT, calibrate=algo == "calql")
        assert jax.tree.structure(agent) == jax.tree.structure(reference)
        for a, b in zip(jax.tree.leaves(agent), jax.tree.leaves(reference), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    iql = iql_agent()
    assert not iql.calibrate and iql.value.apply_fn(iql.value.params, jnp.zeros((5, OBS))).shape == (5,)


# Options and names


def test_method_iql_maps_to_algo_iql_and_back():
    assert METHODS["iql"].overrides() == {"algo": "iql"} and label("iql") == "IQL"
    assert method_of({"algo": "iql", "reference": "mc", "mixing_ratio": 0.5}) == "iql"


@pytest.mark.parametrize(
    ("agent", "message"),
    [
        ({"iql_expectile": 1.0}, "--agent.iql-expectile must be in (0, 1), got 1.0"),
        ({"iql_expectile": 0.0}, "--agent.iql-expectile must be in (0, 1), got 0.0"),
        ({"iql_expectile": float("nan")}, "--agent.iql-expectile must be in (0, 1), got nan"),
        ({"iql_temperature": -1.0}, "--agent.iql-temperature must be >= 0 and finite, got -1.0"),
        ({"iql_temperature": float("inf")}, "--agent.iql-temperature must be >= 0 and finite, got inf"),
    ],
)
def test_iql_options_are_checked(agent, message):
    config = TrainConfig(algo="iql", agent=AgentConfig(**agent))
    with pytest.raises(ConfigError) as error:
        validate(config)
    assert str(error.value) == message


def test_an_unknown_algorithm_lists_iql(capsys):
    with pytest.raises(ConfigError, match=r"accepted: calql, cql, iql, rlpd$"):
        validate(dataclasses.replace(TrainConfig(), algo="sac"))  # type: ignore[arg-type]
    assert main(["train", "--algo", "iql", "--agent.iql-expectile", "1.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "calql: error: --agent.iql-expectile must be in (0, 1), got 1.5"


def test_iql_options_do_not_block_the_resume_of_other_algorithms():
    """A run directory from before IQL holds the default IQL options; a preset may set others."""
    old, preset = TrainConfig(), TrainConfig(agent=AgentConfig(iql_temperature=10.0))
    assert differences(old, preset, ignore=unread_options(preset.algo)) == []
    iql = dataclasses.replace(preset, algo="iql")
    assert differences(dataclasses.replace(old, algo="iql"), iql, ignore=unread_options(iql.algo)) == [
        "agent.iql_temperature: 1.0 -> 10.0"
    ]


# Whole runs through the shared loop


def _final_agent(run_dir: Path, step: int | None = None):
    config = config_from_dict(read_config(run_dir))
    template = new_agent(config.algo, jax.random.PRNGKey(0), 4, 2, config.agent)
    mgr = checkpoint.manager(run_dir, 20)
    agent, _, meta = checkpoint.restore_latest(mgr, template, step)
    mgr.close()
    return agent, meta


@pytest.fixture(scope="module")
def iql_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("iql")
    assert main(["train", *RUN, "--run-dir", str(folder), "--run-name", "run"]) == 0
    return folder / "run"


def test_an_iql_run_writes_the_usual_files_and_a_summary(iql_run):
    for name in (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE):
        assert (iql_run / name).is_file()
    config = read_config(iql_run)
    assert config["algo"] == "iql" and method_of(config) == "iql"
    summary = json.loads((iql_run / SUMMARY_FILE).read_text())
    assert {"offline", "final", "regret"} <= set(summary)
    rows = [json.loads(line) for line in (iql_run / METRICS_FILE).read_text().splitlines()]
    phases = {row["phase"] for row in rows}
    assert {"offline/train", "offline/eval", "online/train", "online/eval"} <= phases
    trained = [row for row in rows if row["phase"].endswith("/train")]
    assert all(np.isfinite(row["value/loss"]) and np.isfinite(row["actor/weight"]) for row in trained)
    assert all(row["calibrated"] == 0.0 for row in trained)
    agent, meta = _final_agent(iql_run)
    assert isinstance(agent, IQLAgentState)
    assert meta["counters"]["online_done"] >= 600


def test_an_interrupted_iql_run_resumes_bit_identical(iql_run, tmp_path):
    """Interrupted after its first online checkpoint: the later checkpoints and the summary are gone,
    as after a kill (tests/test_checkpoint.py kills a Cal-QL run for real)."""
    copy = tmp_path / "run"
    shutil.copytree(iql_run, copy)
    steps = sorted(int(p.name) for p in (copy / CHECKPOINT_FOLDER).iterdir() if p.name.isdigit())
    online = [step for step in steps if step > 200]
    assert len(online) >= 2
    for step in online[1:]:
        shutil.rmtree(copy / CHECKPOINT_FOLDER / str(step))
    (copy / SUMMARY_FILE).unlink()
    with open(copy / METRICS_FILE, "a") as metrics:
        metrics.write('{"phase": "online/train", "written": "after the checkpoint, then lost"}\n')
    assert main(["train", "--resume", str(copy)]) == 0
    resumed, resumed_meta = _final_agent(copy)
    reference, reference_meta = _final_agent(iql_run)
    for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(reference), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert resumed_meta["counters"] == reference_meta["counters"]
    assert (copy / METRICS_FILE).read_text() == (iql_run / METRICS_FILE).read_text()


def test_several_iql_seeds_train_in_one_process(tmp_path):
    short = [*RUN, "--offline-steps", "100", "--online-steps", "300", "--checkpoint-every", "0"]
    results = train_seeds(parse_train_args([*short, "--run-dir", str(tmp_path)]), [0, 1])
    finals = []
    for seed, result in zip((0, 1), results, strict=True):
        run_dir = Path(result.run_dir)
        assert read_config(run_dir)["seed"] == seed and (run_dir / SUMMARY_FILE).is_file()
        agent, _ = _final_agent(run_dir)
        assert isinstance(agent, IQLAgentState)
        finals.append(np.asarray(jax.tree.leaves(agent.value.params)[0]))
    assert not np.array_equal(*finals)


def test_reports_do_not_flag_iql_options_between_iql_and_older_runs():
    from calql.reporting.report import _differing_settings
    from calql.reporting.runs import RunData

    new = dataclasses.asdict(TrainConfig(algo="iql"))
    old = dataclasses.asdict(TrainConfig())
    for name in ("iql_expectile", "iql_temperature"):  # a Cal-QL run directory from before IQL existed
        del old["agent"][name]
    runs = [RunData(Path(algo), config, [], None) for algo, config in (("iql", new), ("calql", old))]
    assert _differing_settings(runs) == {}
    other = dataclasses.asdict(TrainConfig(algo="iql", agent=AgentConfig(iql_temperature=3.0)))
    assert _differing_settings([*runs, RunData(Path("other"), other, [], None)]) == {
        "agent.iql_temperature": ["1.0", "3.0"]
    }
