"""One trial: finished -> skip, interrupted -> resume from its newest checkpoint, never started
(or killed before its first checkpoint was complete, or with none readable) -> start afresh.
`calql compare` runs trials this way in its own process; a sweep runs each in a Ray worker (`run_trial`).

A trial's run lives in TRIALS_DIR/NAME. In a sweep each attempt also appends to TRIALS_DIR/NAME.log:
its pid, what it did, the training output, and on failure its one-line reason (a traceback if
the failure is a bug rather than the user's to fix).
"""

import dataclasses
import json
import os
import shlex
import shutil
import sys
import time
import traceback
from pathlib import Path

from rich.console import Console

from calql import api
from calql.config import TrainConfig
from calql.console import report_line
from calql.errors import CalqlError
from calql.rundir import CHECKPOINT_FOLDER, CONFIG_FILE, SUMMARY_FILE
from calql.sweep.spec import Trial
from calql.training.checkpoint import NoReadableCheckpoint


def trial_paths(trials_dir: Path, trial: Trial) -> tuple[Path, Path]:
    """(run directory, log file) of a trial."""
    return Path(trials_dir) / trial.name, Path(trials_dir) / f"{trial.name}.log"


def finished_checkpoints(run_dir: Path) -> list[Path]:
    """The checkpoint folders of a run whose write completed: orbax writes each into
    STEP.orbax-checkpoint-tmp-* and renames it to STEP only at the end (training/checkpoint.py)."""
    folder = Path(run_dir) / CHECKPOINT_FOLDER
    return [path for path in folder.iterdir() if path.name.isdigit()] if folder.is_dir() else []


def trial_state(trials_dir: Path, trial: Trial) -> str:
    """ "done", "resume" (a run with a finished checkpoint to continue from) or "new"."""
    run_dir, _ = trial_paths(trials_dir, trial)
    if (run_dir / SUMMARY_FILE).is_file():
        return "done"
    if (run_dir / CONFIG_FILE).is_file() and finished_checkpoints(run_dir):
        return "resume"
    return "new"


def where_it_stands(trials_dir: Path, trials: list[Trial]) -> str:
    """Where an interrupted sweep or comparison stands: "1 of 4 trials finished, 2 saved at a checkpoint"."""
    states = [trial_state(trials_dir, trial) for trial in trials]
    return f"{states.count('done')} of {len(trials)} trials finished, {states.count('resume')} saved at a checkpoint"


def continue_command(command: str, args: list[str], out: Path) -> str:
    """`calql COMMAND ARGS`, with --out OUT added if ARGS lacks it (the default folder is dated):
    the command that continues an interrupted sweep or comparison."""
    has_out = any(arg == "--out" or arg.startswith("--out=") for arg in args)
    return f"calql {command} " + shlex.join(args if has_out else [*args, "--out", str(out)])


def leftover_note(run_dir: Path) -> str:
    """For a "new" trial whose folder exists: what is in it that a restart throws away (a run
    killed before its first checkpoint, or during its write), or "" if there is no folder."""
    if not run_dir.exists():
        return ""
    folder = run_dir / CHECKPOINT_FOLDER
    names = sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []
    holds = f" ({CHECKPOINT_FOLDER}/ holds {', '.join(names)})" if names else ""
    return f"{run_dir}: no finished checkpoint to resume from{holds}; restarting the trial from scratch\n"


def read_summary(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / SUMMARY_FILE).read_text())


def placed(trials_dir: Path, trial: Trial, state: str) -> TrainConfig:
    """The trial's configuration placed in TRIALS_DIR/NAME, resuming it when state is "resume".
    A "new" trial's leftover folder (killed before its first checkpoint) is removed: nothing in it to keep."""
    run_dir, _ = trial_paths(trials_dir, trial)
    if state == "new" and run_dir.exists():
        shutil.rmtree(run_dir)
    return dataclasses.replace(
        trial.config,
        run_dir=str(Path(trials_dir)),
        run_name=trial.name,
        resume=str(run_dir) if state == "resume" else "",
    )


def outcome_of(trial: Trial, status: str, run_dir: Path, log: Path, **extra) -> dict:
    return {"name": trial.name, "status": status, "run_dir": str(run_dir), "log": str(log), **extra}


def _ray_node() -> str:
    """ " ray node ID" (its first 12 hex digits) inside a Ray worker, else "": on a cluster several
    nodes can share a host (`ray start` on one machine), and the log says which ran the trial."""
    ray = sys.modules.get("ray")  # imported only where Ray runs this process
    if ray is None or not ray.is_initialized():
        return ""
    return f" ray node {ray.get_runtime_context().get_node_id()[:12]}"


def run_trial(trials_dir: str, trial: Trial) -> dict:
    """Run or continue one trial to its end, output to its log; returns {"name", "status":
    done|failed, "run_dir", "log", "summary" | "reason"}. A failure of the trial itself (bad data,
    a diverged run) is returned, not raised: retrying would fail the same way. A killed worker is
    Ray's to retry."""
    run_dir, log_path = trial_paths(Path(trials_dir), trial)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", buffering=1) as log:
        state = trial_state(Path(trials_dir), trial)
        where = f"pid {os.getpid()} host {os.uname().nodename}{_ray_node()}"
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {where}: {state}\n")
        if state == "done":
            return outcome_of(trial, "done", run_dir, log_path, summary=read_summary(run_dir), resumed=False)
        if state == "new":
            log.write(leftover_note(run_dir))
        try:
            state = _train_to_the_end(Path(trials_dir), trial, state, log)
        except BaseException as error:
            if not isinstance(error, Exception):
                raise  # KeyboardInterrupt / SystemExit: let the worker stop
            reason = f"{type(error).__name__}: {error}".splitlines()[0]
            # A CalqlError is the user's to fix and says so in one line; anything else is a bug: traceback.
            log.write(f"{reason}\n" if isinstance(error, CalqlError) else traceback.format_exc())
            return outcome_of(trial, "failed", run_dir, log_path, reason=reason)
        return outcome_of(trial, "done", run_dir, log_path, summary=read_summary(run_dir), resumed=state == "resume")


def _train_to_the_end(trials_dir: Path, trial: Trial, state: str, log) -> str:
    """Train the trial from `state`, output to `log`; a resume that finds no readable checkpoint
    (every finished one corrupt) starts afresh instead. Returns the state it ran from."""
    console = Console(file=log, force_terminal=False, width=120)
    try:
        result = api.train(placed(trials_dir, trial, state), report=report_line(console), console=console)
    except NoReadableCheckpoint as error:
        log.write(f"{error}: restarting the trial from scratch\n")
        state = "new"
        result = api.train(placed(trials_dir, trial, state), report=report_line(console), console=console)
    log.write(f"finished in {result.wall_time:.0f} s\n")
    return state
