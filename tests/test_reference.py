"""The reference value of the bound: the learned one (--reference learned) converges to a known
behaviour value, replaces the MC returns of the offline data, is logged, and survives a resume;
--reference best is fitted on the best trajectories only; --reference-scale and --reference-noise
change exactly what they claim, and the diagnostic keeps the true returns."""

import dataclasses
import json
from pathlib import Path

import jax
import numpy as np
import pytest

from calql.agent.reference import fit_to_returns
from calql.config import AgentConfig, ConfigError, TrainConfig, validate
from calql.data.replay import offline_transitions
from calql.data.returns import ReturnRule, best_trajectory_rows, trajectory_ends
from calql.options import parse_train_args
from calql.training import reference
from calql.training.loop import train

GAMMA = 0.9
CHAIN = 5  # states 0..4; entering state 4 ends the episode
P_RIGHT = 0.7  # behaviour policy: right with 0.7, stay with 0.3


def _chain_value() -> np.ndarray:
    """V^mu of the chain: V(s) = -1 + gamma * (p V(s+1) + (1-p) V(s)), V(terminal) = 0."""
    a = np.eye(CHAIN - 1)
    b = -np.ones(CHAIN - 1)
    for s in range(CHAIN - 1):
        a[s, s] -= GAMMA * (1 - P_RIGHT)
        if s + 1 < CHAIN - 1:
            a[s, s + 1] -= GAMMA * P_RIGHT
    return np.linalg.solve(a, b)


def _chain_data(episodes: int, horizon: int, rng: np.random.Generator):
    """Behaviour-policy episodes from random starts, cut by time-outs (so TD must bootstrap there)."""
    obs, next_obs, rewards, terminals, timeouts = [], [], [], [], []
    for _ in range(episodes):
        s = rng.integers(0, CHAIN - 1)
        for t in range(horizon):
            s_next = s + 1 if rng.random() < P_RIGHT else s
            obs.append(s), next_obs.append(s_next), rewards.append(-1.0)
            done = s_next == CHAIN - 1
            terminals.append(done), timeouts.append(not done and t == horizon - 1)
            s = s_next
            if done:
                break
    one_hot = np.eye(CHAIN, dtype=np.float32)
    return offline_transitions(
        one_hot[obs],
        np.zeros((len(obs), 1), np.float32),
        np.asarray(rewards, np.float32),
        one_hot[next_obs],
        np.asarray(terminals),
        np.asarray(timeouts),
        ReturnRule(GAMMA),
    )


def test_learned_reference_converges_to_the_behaviour_value():
    data = _chain_data(2000, 6, np.random.default_rng(0))
    config = TrainConfig(
        seed=0,
        batch_size=64,
        updates_per_call=100,
        reference_steps=4000,
        agent=AgentConfig(critic_hidden_dims=(32, 32), critic_lr=3e-3, discount=GAMMA, tau=0.05),
    )
    rows = []
    values = reference.fit_reference(
        data, config, jax.random.PRNGKey(0), np.arange(256), lambda step, metrics: rows.append((step, metrics))
    )
    truth = _chain_value()
    states = data.observations.argmax(axis=1)
    for s in range(CHAIN - 1):
        assert values[states == s].mean() == pytest.approx(truth[s], abs=0.1 * abs(truth[s]))
    # The truncated episodes make the MC returns too optimistic near the start of the chain; the
    # learned value is not (it bootstraps through time-outs), so it differs from MC there.
    assert rows[-1][0] == 4000 and rows[-1][1]["reference/td_loss"] < 0.5
    assert rows[-1][1]["reference/bias_vs_mc"] < -0.1
    assert len(rows) == 4  # every 10 scanned calls, and once at the end


def _tiny(tmp_path: Path, *extra: str) -> TrainConfig:
    return parse_train_args(
        [
            "--task",
            "pointmaze-umaze",
            "--offline-steps",
            "100",
            "--online-steps",
            "300",
            "--dataset-size",
            "3000",
            "--eval-episodes",
            "1",
            "--eval-every",
            "300",
            "--updates-per-call",
            "25",
            "--batch-size",
            "16",
            "--agent.critic-hidden-dims",
            "8",
            "8",
            "--agent.policy-hidden-dims",
            "8",
            "8",
            "--agent.num-sampled-actions",
            "2",
            "--reference",
            "learned",
            "--reference-steps",
            "300",
            "--checkpoint-every",
            "100",
            "--run-dir",
            str(tmp_path),
            *extra,
        ]
    )


def test_learned_reference_run_logs_the_fit_and_keeps_true_returns_for_the_diagnostic(tmp_path):
    result = train(_tiny(tmp_path))
    run_dir = Path(result.run_dir)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    fit_rows = [row for row in rows if row["phase"] == "offline/reference"]
    assert [row["step"] for row in fit_rows] == [250, 300]
    assert {"reference/td_loss", "reference/mae_vs_mc", "reference/bias_vs_mc"} <= set(fit_rows[-1])
    values = np.load(run_dir / reference.REFERENCE_FILE)
    assert values.shape == (3000,) and np.isfinite(values).all()
    # The bound used the learned values on offline rows, while the diagnostic compares Q with true MC returns.
    offline_eval = next(row for row in rows if row["phase"] == "offline/eval")
    assert offline_eval["calibration/mc_return"] != pytest.approx(float(values.mean()), abs=1e-3)


def test_resumed_learned_reference_run_reuses_the_fitted_values(tmp_path):
    config = _tiny(tmp_path)
    first = train(dataclasses.replace(config, online_steps=0))
    run_dir = Path(first.run_dir)
    saved = np.load(run_dir / reference.REFERENCE_FILE)
    lines_before = (run_dir / "metrics.jsonl").read_text().splitlines()
    # Resuming with the same options must not fit again: no new reference rows, the same values.
    train(dataclasses.replace(config, online_steps=0, resume=str(run_dir)))
    lines_after = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert sum('"offline/reference"' in line for line in lines_after) == sum(
        '"offline/reference"' in line for line in lines_before
    )
    np.testing.assert_array_equal(np.load(run_dir / reference.REFERENCE_FILE), saved)


def test_unknown_reference_is_refused():
    with pytest.raises(ConfigError, match="--reference"):
        validate(TrainConfig(reference="neural"))


# --reference best: Monte-Carlo regression on the best trajectories only


def test_best_trajectory_rows_ranks_trajectories_by_their_first_return():
    returns = np.array([1.0, 0.5, 9.0, 3.0, 2.0, 7.0, 7.0, 0.0], np.float32)
    ends = np.array([0, 1, 1, 0, 1, 1, 1, 1], bool)  # trajectories: [0,1] [2] [3,4] [5] [6] [7]
    rows = best_trajectory_rows(returns, ends, 0.34)  # round(0.34 * 6) = 2: G_0 9.0 and 7.0 (the earlier tie)
    np.testing.assert_array_equal(rows, [0, 0, 1, 0, 0, 1, 0, 0])
    assert best_trajectory_rows(returns, ends, 0.01).sum() == 1  # at least one trajectory
    assert best_trajectory_rows(returns, ends, 1.0).all()
    np.testing.assert_array_equal(best_trajectory_rows(returns, ends, 0.5), [0, 0, 1, 0, 0, 1, 1, 0])
    np.testing.assert_array_equal(best_trajectory_rows(returns, ends, 0.67), [0, 0, 1, 1, 1, 1, 1, 0])


def _ranked_trajectories(count: int = 10, length: int = 4):
    """Trajectory k: `length` steps, reward k at every step, observation (k / 10, t / length)."""
    k, t = np.divmod(np.arange(count * length), length)
    obs = np.stack([k / 10, t / length], axis=1).astype(np.float32)
    next_obs = np.stack([k / 10, (t + 1) / length], axis=1).astype(np.float32)
    terminals = t == length - 1
    data = offline_transitions(
        obs,
        np.zeros((len(k), 1), np.float32),
        k.astype(np.float32),
        next_obs,
        terminals,
        np.zeros(len(k)),
        ReturnRule(GAMMA),
    )
    return data, trajectory_ends(terminals, np.zeros(len(k)), obs, next_obs)


class _Log:
    def __init__(self):
        self.rows = []

    def record(self, phase, step, metrics):
        self.rows.append((phase, step, metrics))


def test_best_reference_is_fitted_on_the_best_trajectories_only(monkeypatch):
    data, ends = _ranked_trajectories()
    fitted_on = []

    def recording(state, batches):
        fitted_on.extend(np.unique(np.round(np.asarray(batches.observations[..., 0]) * 10)).astype(int).tolist())
        return fit_to_returns(state, batches)

    monkeypatch.setattr(reference, "fit_to_returns", recording)
    config = TrainConfig(
        reference="best",
        reference_top_fraction=0.2,
        reference_steps=3000,
        batch_size=32,
        updates_per_call=100,
        agent=AgentConfig(critic_hidden_dims=(32, 32), critic_lr=3e-3, discount=GAMMA),
    )
    log = _Log()
    values = reference.fitted_values(data, ends, config, np.arange(8), log)
    assert set(fitted_on) == {8, 9}  # the two trajectories with the highest returns, nothing else
    best = data.observations[:, 0] >= 0.75
    np.testing.assert_allclose(values[best], data.reference[best], atol=0.05 * np.ptp(data.reference[best]))
    assert values.shape == (40,) and np.isfinite(values).all()  # predicted for every row
    phase, step, last = log.rows[-1]
    assert (phase, step) == ("offline/reference", 3000)
    assert last["reference/best_trajectories"] == 2 and last["reference/trajectories"] == 10
    assert last["reference/best_rows"] == 8
    assert last["reference/best_lowest_return"] == pytest.approx(float(data.reference[32]))
    assert "reference/return_loss" in last and "reference/mae_vs_mc" in last


# --reference-scale, --reference-noise: the accuracy ablation


def test_default_perturbation_leaves_the_reference_untouched():
    values = np.random.default_rng(0).normal(size=100).astype(np.float32)
    rng = reference.noise_generator(0)
    state = dict(rng.bit_generator.state)
    assert reference.perturbed(values, 1.0, 0.0, rng) is values
    assert rng.bit_generator.state == state  # no draw either


def test_scale_multiplies_and_noise_has_the_stated_std_and_seed():
    values = np.random.default_rng(1).normal(-300.0, 40.0, size=200_000).astype(np.float32)
    scaled = reference.perturbed(values, 1.5, 0.0, reference.noise_generator(0))
    np.testing.assert_array_equal(scaled, (1.5 * values.astype(np.float64)).astype(np.float32))
    noisy = reference.perturbed(values, 1.0, 0.5, reference.noise_generator(0))
    noise = noisy.astype(np.float64) - values
    assert noise.std() == pytest.approx(0.5 * values.std(), rel=0.01)
    assert abs(noise.mean()) < 0.01 * values.std()
    np.testing.assert_array_equal(noisy, reference.perturbed(values, 1.0, 0.5, reference.noise_generator(0)))
    assert not np.array_equal(noisy, reference.perturbed(values, 1.0, 0.5, reference.noise_generator(1)))
    both = reference.perturbed(values, 2.0, 0.5, reference.noise_generator(0))
    np.testing.assert_allclose(both, 2.0 * values.astype(np.float64) + noise, rtol=1e-6)  # scale, then noise


def _opened(config: TrainConfig):
    from rich.console import Console

    from calql.training.opening import open_run
    from calql.training.run import close

    run = open_run(config, Console(quiet=True), lambda row: None)
    close(run)
    return run


def test_a_run_perturbs_its_offline_reference_and_keeps_true_returns_for_the_diagnostic(tmp_path):
    mc = _opened(_tiny(tmp_path / "mc", "--reference", "mc"))
    scaled = _opened(_tiny(tmp_path / "scaled", "--reference", "mc", "--reference-scale", "0.5"))
    noisy = _opened(_tiny(tmp_path / "noisy", "--reference", "mc", "--reference-noise", "1.0"))
    true_returns = mc.offline.reference
    np.testing.assert_array_equal(scaled.offline.reference, (0.5 * true_returns.astype(np.float64)).astype(np.float32))
    noise = noisy.offline.reference.astype(np.float64) - true_returns
    assert noise.std() == pytest.approx(true_returns.std(), rel=0.1)
    for run in (scaled, noisy):
        np.testing.assert_array_equal(run.calibration_batch.reference, mc.calibration_batch.reference)
    cql = _opened(_tiny(tmp_path / "cql", "--algo", "cql", "--reference-noise", "1.0"))
    np.testing.assert_array_equal(cql.offline.reference, true_returns)  # CQL has no bound to perturb


def test_a_resumed_run_perturbs_its_saved_learned_reference_the_same_way(tmp_path):
    config = _tiny(tmp_path, "--reference-noise", "0.5", "--reference-scale", "1.5", "--run-name", "noisy")
    first = _opened(config)
    saved = np.load(tmp_path / "noisy" / reference.REFERENCE_FILE)  # the fitted values, unperturbed
    assert not np.array_equal(first.offline.reference, saved)
    again = _opened(dataclasses.replace(config, run_name="", resume=str(tmp_path / "noisy")))
    np.testing.assert_array_equal(again.offline.reference, first.offline.reference)
    np.testing.assert_array_equal(np.load(tmp_path / "noisy" / reference.REFERENCE_FILE), saved)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"reference": "top"}, "--reference: unknown 'top'; accepted: mc, learned, best"),
        ({"reference_top_fraction": 0.0}, r"--reference-top-fraction must be in \(0, 1\], got 0.0"),
        ({"reference_top_fraction": 1.5}, r"--reference-top-fraction must be in \(0, 1\], got 1.5"),
        ({"reference_scale": float("nan")}, "--reference-scale must be a finite number, got nan"),
        ({"reference_noise": -0.1}, "--reference-noise must be >= 0 and finite, got -0.1"),
        ({"reference_noise": float("inf")}, "--reference-noise must be >= 0 and finite, got inf"),
    ],
)
def test_reference_options_are_validated(changes, message):
    with pytest.raises(ConfigError, match=message):
        validate(TrainConfig(**changes))


def test_a_refused_reference_option_is_one_line_on_the_command_line(capsys):
    from calql.cli import main

    assert main(["train", "--reference-top-fraction", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "calql: error: --reference-top-fraction must be in (0, 1], got 2.0"
