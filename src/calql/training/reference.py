"""`--reference learned`: fit the behaviour value network on the offline data before pre-training,
log its TD loss and its error against the Monte-Carlo returns, and put V(s) in place of the
Monte-Carlo return as the Cal-QL reference of every offline transition (saved in the run
directory, so a resumed run reuses it instead of fitting again).

Online episodes keep their Monte-Carlo returns: they are whole episodes of the current policy,
so the exact return-to-go is available and no approximation is needed there.
"""

import math
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

from calql.agent.reference import ReferenceState, create_reference, fit, predict
from calql.config import TrainConfig
from calql.data.replay import gather
from calql.data.transitions import Transitions
from calql.rundir import OFFLINE, row_phase
from calql.training.metrics import RunLog, mean_metrics
from calql.training.run import Timer

REFERENCE_FILE = "reference_values.npy"
PREDICT_CHUNK = 65_536
LOG_EVERY_CALLS = 10


def predict_all(state: ReferenceState, observations: np.ndarray) -> np.ndarray:
    """V(s) for every row, in fixed-size chunks (the last one padded) so it compiles once."""
    values = []
    for start in range(0, len(observations), PREDICT_CHUNK):
        chunk = observations[start : start + PREDICT_CHUNK]
        padded = np.zeros((PREDICT_CHUNK, observations.shape[1]), np.float32)
        padded[: len(chunk)] = chunk
        values.append(np.asarray(predict(state, padded))[: len(chunk)])
    return np.concatenate(values) if values else np.zeros(0, np.float32)


def error_vs_mc(values: np.ndarray, mc_returns: np.ndarray) -> dict[str, float]:
    """How far the learned reference is from the Monte-Carlo returns it replaces."""
    diff = values - mc_returns
    return {
        "reference/mae_vs_mc": float(np.abs(diff).mean()),
        "reference/bias_vs_mc": float(diff.mean()),
        "reference/corr_vs_mc": float(np.corrcoef(values, mc_returns)[0, 1])
        if values.std() > 0 and mc_returns.std() > 0
        else math.nan,
    }


def fit_reference(
    offline: Transitions,
    config: TrainConfig,
    key: jax.Array,
    probe_rows: np.ndarray,
    record: Callable[[int, dict], None],
) -> np.ndarray:
    """Fit V^mu for config.reference_steps gradient steps (rounded up to whole scanned calls);
    `record(step, metrics)` gets the fit's metrics and its error on `probe_rows` every few calls,
    and the error on the whole dataset at the end. Returns V(s) per offline transition (float32).
    `offline.reference` must still hold the Monte-Carlo returns (the errors are against them)."""
    agent = config.agent
    state = create_reference(
        key,
        offline.observations.shape[1],
        agent.critic_hidden_dims,
        agent.critic_lr,
        agent.discount,
        agent.tau,
        agent.layer_norm,
        agent.orthogonal_init,
    )
    rng = np.random.default_rng([config.seed, 2])
    size = config.updates_per_call
    calls = -(-config.reference_steps // size)
    probe = gather(offline, probe_rows)
    for call in range(1, calls + 1):
        rows = rng.integers(0, offline.size, (size, config.batch_size))
        state, metrics = fit(state, jax.device_put(gather(offline, rows)))
        if call % LOG_EVERY_CALLS == 0 and call < calls:
            probe_values = np.asarray(predict(state, probe.observations))
            record(call * size, {**mean_metrics(metrics), **error_vs_mc(probe_values, probe.reference)})
    values = predict_all(state, offline.observations).astype(np.float32)
    record(calls * size, {**mean_metrics(metrics), **error_vs_mc(values, offline.reference)})
    return values


def save_values(run_dir: Path, values: np.ndarray) -> None:
    """Atomically, so a resumed run never reads a half-written file."""
    path = Path(run_dir) / REFERENCE_FILE
    partial = path.with_suffix(".partial.npy")
    np.save(partial, values)
    partial.replace(path)


def load_values(run_dir: Path, size: int) -> np.ndarray | None:
    """The values a previous attempt of this run fitted, or None if there are none (or they are damaged)."""
    path = Path(run_dir) / REFERENCE_FILE
    try:
        values = np.load(path)
    except (OSError, ValueError):
        return None
    return values if values.shape == (size,) and np.isfinite(values).all() else None


def with_learned_reference(
    offline: Transitions, config: TrainConfig, probe_rows: np.ndarray, log: RunLog, timers: dict
) -> Transitions:
    """The offline data with the fitted behaviour value as its reference; a resumed run reuses the
    values its first attempt saved instead of fitting again."""
    values = load_values(log.path, offline.size) if config.resume else None
    if values is None:
        # fold_in leaves the agent's and the actor's key streams as they are without a reference.
        key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 2)
        with Timer(timers, "reference"):
            values = fit_reference(
                offline,
                config,
                key,
                probe_rows,
                lambda step, metrics: log.record(row_phase(OFFLINE, "reference"), step, metrics),
            )
        save_values(log.path, values)
    return offline._replace(reference=values)
