"""Several seeds in one process (--seeds): the single-seed steps of phases.py, run in lockstep,
with one compiled, vmapped update per call for all seeds. Each seed keeps its own agent, RNGs,
environments, online buffer, log and checkpoints; only the update call is shared.

Offline, every seed takes the same chunks. Online, each unfinished seed collects an episode per
round, then all update together; a seed with fewer steps to take (or none: it has finished, or
is still in its warm-up) pads its part of the call with inactive steps, so the compiled shape
never changes.
"""

from collections import defaultdict

import jax
import numpy as np

from calql.agent.update import update_seeds
from calql.data.transitions import Transitions
from calql.training import phases
from calql.training.progress import PhaseProgress
from calql.training.run import Run, Timer, matmul_precision


def train_population(runs: list[Run]) -> None:
    """phases.train_run for every seed at once (one configuration but the seed): a fresh group, or
    one seed of a group resumed alone."""
    with matmul_precision(runs[0].config):
        offline_phase(runs)
        if runs[0].config.online_steps > 0:
            online_phase(runs)


def offline_phase(runs: list[Run]) -> None:
    cfg, lead = runs[0].config, runs[0].counters
    progress = PhaseProgress(
        runs[0].console, _label("offline gradient steps", runs), cfg.offline_steps, lead.offline_done
    )
    while lead.offline_done < cfg.offline_steps:
        chunk = phases.offline_chunk(cfg, lead.offline_done)
        all_metrics = gradient_steps(runs, [chunk] * len(runs))
        for run, metrics in zip(runs, all_metrics):
            phases.end_offline_chunk(run, chunk, metrics)
        progress.update(lead.offline_done, all_metrics[0])
    progress.close()
    for run in runs:
        phases.end_offline_phase(run)


def online_phase(runs: list[Run]) -> None:
    cfg = runs[0].config
    for run in runs:
        phases.begin_online_phase(run)
    progress = PhaseProgress(runs[0].console, _label("online env steps", runs), cfg.online_steps, _slowest(runs))
    for run in runs:
        phases.evaluate_at_start(run)
    while _slowest(runs) < cfg.online_steps:
        befores = [run.counters.online_done for run in runs]
        episodes = [
            phases.collect_episode(run) if before < cfg.online_steps else (0, False)
            for run, before in zip(runs, befores)
        ]
        updates = [phases.online_updates(cfg, before, length) for before, (length, _) in zip(befores, episodes)]
        all_metrics = gradient_steps(runs, updates)
        for run, before, (length, success), metrics in zip(runs, befores, episodes, all_metrics):
            if length:
                phases.end_episode(run, before, length, success, metrics)
        progress.update(_slowest(runs), all_metrics[0])
    progress.close()


def gradient_steps(runs: list[Run], counts: list[int]) -> list[dict[str, float]]:
    """counts[i] gradient steps for runs[i] in shared vmapped calls; each run's mean metrics.
    The calls' time is counted in the first run's timers."""
    size = runs[0].config.updates_per_call
    totals: list[defaultdict[str, float]] = [defaultdict(float) for _ in runs]
    for start in range(0, max(counts), size):
        actives = [np.arange(size) < count - start for count in counts]
        with Timer(runs[0].timers, "sample"):
            batches = [
                phases.sample_batches(run, size) if active.any() else _empty_batches(run, size)
                for run, active in zip(runs, actives)
            ]
        with Timer(runs[0].timers, "update"):
            call_metrics = _vmapped_update(runs, batches, actives)
        for total, metrics, active, count in zip(totals, call_metrics, actives, counts):
            phases.add_weighted(total, metrics, active, count)
    return [phases.count_steps(run, total, count) for run, total, count in zip(runs, totals, counts)]


def _vmapped_update(runs: list[Run], batches: list[Transitions], actives: list[np.ndarray]) -> list[dict]:
    """One compiled call updating every run's agent; each run's mean metrics of the call.

    The call has as many lanes as the group the runs were started in (Run.update_lanes): a seed
    resumed alone fills the others with idle copies of itself. XLA's arithmetic depends on the
    number of lanes, not on what the other lanes hold, so the seed's numbers stay those of the group.
    """
    size = runs[0].config.updates_per_call
    padding = max(run.update_lanes for run in runs) - len(runs)
    states = [run.state for run in runs] + [runs[0].state] * padding
    batches = batches + [_empty_batches(runs[0], size)] * padding
    actives = actives + [np.zeros(size, bool)] * padding
    stacked = Transitions(*(np.stack(fields) for fields in zip(*batches)))
    states, metrics = update_seeds(states, jax.device_put(stacked), jax.device_put(np.stack(actives)))
    for run, state in zip(runs, states):
        run.state = state
    metrics = {key: np.asarray(value) for key, value in metrics.items()}
    return [{key: float(value[i]) for key, value in metrics.items()} for i in range(len(runs))]


def _empty_batches(run: Run, size: int) -> Transitions:
    """Zero batches for a run with nothing to learn in this call (no sampling, no RNG use)."""
    shape = (size, run.config.batch_size)
    return Transitions(*(np.zeros(shape + field.shape[1:], field.dtype) for field in run.offline))


def _slowest(runs: list[Run]) -> int:
    """Online steps of the run furthest behind."""
    return min(run.counters.online_done for run in runs)


def _label(text: str, runs: list[Run]) -> str:
    return f"{text} ({len(runs)} seeds)"
