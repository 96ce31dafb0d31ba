"""Opening one seed's run: its task and data, a new agent, the evaluation environment, the run
directory and log, the reference value of the bound (--reference, --reference-scale,
--reference-noise); with --resume, all of it put back exactly where the run's newest checkpoint
left it."""

import contextlib
import itertools
import shutil
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import gymnasium as gym
import jax
import numpy as np
from rich.console import Console

from calql.agent.state import new_agent
from calql.config import ConfigError, TrainConfig
from calql.data.frames import agent_input, is_image
from calql.data.replay import gather
from calql.envs.binding import bind
from calql.envs.tasks import Task, get_task
from calql.errors import storage_error
from calql.rundir import CONFIG_FILE
from calql.training import checkpoint, reference
from calql.training.metrics import RunLog, new_run_dir, read_update_lanes
from calql.training.run import Run, Timer, load_offline_data
from calql.training.watch import LagrangeWatch

CALIBRATION_BATCH = 4096


def open_run(config: TrainConfig, console: Console, report: Callable[[dict], None], update_lanes: int = 1) -> Run:
    """A run ready for its phases: new, or (config.resume) restored from its newest checkpoint.
    Call checkpoint.check_resume_options(config) first when resuming. `update_lanes`: the seeds
    of a new run's vmapped update (--seeds); a resumed run keeps the number it started with."""
    timers: defaultdict[str, float] = defaultdict(float)
    task = bind(get_task(config.task), config.dataset, config.filter_dataset)
    with Timer(timers, "dataset"):
        offline, ends = load_offline_data(task, config)
    agent_key, act_key = jax.random.split(jax.random.PRNGKey(config.seed))
    _check_pixel_options(config, offline)
    state = new_agent(config.algo, agent_key, agent_input(offline.observations), offline.actions.shape[1], config.agent)
    calibration_rows = _calibration_rows(config.seed, offline.size)
    eval_env = _eval_env(task, config.seed)
    run_dir = _run_dir(config)
    made_here = not config.resume and not (config.run_name and run_dir.exists())  # a default name is claimed new
    with _removed_if_opening_fails(run_dir, made_here):
        checkpoints = checkpoint.manager(run_dir, config.keep_checkpoints)
        restored = checkpoint.restore_for_resume(checkpoints, state, config) if config.resume else None
        meta = restored[2] if restored else {}
        if config.resume:
            update_lanes = read_update_lanes(run_dir)
        log = RunLog(run_dir, config, meta.get("log_lines"), meta.get("log_step"), update_lanes)
    calibration_batch = gather(offline, calibration_rows)  # keeps the true MC returns for the diagnostic
    if config.algo == "calql":  # CQL has no bound to refer to
        offline = reference.with_chosen_reference(offline, ends, config, calibration_rows, log, timers)
    run = Run(
        config,
        task,
        state,
        offline,
        log,
        np.random.default_rng(config.seed),
        act_key,
        calibration_batch,
        eval_env,
        console,
        report,
        checkpoints,
        timers=timers,
        update_lanes=update_lanes,
    )
    if restored:
        checkpoint.restore_run(run, restored)
    if config.agent.cql_lagrange:
        run.lagrange_watch = LagrangeWatch(config.agent.cql_target_action_gap, warned=bool(run.counters.warnings))
    return run


def _check_pixel_options(config: TrainConfig, offline) -> None:
    """Image observations train Cal-QL and CQL with Monte-Carlo references only (docs/algorithm.md section 10)."""
    if not is_image(offline.observations):
        return
    if config.algo not in ("calql", "cql"):
        raise ConfigError(f"--algo {config.algo}: task {config.task} has image observations; use --algo calql or cql")
    if config.reference != "mc":
        raise ConfigError(
            f"--reference {config.reference}: task {config.task} has image observations; use --reference mc"
        )


def _calibration_rows(seed: int, size: int) -> np.ndarray:
    """The rows of the calibration diagnostic's fixed batch, from their own seed so resuming needs no copy."""
    return np.random.default_rng([seed, 1]).integers(0, size, min(CALIBRATION_BATCH, size))


def _eval_env(task: Task, seed: int) -> gym.Env:
    """The evaluation environment: its own seed (seed + 1), apart from the training one."""
    env = task.make_env(seed + 1)
    env.reset(seed=seed + 1)
    return env


def _run_dir(config: TrainConfig) -> Path:
    """The folder being resumed, a new RUN_DIR/RUN_NAME that holds no run yet, or (default name)
    a new folder claimed atomically: runs started in the same second get -2, -3, ... suffixes."""
    if config.resume:
        return Path(config.resume)
    run_dir = new_run_dir(config)
    if not config.run_name:
        return _claim_free_folder(run_dir)
    refuse_if_taken(run_dir)
    return run_dir


def refuse_if_taken(run_dir: Path) -> None:
    """Refuse a --run-name folder that holds a run, holds other files, or is a file."""
    if (run_dir / CONFIG_FILE).exists():
        raise ConfigError(
            f"--run-name: {run_dir} already holds a run; resume it with --resume {run_dir} or choose another --run-name"
        )
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise ConfigError(
            f"--run-name: {run_dir} exists and holds files but is not a calql run (no {CONFIG_FILE}); "
            "choose another --run-name or --run-dir, or empty that folder"
        )
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--run-name: {run_dir} is a file, not a folder; choose another --run-name or --run-dir")


def _claim_free_folder(wanted: Path) -> Path:
    """Create `wanted`, or wanted-2, wanted-3, ... if taken; mkdir fails if another process won."""
    for attempt in itertools.count(1):
        candidate = wanted if attempt == 1 else wanted.with_name(f"{wanted.name}-{attempt}")
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            continue
        except OSError as error:
            raise storage_error(error, f"--run-dir {wanted.parent}: cannot create {candidate.name}") or error from None
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _removed_if_opening_fails(run_dir: Path, made_here: bool) -> Iterator[None]:
    """A run folder made by this call that could not be set up (disk full, read-only) is removed
    again, so the same command can be rerun; a folder that existed before (a resumed run, an
    empty folder named by --run-name) is left alone. File-system faults become one line."""
    try:
        yield
    except Exception as error:
        if made_here:
            shutil.rmtree(run_dir, ignore_errors=True)
        fault = storage_error(error, f"{run_dir}: cannot set up the run folder")
        if fault is None:
            raise
        raise fault from None
