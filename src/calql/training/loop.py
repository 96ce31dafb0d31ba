"""Training entry points: `train` one seed (or resume its run), `train_seeds` several at once.

The pieces, one job each:
  run.py         the state of one seed's run (Run, Counters) and the summary it ends with
  opening.py     opening a run: data, agent, run directory, learned reference; restored on --resume
  phases.py      one seed's offline and online phases, step by step (docs/algorithm.md section 5)
  population.py  the same steps for several seeds in lockstep, with one vmapped update
  checkpoint.py  saving and restoring a run; the checks that a resume continues the same run
  reference.py   --reference learned: the behaviour value fit that replaces the MC returns
"""

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator

from rich.console import Console

from calql.config import ConfigError, TrainConfig, validate
from calql.errors import CalqlError, StorageError, storage_error
from calql.rundir import is_finished
from calql.training import checkpoint, phases, population
from calql.training.metrics import new_run_dir
from calql.training.opening import open_run, refuse_if_taken
from calql.training.run import Run, RunResult, close, finish, stored_result

__all__ = ["RunResult", "train", "train_seeds"]


class Interrupted(CalqlError):
    """Training stopped by Ctrl-C or SIGTERM; the message says what is saved and how to continue."""

    exit_code = 130


def _saved_state(run: Run) -> str:
    step = run.checkpoints.latest_step()  # type: ignore[attr-defined]
    if step is None:
        return f"{run.log.path}: nothing saved yet; `calql train --resume {run.log.path}` starts it again"
    return f"{run.log.path}: saved up to checkpoint {step}; continue with `calql train --resume {run.log.path}`"


def _close_all(runs: list[Run]) -> None:
    """Close each run (waiting for a checkpoint write in flight); a run whose files cannot be
    closed (the disk that stopped it is still full) keeps what it has on disk."""
    for run in runs:
        try:
            close(run)
        except OSError:
            pass


@contextlib.contextmanager
def closed_on_error(runs: list[Run]) -> Iterator[None]:
    """Close the runs' logs and checkpoints when training stops with an error (no summary.json:
    the run did not finish). Ctrl-C or SIGTERM becomes one `Interrupted` line once the checkpoint
    being written (if any) is complete; a file-system fault (disk full, read-only) one
    StorageError line; both say what is saved and how to continue."""
    try:
        yield
    except KeyboardInterrupt:
        _close_all(runs)
        if not runs:
            raise
        raise Interrupted("interrupted: " + "; ".join(_saved_state(run) for run in runs)) from None
    except Exception as error:
        _close_all(runs)
        fault = error if isinstance(error, StorageError) else storage_error(error, "cannot write the run's files")
        if fault is None or not runs:
            raise
        raise StorageError(f"{fault}; " + "; ".join(_saved_state(run) for run in runs)) from None


def train(
    config: TrainConfig, report: Callable[[dict], None] = lambda row: None, console: Console | None = None
) -> RunResult:
    """Run (or resume) offline pre-training then online fine-tuning; returns the summary."""
    start = time.perf_counter()
    config = validate(config)
    if config.resume:
        checkpoint.check_resume_options(config)
        if is_finished(config.resume):
            return stored_result(config.resume)  # nothing left to do: the run stays as it is
    run = open_run(config, console or Console(), report)
    run.started = start
    with closed_on_error([run]):
        if run.update_lanes > 1:  # a seed of a --seeds group, resumed alone: the group's vmapped update
            population.train_population([run])
        else:
            phases.train_run(run)
        return finish(run)


def train_seeds(
    config: TrainConfig,
    seeds: list[int],
    report: Callable[[dict], None] = lambda row: None,
    console: Console | None = None,
) -> list[RunResult]:
    """Independent agents for several seeds in one process: each has its own parameters, RNGs,
    online buffer, environments and run directory, and all share one compiled, vmapped update
    per call. Each seed's run is resumable alone (`train` with config.resume): it is then updated
    in as many vmapped lanes as the group had, so it continues exactly as it would have in the group."""
    start = time.perf_counter()
    config = validate(config)
    if config.resume:
        raise ConfigError("--resume cannot be combined with --seeds: resume each seed's run directory on its own")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds must be distinct, got {seeds}")
    console = console or Console()
    configs = [seed_config(config, seed, several=len(seeds) > 1) for seed in seeds]
    for seed_run in configs:  # before any folder is made: a refused command leaves nothing behind
        if seed_run.run_name:
            refuse_if_taken(new_run_dir(seed_run))
    runs: list[Run] = []
    with closed_on_error(runs):
        runs.extend(open_run(seed_run, console, report, len(configs)) for seed_run in configs)
        for run in runs:
            run.started = start
        if len(runs) == 1:
            phases.train_run(runs[0])
        else:
            population.train_population(runs)
        return [finish(run) for run in runs]


def seed_config(config: TrainConfig, seed: int, several: bool) -> TrainConfig:
    """One seed's configuration in a --seeds group; --run-name NAME becomes NAME-sSEED when
    there are several, so each seed has its own folder."""
    run_name = f"{config.run_name}-s{seed}" if config.run_name and several else config.run_name
    return dataclasses.replace(config, seed=seed, seeds=(), run_name=run_name)
