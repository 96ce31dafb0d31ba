"""One trial, as a Ray worker runs it: finished -> skip, interrupted -> resume from its newest
checkpoint, never started (or killed before its first checkpoint) -> start afresh.

Each attempt appends to the trial's log (SWEEP_DIR/trials/NAME.log): its pid, what it did, the
training output, and on failure the traceback. The run itself lives in SWEEP_DIR/trials/NAME.
"""

import json
import os
import shutil
import time
import traceback
from pathlib import Path

from rich.console import Console

from calql.sweep.spec import Trial
from calql.training.metrics import CONFIG_FILE, SUMMARY_FILE


def trial_paths(sweep_dir: Path, trial: Trial) -> tuple[Path, Path]:
    """(run directory, log file) of a trial."""
    folder = Path(sweep_dir) / "trials"
    return folder / trial.name, folder / f"{trial.name}.log"


def trial_state(sweep_dir: Path, trial: Trial) -> str:
    """"done", "resume" (a run with a checkpoint to continue from) or "new"."""
    run_dir, _ = trial_paths(sweep_dir, trial)
    if (run_dir / SUMMARY_FILE).is_file():
        return "done"
    if (run_dir / CONFIG_FILE).is_file() and any((run_dir / "checkpoints").glob("*")):
        return "resume"
    return "new"


def read_summary(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / SUMMARY_FILE).read_text())


def outcome_of(trial: Trial, status: str, run_dir: Path, log: Path, **extra) -> dict:
    return {"name": trial.name, "status": status, "run_dir": str(run_dir), "log": str(log), **extra}


def run_trial(sweep_dir: str, trial: Trial) -> dict:
    """Run or continue one trial to its end; returns {"name", "status": done|failed, "run_dir",
    "log", "summary" | "reason"}. A failure of the trial itself (bad data, a diverged run) is
    returned, not raised: retrying would fail the same way. A killed worker is Ray's to retry."""
    from calql.cli import parse_train_args, report_line
    from calql.training.loop import train

    run_dir, log_path = trial_paths(Path(sweep_dir), trial)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", buffering=1) as log:
        state = trial_state(Path(sweep_dir), trial)
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()} host {os.uname().nodename}: {state}\n")
        if state == "done":
            return outcome_of(trial, "done", run_dir, log_path, summary=read_summary(run_dir), resumed=False)
        if state == "new" and run_dir.exists():
            shutil.rmtree(run_dir)  # killed before its first checkpoint: nothing in it to keep
        args = [*trial.args, "--run-dir", str(run_dir.parent), "--run-name", trial.name]
        if state == "resume":
            args += ["--resume", str(run_dir)]
        try:
            try:
                config = parse_train_args(args)
            except SystemExit:  # tyro's way to reject options; the spec check makes this rare
                raise ValueError(f"calql train rejected the options: {' '.join(args)}") from None
            console = Console(file=log, force_terminal=False, width=120)
            result = train(config, report=report_line(console), console=console)
        except BaseException as error:
            if not isinstance(error, Exception):
                raise  # KeyboardInterrupt / SystemExit: let the worker stop
            log.write(traceback.format_exc())
            reason = f"{type(error).__name__}: {error}".splitlines()[0]
            return outcome_of(trial, "failed", run_dir, log_path, reason=reason)
        log.write(f"finished in {result.wall_time:.0f} s\n")
        return outcome_of(trial, "done", run_dir, log_path, summary=read_summary(run_dir), resumed=state == "resume")
