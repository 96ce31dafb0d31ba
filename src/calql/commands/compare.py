"""`calql compare --task T --seeds N [--methods M...] [--out DIR] [train options...]`: Cal-QL and CQL
(or the methods named) on the same data for N seeds, then the report of `calql plot` on those runs.

The grid is planned as a sweep's (tasks x methods x seeds) and each run is a sweep trial, run here
one after the other: running the same comparison again skips finished runs and resumes
interrupted ones from their checkpoints."""

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from calql.console import regret_text
from calql.errors import CalqlError
from calql.methods import COMPARED, METHODS

RUNS_FOLDER = "runs"
"""OUT/runs holds the run directories (TASK-METHOD-sSEED)."""
RESERVED = ("--algo", "--seed", "--run-dir", "--run-name", "--resume")
"""Train options compare sets itself."""


class CompareUsageError(CalqlError):
    """A compare option that cannot be honoured."""


def build_parser(prog: str = "calql compare") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        allow_abbrev=False,
        description="Train Cal-QL and CQL (or --methods) with seeds 0..N-1 on each task (every run uses the same "
        "dataset: --dataset-seed is shared), then write figures, results.csv and report.md. Running the same command "
        "again skips finished runs and resumes interrupted ones. Any other option is passed to `calql train` "
        "for every run (see `calql train --help`), except --algo, --seed, --run-dir, --run-name and --resume.",
    )
    parser.add_argument(
        "--task",
        nargs="+",
        action="extend",
        required=True,
        metavar="TASK",
        help="task(s) to compare on; with several, the report adds IQM and probability of improvement",
    )
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds per method (default: 3)")
    parser.add_argument(
        "--methods",
        nargs="+",
        default=list(COMPARED),
        metavar="METHOD",
        help=f"methods to compare, the sweep's names: {', '.join(METHODS)} (default: {' '.join(COMPARED)})",
    )
    parser.add_argument("--out", default=None, help="output folder (default: runs/compare-<time>); runs go to OUT/runs")
    return parser


def _reserved_option(train_options: list[str]) -> str | None:
    for arg in train_options:
        for option in RESERVED:
            if arg == option or arg.startswith(option + "="):
                return option
    return None


def plan(args: list[str]):
    """Options -> (output folder, trials) ordered seed by seed, so a stopped comparison still has
    paired runs. Every configuration is built and checked before anything trains."""
    options, train_options = build_parser().parse_known_args(args)
    # Imported after parsing, here and below: they load JAX and MuJoCo, `calql compare --help` need not wait.
    from calql.envs.tasks import get_task
    from calql.options import train_overrides
    from calql.sweep.spec import Grid, trials

    if options.seeds < 1:
        raise CompareUsageError(f"--seeds must be >= 1, got {options.seeds}")
    if option := _reserved_option(train_options):
        raise CompareUsageError(f"{option} is set by compare itself (seeds 0..N-1, --methods, OUT/runs)")
    for method in options.methods:
        if method not in METHODS:
            raise CompareUsageError(f"--methods: unknown method {method!r}; accepted: {', '.join(METHODS)}")
    tasks = tuple(dict.fromkeys(options.task))
    for task in tasks:
        get_task(task)  # an unknown task gets calql train's message (--task: unknown task ...)
    out = Path(options.out or f"runs/compare-{time.strftime('%Y%m%d-%H%M%S')}")
    methods = tuple(dict.fromkeys(options.methods))
    grid = Grid(tasks, methods, tuple(range(options.seeds)), train_overrides(train_options))
    runs = str(out / RUNS_FOLDER)
    return out, [
        dataclasses.replace(t, config=dataclasses.replace(t.config, run_dir=runs)) for t in trials(grid, "command line")
    ]


def _eval_line(row: dict) -> None:
    print(
        f"  {row['phase']} step {row['step']}: score {row['normalized_score']:.1f}, Q on data "
        f"{row['calibration/q_data']:.1f} vs MC return {row['calibration/mc_return']:.1f}",
        flush=True,
    )


def _run_all(runs_dir: Path, trials) -> list[Path]:
    """Each trial in turn (finished ones skipped, interrupted ones resumed); their run directories."""
    from calql import api
    from calql.sweep.trial import placed, read_summary, trial_paths, trial_state

    run_dirs = []
    for number, trial in enumerate(trials, start=1):
        state, config = trial_state(runs_dir, trial), trial.config
        how = {"done": ": finished earlier, skipped", "resume": ", resuming", "new": ""}[state]
        print(f"[{number}/{len(trials)}] {trial.method} on {config.task}, seed {config.seed}{how}", flush=True)
        if state != "done":
            api.train(placed(runs_dir, trial, state), report=_eval_line)
        run_dir = trial_paths(runs_dir, trial)[0]
        summary = read_summary(run_dir)
        print(
            f"  score {summary['offline']['normalized_score']:.1f} after pre-training -> "
            f"{summary['final']['normalized_score']:.1f} after fine-tuning, regret {regret_text(summary['regret'])}, "
            f"{summary['wall_time']:.0f} s",
            flush=True,
        )
        run_dirs.append(run_dir)
    return run_dirs


def _write_report(run_dirs: list[Path], out: Path) -> Path:
    from calql.reporting.report import write_report
    from calql.reporting.runs import find_runs

    return write_report(find_runs(run_dirs), out)


def _run_until_interrupted(args: list[str], out: Path, trials) -> list[Path]:
    """_run_all; Ctrl-C or SIGTERM ends it as it ends `calql train` (training/loop.py), in one line:
    where the comparison stands and the command that continues it, exit 130."""
    from calql.sweep.runner import sigterm_as_ctrl_c
    from calql.sweep.trial import continue_command, where_it_stands
    from calql.training.loop import Interrupted

    try:
        with sigterm_as_ctrl_c():
            return _run_all(out / RUNS_FOLDER, trials)
    except (KeyboardInterrupt, Interrupted):
        raise Interrupted(
            f"interrupted: {where_it_stands(out / RUNS_FOLDER, trials)} (in {out / RUNS_FOLDER}); "
            f"continue with `{continue_command('compare', args, out)}`"
        ) from None


def main(args: list[str]) -> int:
    try:
        out, trials = plan(args)
        run_dirs = _run_until_interrupted(args, out, trials)
        path = _write_report(run_dirs, out)
    except CalqlError as error:  # also caught by calql.cli; here for direct callers
        print(f"calql: error: {error}", file=sys.stderr)
        return getattr(error, "exit_code", 2)
    print(f"report: {path}")
    return 0
