"""The reference value of the Cal-QL bound on the offline data (docs/algorithm.md sections 4.7-4.9).

`--reference learned`: fit the behaviour value network on the offline data by TD(0) before
pre-training. `--reference best`: fit the same network by Monte-Carlo regression on the rows of
the best trajectories only (`--reference-top-fraction`), a better-than-behaviour value. Either
logs its fit and its error against the Monte-Carlo returns, and puts V(s) in place of the
Monte-Carlo return of every offline transition (saved in the run directory, so a resumed run
reuses it instead of fitting again). Then `--reference-scale` and `--reference-noise` perturb
whichever reference was chosen (an accuracy ablation); the noise comes from its own stream of the
seed, so a resumed run draws the same.

Online episodes keep their Monte-Carlo returns: they are whole episodes of the current policy,
so the exact return-to-go is available and no approximation is needed there.
"""

import math
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

from calql.agent.reference import ReferenceState, create_reference, fit, fit_to_returns, predict
from calql.config import TrainConfig
from calql.data.replay import gather
from calql.data.returns import best_trajectory_rows, trajectory_starts
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
    record: Callable[[int, dict], object],
    fit_rows: np.ndarray | None = None,
    fit_calls: Callable[[ReferenceState, Transitions], tuple[ReferenceState, dict]] = fit,
) -> np.ndarray:
    """Fit V for config.reference_steps gradient steps (rounded up to whole scanned calls) on
    batches drawn uniformly from `fit_rows` (default: every row) with `fit_calls` (TD(0) `fit`, or
    `fit_to_returns`); `record(step, metrics)` gets the fit's metrics and its error on `probe_rows`
    every few calls, and the error on the whole dataset at the end. Returns V(s) per offline
    transition (float32). `offline.reference` must still hold the Monte-Carlo returns (the errors
    are against them, and `fit_to_returns` fits them)."""
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
    candidates = np.arange(offline.size) if fit_rows is None else fit_rows
    for call in range(1, calls + 1):
        rows = candidates[rng.integers(0, len(candidates), (size, config.batch_size))]
        state, metrics = fit_calls(state, jax.device_put(gather(offline, rows)))
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


def best_rows(offline: Transitions, ends: np.ndarray, fraction: float) -> tuple[np.ndarray, dict[str, float]]:
    """The rows of the best `fraction` of trajectories by Monte-Carlo return at their first step,
    and what was chosen (logged with the fit)."""
    chosen = best_trajectory_rows(offline.reference, ends, fraction)
    starts = trajectory_starts(ends)
    chosen_starts = starts[chosen[starts]]
    return np.flatnonzero(chosen), {
        "reference/best_trajectories": float(len(chosen_starts)),
        "reference/trajectories": float(len(starts)),
        "reference/best_rows": float(chosen.sum()),
        "reference/best_lowest_return": float(offline.reference[chosen_starts].min()),
    }


def fitted_values(
    offline: Transitions, ends: np.ndarray, config: TrainConfig, probe_rows: np.ndarray, log: RunLog
) -> np.ndarray:
    """V(s) per offline row: TD(0) on every row (learned), or Monte-Carlo regression on the best
    trajectories' rows (best); the fit's rows logged under offline/reference."""
    # fold_in leaves the agent's and the actor's key streams as they are without a reference.
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 2)
    chosen: dict[str, float] = {}
    fit_rows, fit_calls = None, fit
    if config.reference == "best":
        fit_rows, chosen = best_rows(offline, ends, config.reference_top_fraction)
        fit_calls = fit_to_returns
    return fit_reference(
        offline,
        config,
        key,
        probe_rows,
        lambda step, metrics: log.record(row_phase(OFFLINE, "reference"), step, {**metrics, **chosen}),
        fit_rows,
        fit_calls,
    )


def with_fitted_reference(
    offline: Transitions, ends: np.ndarray, config: TrainConfig, probe_rows: np.ndarray, log: RunLog, timers: dict
) -> Transitions:
    """The offline data with the fitted value (--reference learned or best) as its reference; a
    resumed run reuses the values its first attempt saved instead of fitting again."""
    values = load_values(log.path, offline.size) if config.resume else None
    if values is None:
        with Timer(timers, "reference"):
            values = fitted_values(offline, ends, config, probe_rows, log)
        save_values(log.path, values)
    return offline._replace(reference=values)


def perturbed(values: np.ndarray, scale: float, noise: float, rng: np.random.Generator) -> np.ndarray:
    """scale * values + noise * std(values) * z with z ~ N(0, 1) drawn once per row (float32): the
    accuracy ablation. At scale 1 and noise 0 the array itself, untouched (no draw)."""
    if scale == 1.0 and noise == 0.0:
        return values
    scaled = scale * values.astype(np.float64)
    if noise:
        scaled += noise * values.std(dtype=np.float64) * rng.standard_normal(len(values))
    return scaled.astype(np.float32)


def noise_generator(seed: int) -> np.random.Generator:
    """The reference noise's own stream ([seed, 3]; 1 draws the calibration rows, 2 the fit's batches)."""
    return np.random.default_rng([seed, 3])


def with_chosen_reference(
    offline: Transitions, ends: np.ndarray, config: TrainConfig, probe_rows: np.ndarray, log: RunLog, timers: dict
) -> Transitions:
    """The offline data with the reference the Cal-QL bound uses: --reference (Monte-Carlo returns
    as loaded, or a fitted value), then --reference-scale and --reference-noise."""
    if config.reference != "mc":
        offline = with_fitted_reference(offline, ends, config, probe_rows, log, timers)
    values = perturbed(offline.reference, config.reference_scale, config.reference_noise, noise_generator(config.seed))
    return offline if values is offline.reference else offline._replace(reference=values)
