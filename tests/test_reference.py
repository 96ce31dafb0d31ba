"""The learned reference value (--reference learned): it converges to a known behaviour value,
replaces the MC returns of the offline data, is logged, and survives a resume."""

import dataclasses
import json
from pathlib import Path

import jax
import numpy as np
import pytest

from calql.config import AgentConfig, ConfigError, TrainConfig, validate
from calql.data.replay import offline_transitions
from calql.data.returns import ReturnRule
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
