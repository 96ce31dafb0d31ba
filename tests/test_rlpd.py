"""RLPD (--algo rlpd, docs/algorithm.md section 2.10): its target against numpy for a fixed key, its
losses against the networks, its settings from the command line, the API and the sweep method, and
whole runs through the shared loop (files, summary, no pre-training, exact resume after an
interruption, option errors)."""

import dataclasses
import json
import shutil
from pathlib import Path

import batches
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import calql
from calql.agent import losses
from calql.agent.networks import sample_tanh_gaussian
from calql.agent.rlpd import rlpd_target, rlpd_update_step
from calql.agent.state import AgentState, RLPDAgentState, create_agent, new_agent
from calql.agent.update import update, update_step
from calql.cli import main
from calql.config import (
    RLPD_AGENT,
    AgentConfig,
    ConfigError,
    TrainConfig,
    config_from_dict,
    rlpd_settings,
    validate,
)
from calql.data.transitions import Transitions
from calql.methods import METHODS, label, method_of
from calql.options import command_line, parse_train_args
from calql.rundir import CHECKPOINT_FOLDER, CONFIG_FILE, METRICS_FILE, SUMMARY_FILE
from calql.training import checkpoint
from calql.training.metrics import read_config

TINY_AGENT = AgentConfig(
    critic_hidden_dims=(8, 8), policy_hidden_dims=(8, 8), **{**RLPD_AGENT, "num_critics": 4, "policy_every": 1}
)
OBS, ACT = 3, 2

RUN = [
    "--algo",
    "rlpd",
    "--task",
    "pointmaze-umaze",
    "--online-steps",
    "400",
    "--utd",
    "2",
    "--dataset-size",
    "4000",
    "--eval-episodes",
    "1",
    "--eval-every",
    "200",
    "--start-evals",
    "0",
    "--updates-per-call",
    "25",
    "--batch-size",
    "16",
    "--checkpoint-every",
    "100",
    "--keep-checkpoints",
    "20",
    "--agent.num-critics",
    "4",
    "--agent.policy-every",
    "2",
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


def rlpd_agent(seed: int = 0, config: AgentConfig = TINY_AGENT) -> RLPDAgentState:
    agent = new_agent("rlpd", jax.random.PRNGKey(seed), OBS, ACT, config)
    assert isinstance(agent, RLPDAgentState)
    # Targets apart from the critics and a temperature other than 1, so a test can tell them apart.
    shifted = jax.tree.map(lambda p: p + 0.3 * jnp.sign(p + 0.1), agent.target_critic_params)
    temperature = {"value": jnp.asarray(np.log(0.7), jnp.float32)}
    return agent.replace(
        target_critic_params=shifted, log_temperature=agent.log_temperature.replace(params=temperature)
    )


# The target, against numpy


def test_critic_subset_takes_distinct_critics_chosen_by_the_key():
    q = jnp.arange(10.0)[:, None] * jnp.ones((10, 3))
    key = jax.random.PRNGKey(7)
    chosen = np.asarray(losses.critic_subset(q, key, 2))[:, 0].astype(int)
    assert len(set(chosen)) == 2 and chosen.min() >= 0 and chosen.max() < 10
    np.testing.assert_array_equal(chosen, np.asarray(jax.random.choice(key, 10, (2,), replace=False)))
    draws = {tuple(np.asarray(losses.critic_subset(q, jax.random.PRNGKey(s), 2))[:, 0]) for s in range(20)}
    assert len(draws) > 5  # a new subset with every key


def test_the_target_is_the_min_over_a_random_pair_of_target_critics_minus_the_entropy_term():
    agent, batch, key = rlpd_agent(), random_batch(0), jax.random.PRNGKey(3)
    target = np.asarray(rlpd_target(agent, batch, key))
    # By hand: the same a' (the target's first key), all E target critics, the pair its second key picks.
    action_key, subset_key = jax.random.split(key)
    mean, log_std = agent.actor.apply_fn(agent.actor.params, batch.next_observations)
    next_action, next_log_pi = sample_tanh_gaussian(action_key, mean, log_std)
    every = np.asarray(agent.critic.apply_fn(agent.target_critic_params, batch.next_observations, next_action))
    pair = np.asarray(jax.random.choice(subset_key, 4, (2,), replace=False))
    assert every.shape == (4, 6) and len(set(pair.tolist())) == 2
    soft_value = every[pair].min(axis=0) - 0.7 * np.asarray(next_log_pi)
    expected = batch.rewards + 0.99 * (1.0 - batch.dones) * soft_value
    np.testing.assert_allclose(target, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(target[batch.dones == 1], batch.rewards[batch.dones == 1], rtol=1e-6)  # done mask
    assert not np.allclose(target, batch.rewards + 0.99 * (1.0 - batch.dones) * every.min(axis=0))  # not all 4
    # Without entropy backup the log-prob term goes; num-min-qs 0 takes the min over all critics.
    plain = agent.replace(config=dataclasses.replace(TINY_AGENT, backup_entropy=False, num_min_qs=0))
    np.testing.assert_allclose(
        np.asarray(rlpd_target(plain, batch, key)),
        batch.rewards + 0.99 * (1.0 - batch.dones) * every.min(axis=0),
        rtol=1e-5,
        atol=1e-6,
    )


# The losses


def test_the_critic_loss_is_the_td_loss_alone_and_the_actor_uses_the_ensemble_mean():
    agent, batch = rlpd_agent(), random_batch(1)
    rng, target_key, actor_key = jax.random.split(agent.rng, 3)
    _, metrics = rlpd_update_step(agent, batch)
    target = np.asarray(rlpd_target(agent, batch, target_key))
    q_data = np.asarray(agent.critic.apply_fn(agent.critic.params, batch.observations, batch.actions))
    td = ((q_data - target) ** 2).mean(axis=1)
    assert float(metrics["critic/loss"]) == pytest.approx(td.sum(), rel=1e-5)  # no CQL term
    assert float(metrics["critic/td_loss"]) == pytest.approx(td.mean(), rel=1e-5)
    assert not any(name.startswith("critic/cql") for name in metrics)
    mean, log_std = agent.actor.apply_fn(agent.actor.params, batch.observations)
    actions, log_pi = sample_tanh_gaussian(actor_key, mean, log_std)
    q_new = np.asarray(agent.critic.apply_fn(agent.critic.params, batch.observations, actions))
    by_mean = np.mean(0.7 * np.asarray(log_pi) - q_new.mean(axis=0))
    by_min = np.mean(0.7 * np.asarray(log_pi) - q_new.min(axis=0))
    assert float(metrics["actor/loss"]) == pytest.approx(by_mean, rel=1e-5)
    assert float(metrics["actor/loss"]) != pytest.approx(by_min, rel=1e-3)


def test_the_temperature_targets_minus_half_the_action_dimension():
    agent = rlpd_agent()
    assert agent.target_entropy == -ACT / 2
    assert create_agent(jax.random.PRNGKey(0), OBS, ACT, AgentConfig()).target_entropy == -ACT


def test_a_step_trains_critics_policy_and_temperature_but_not_the_lagrange_multiplier():
    agent = rlpd_agent()
    stepped, _ = update(agent, random_batch(2, leading=(3,)), np.ones(3, bool))
    changed = lambda a, b: any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))  # noqa: E731
    for name in ("actor", "critic", "log_temperature"):
        assert changed(getattr(agent, name).params, getattr(stepped, name).params), name
    assert changed(agent.target_critic_params, stepped.target_critic_params)
    assert not changed(agent.log_lagrange, stepped.log_lagrange)
    assert isinstance(stepped, RLPDAgentState)


def test_scanned_rlpd_update_equals_a_python_loop_and_is_deterministic():
    agent = rlpd_agent()
    batches = random_batch(3, leading=(4,))
    scanned, _ = update(agent, batches, np.ones(4, bool))
    looped, step = agent, jax.jit(update_step)
    for i in range(4):
        looped, _ = step(looped, jax.tree.map(lambda x, i=i: x[i], batches))
    for a, b in zip(jax.tree.leaves(scanned), jax.tree.leaves(looped), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    again, _ = update(rlpd_agent(), batches, np.ones(4, bool))
    for a, b in zip(jax.tree.leaves(scanned), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_an_rlpd_agent_has_the_leaves_of_a_cql_agent():
    key = jax.random.PRNGKey(0)
    rlpd, cql = new_agent("rlpd", key, OBS, ACT, TINY_AGENT), new_agent("cql", key, OBS, ACT, TINY_AGENT)
    assert type(cql) is AgentState and not rlpd.calibrate
    for a, b in zip(jax.tree.leaves(rlpd), jax.tree.leaves(cql), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# Settings, options and names


def test_rlpd_settings_apply_under_the_options_given_everywhere():
    preset = calql.config_for("pointmaze-umaze")
    settings = rlpd_settings(preset)
    assert (settings.algo, settings.offline_steps, settings.mixing_ratio, settings.utd) == ("rlpd", 0, 0.5, 20)
    agent = settings.agent
    assert (agent.num_critics, agent.num_min_qs, agent.layer_norm, agent.backup_entropy) == (10, 2, True, True)
    assert (agent.max_target_backup, agent.init_log_temperature, agent.target_entropy_scale) == (False, 0.0, 0.5)
    assert agent.policy_every == 20
    narrow = rlpd_settings(calql.config_for("pointmaze-umaze-narrow"))  # its preset's tau is 0.05
    assert agent.tau == narrow.agent.tau == 5e-3
    assert agent.critic_hidden_dims == preset.agent.critic_hidden_dims and agent.critic_lr == preset.agent.critic_lr
    assert calql.config_for("pointmaze-umaze", algo="rlpd") == settings
    assert parse_train_args(["--task", "pointmaze-umaze", "--algo", "rlpd"]) == settings
    given = parse_train_args(["--task", "pointmaze-umaze", "--algo", "rlpd", "--utd", "5", "--agent.policy-every", "5"])
    assert (given.utd, given.agent.policy_every, given.agent.num_critics, given.offline_steps) == (5, 5, 10, 0)
    assert calql.config_for("pointmaze-umaze", algo="rlpd", utd=5, agent={"policy_every": 5}) == given
    assert command_line(given) == ["--task", "pointmaze-umaze", "--algo", "rlpd", "--seed", "0", "--utd", "5",
                                   "--agent.policy-every", "5"]  # fmt: skip
    assert parse_train_args(command_line(given)) == given
    assert calql.config_for("pointmaze-umaze", algo="cql") == dataclasses.replace(preset, algo="cql")


def test_method_rlpd_maps_to_algo_rlpd_and_back():
    assert METHODS["rlpd"].overrides() == {"algo": "rlpd"} and label("rlpd") == "RLPD"
    config = calql.config_for("pointmaze-umaze", **METHODS["rlpd"].overrides())
    assert config.utd == 20 and method_of(dataclasses.asdict(config)) == "rlpd"


@pytest.mark.parametrize(
    ("agent", "message"),
    [
        ({"num_min_qs": 3}, "--agent.num-min-qs must be in [0, --agent.num-critics = 2], got 3"),
        ({"num_min_qs": -1}, "--agent.num-min-qs must be in [0, --agent.num-critics = 2], got -1"),
        ({"target_entropy_scale": float("nan")}, "--agent.target-entropy-scale must be finite, got nan"),
        ({"policy_every": 0}, "--agent.policy-every must be >= 1, got 0"),
        (
            {"policy_every": 20},
            "--agent.policy-every 20 with --utd 1: RLPD's policy steps once per environment step, "
            "after its --utd critic steps; pass --agent.policy-every 1 (1: with every critic step)",
        ),
    ],
)
def test_rlpd_options_are_checked(agent, message):
    with pytest.raises(ConfigError) as error:
        validate(TrainConfig(algo="rlpd", agent=AgentConfig(**agent)))
    assert str(error.value) == message


def test_only_rlpd_reads_policy_every_and_a_changed_utd_asks_for_it():
    with pytest.raises(ConfigError, match=r"^--agent.policy-every 2: only --algo rlpd reads it; leave it at 1$"):
        validate(TrainConfig(algo="calql", agent=AgentConfig(policy_every=2)))
    with pytest.raises(ConfigError, match=r"pass --agent.policy-every 5 \(1: with every critic step\)$"):
        calql.config_for("pointmaze-umaze", algo="rlpd", utd=5)


def test_the_policy_and_temperature_step_once_every_policy_every_critic_steps():
    agent = rlpd_agent(config=dataclasses.replace(TINY_AGENT, policy_every=3))
    batches = random_batch(5, leading=(3,))
    same = lambda a, b: all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))  # noqa: E731
    two, _ = update(agent, jax.tree.map(lambda x: x[:2], batches), np.ones(2, bool))
    assert same(two.actor, agent.actor) and same(two.log_temperature, agent.log_temperature)
    assert not same(two.critic.params, agent.critic.params)
    three, _ = update(two, jax.tree.map(lambda x: x[2:], batches), np.ones(1, bool))
    assert not same(three.actor.params, agent.actor.params) and int(three.actor.step) == 1
    assert not same(three.log_temperature.params, agent.log_temperature.params)


def test_a_subset_larger_than_the_ensemble_is_a_one_line_error(capsys):
    assert main(["train", "--algo", "rlpd", "--agent.num-critics", "4", "--agent.num-min-qs", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "calql: error: --agent.num-min-qs must be in [0, --agent.num-critics = 4], got 5"


# Whole runs through the shared loop


def _final_agent(run_dir: Path, step: int | None = None):
    config = config_from_dict(read_config(run_dir))
    template = new_agent(config.algo, jax.random.PRNGKey(0), 4, 2, config.agent)
    mgr = checkpoint.manager(run_dir, 20)
    agent, _, meta = checkpoint.restore_latest(mgr, template, step)
    mgr.close()
    return agent, meta


@pytest.fixture(scope="module")
def rlpd_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("rlpd")
    assert main(["train", *RUN, "--run-dir", str(folder), "--run-name", "run"]) == 0
    return folder / "run"


def test_an_rlpd_run_writes_the_usual_files_and_a_summary_without_pre_training(rlpd_run):
    for name in (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE):
        assert (rlpd_run / name).is_file()
    config = read_config(rlpd_run)
    assert config["algo"] == "rlpd" and method_of(config) == "rlpd" and config["offline_steps"] == 0
    summary = json.loads((rlpd_run / SUMMARY_FILE).read_text())
    assert {"offline", "final", "regret"} <= set(summary)
    rows = [json.loads(line) for line in (rlpd_run / METRICS_FILE).read_text().splitlines()]
    assert not any(row["phase"] == "offline/train" for row in rows)
    trained = [row for row in rows if row["phase"] == "online/train"]
    assert trained and all(np.isfinite(row["critic/loss"]) and row["calibrated"] == 0.0 for row in trained)
    agent, meta = _final_agent(rlpd_run)
    assert isinstance(agent, RLPDAgentState)
    assert meta["counters"]["online_done"] >= 400
    assert meta["counters"]["offline_done"] == 0
    assert meta["counters"]["gradient_steps"] == 2 * meta["counters"]["online_done"]  # UTD 2


def test_an_interrupted_rlpd_run_resumes_bit_identical(rlpd_run, tmp_path):
    """Interrupted after its first online checkpoint: the later checkpoints and the summary are gone."""
    copy = tmp_path / "run"
    shutil.copytree(rlpd_run, copy)
    steps = sorted(int(p.name) for p in (copy / CHECKPOINT_FOLDER).iterdir() if p.name.isdigit())
    online = [step for step in steps if step > 0]
    assert len(online) >= 2
    for step in online[1:]:
        shutil.rmtree(copy / CHECKPOINT_FOLDER / str(step))
    (copy / SUMMARY_FILE).unlink()
    with open(copy / METRICS_FILE, "a") as metrics:
        metrics.write('{"phase": "online/train", "written": "after the checkpoint, then lost"}\n')
    assert main(["train", "--resume", str(copy)]) == 0
    resumed, resumed_meta = _final_agent(copy)
    reference, reference_meta = _final_agent(rlpd_run)
    for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(reference), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert resumed_meta["counters"] == reference_meta["counters"]
    assert (copy / METRICS_FILE).read_text() == (rlpd_run / METRICS_FILE).read_text()


def test_reports_do_not_flag_options_that_older_run_directories_predate():
    from calql.reporting.report import _differing_settings
    from calql.reporting.runs import RunData

    old = dataclasses.asdict(TrainConfig())
    for name in ("num_min_qs", "policy_every", "target_entropy_scale"):  # a run directory from before RLPD
        del old["agent"][name]
    new = dataclasses.asdict(TrainConfig())
    runs = [RunData(Path(name), config, [], None) for name, config in (("old", old), ("new", new))]
    assert _differing_settings(runs) == {}
    other = dataclasses.asdict(TrainConfig(agent=AgentConfig(num_min_qs=1)))
    assert _differing_settings([*runs, RunData(Path("other"), other, [], None)]) == {"agent.num_min_qs": ["0", "1"]}
