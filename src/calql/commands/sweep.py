"""`calql sweep [SPEC.toml] [--tasks ...] [--methods ...] [--seeds ...] [train options...]`: a grid of
`calql train` trials run on Ray (a local instance, or a cluster with --address), resumable, with an
aggregated report; `calql sweep --report SWEEP_DIR` rewrites the report of a sweep folder."""

import argparse
import math
import shlex
import sys
import time
from pathlib import Path

from calql.errors import CalqlError
from calql.methods import METHODS

REPORT_FOLDER = "report"


class SweepUsageError(CalqlError):
    """A sweep option that cannot be honoured; one line naming the option and what to give instead."""


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad option is a SweepUsageError (`calql: error: ...`, one line) rather than
    the usage text and a second line."""

    def error(self, message: str):  # type: ignore[override]
        raise SweepUsageError(message)


def _number_at_least(minimum: float, strictly: bool, meaning: str, kind: type = float):
    """An argparse type: a finite `kind` >= minimum (> minimum if strictly), else a message saying
    what the option means and what it accepts."""
    bound = f"{'>' if strictly else '>='} {minimum:g}"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value < minimum or (strictly and value == minimum):
            raise argparse.ArgumentTypeError(
                f"must be {'an integer' if kind is int else 'a number'} {bound} ({meaning}), got {text!r}"
            )
        return value

    return parse


def build_parser(prog: str = "calql sweep", with_spec: bool = True) -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog=prog,
        allow_abbrev=False,
        description="Run every (task, method, seed) trial of a grid as its own `calql train` run on Ray, then "
        "write a report (per task and method: offline and fine-tuned normalized score, cumulative regret and "
        "fine-tuning dip with 95%% bootstrap intervals; across tasks: IQM and probability of improvement). "
        "Running the same sweep again skips finished trials and resumes interrupted ones from their "
        "checkpoints. Options not listed here are `calql train` options for every trial; they override the "
        "specification's [options].",
    )
    if with_spec:  # for --help; _parse takes the specification off the front itself
        parser.add_argument(
            "spec",
            nargs="?",
            help="sweep specification (TOML: tasks, methods, seeds, [options]); if given, it comes first",
        )
    parser.add_argument("--tasks", nargs="+", help="tasks (override the specification's)")
    parser.add_argument("--methods", nargs="+", help=f"methods: {', '.join(METHODS)} (override the specification's)")
    parser.add_argument("--seeds", nargs="+", type=int, help="seeds (override the specification's)")
    parser.add_argument("--out", help="sweep folder (default: runs/sweeps/<spec file name>, or a dated one)")
    parser.add_argument(
        "--address",
        help="join this Ray cluster (e.g. auto, or HEAD_IP:6379) instead of starting a local Ray sized to this machine",
    )
    parser.add_argument(
        "--cpus-per-trial",
        type=_number_at_least(0, True, "the CPUs Ray reserves for each trial, e.g. 1 or 0.5"),
        default=1.0,
        help="CPUs Ray reserves per trial, > 0 (default 1)",
    )
    parser.add_argument(
        "--gpus-per-trial",
        type=_number_at_least(0, False, "the GPUs Ray reserves for each trial; 0: none"),
        default=0.0,
        help="GPUs Ray reserves per trial (default 0)",
    )
    parser.add_argument(
        "--max-retries",
        type=_number_at_least(0, False, "times a trial whose worker died is rerun; 0: never", int),
        default=3,
        help="times Ray reruns a trial whose worker died; each rerun resumes it (default 3)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the trials and what would happen; run nothing")
    parser.add_argument("--report", metavar="SWEEP_DIR", help="only (re)write the report of this sweep folder")
    return parser


def command_line_overrides(train_options: list[str]) -> dict:
    """Train options given on the command line -> config overrides, parsed by calql train's parser."""
    from calql.config import OptionError
    from calql.options import train_overrides  # imported late here and below: `calql sweep --help` stays fast
    from calql.sweep.spec import SpecError

    unknown = [arg for arg in train_options if arg.startswith("-") and not arg.startswith("--")]
    if unknown:
        raise SpecError(f"command line: unknown option {unknown[0]!r}")
    try:
        return train_overrides(train_options)
    except OptionError as error:
        raise SpecError(f"command line: {error}") from None


def plan(args: list[str]):
    """Options -> (sweep options, sweep folder, trials, the specification's options that the
    command line overrides as `--name value`), every trial's configuration checked before anything runs."""
    from calql.options import option_args
    from calql.sweep.spec import Grid, grid_from_spec, merged, overridden, read_spec, trials

    options, train_options = _parse(args)
    if options.spec:
        where = options.spec
        grid = grid_from_spec(read_spec(Path(options.spec)), where)
    else:
        where, grid = "command line", Grid((), (), (), {})
    file_options, overrides = grid.options, command_line_overrides(train_options)
    grid = Grid(
        tuple(options.tasks or grid.tasks),
        tuple(options.methods or grid.methods),
        tuple(options.seeds if options.seeds is not None else grid.seeds),
        merged(file_options, overrides),
    )
    shadowed = [" ".join(option_args(name, value)) for name, value in overridden(file_options, overrides)]
    default_out = (
        f"runs/sweeps/{Path(options.spec).stem}"
        if options.spec
        else f"runs/sweeps/sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    return options, Path(options.out or default_out), trials(grid, where), shadowed


def _parse(args: list[str]):
    """(sweep options, train options). The specification is only the first argument: argparse
    would otherwise take the value of an unknown train option (--offline-steps 2000) for it."""
    if any(arg in ("-h", "--help") for arg in args):
        build_parser().parse_args(["--help"])
    spec, rest = (args[0], args[1:]) if args and not args[0].startswith("-") else (None, args)
    options, train_options = build_parser(with_spec=False).parse_known_args(rest)
    options.spec = spec
    return options, train_options


def write_sweep_report(sweep_dir: Path) -> Path:
    from calql.reporting.report import write_report
    from calql.reporting.runs import find_runs
    from calql.sweep.runner import TRIALS_FOLDER

    trials_dir = Path(sweep_dir) / TRIALS_FOLDER
    runs = find_runs([trials_dir]) if trials_dir.is_dir() else []
    if not runs:
        raise CalqlError(f"{sweep_dir}: no trial has started yet (no run directories under {trials_dir})")
    return write_report(runs, Path(sweep_dir) / REPORT_FOLDER)


def _dry_run(sweep_dir: Path, trials, shadowed: list[str], spec: str | None) -> None:
    """Each trial's state and equivalent `calql train` command (and which of the specification's
    options the command line replaced)."""
    from calql.options import command_line  # the sweep modules load JAX: imported late, `--help` stays fast
    from calql.sweep.runner import TRIALS_FOLDER
    from calql.sweep.trial import trial_state

    note = f"   (the command line overrides {spec}'s {', '.join(shadowed)})" if shadowed else ""
    print(f"sweep folder: {sweep_dir}   trials: {len(trials)}")
    for trial in trials:
        state = trial_state(sweep_dir / TRIALS_FOLDER, trial)
        print(f"  {state:6s} {trial.name}: calql train {shlex.join(command_line(trial.config))}{note}")


def interrupted_message(args: list[str], sweep_dir: Path, trials) -> str:
    """One line: how many trials are finished and saved at a checkpoint, and the command that
    continues the sweep."""
    from calql.sweep.runner import TRIALS_FOLDER
    from calql.sweep.trial import continue_command, where_it_stands

    trials_dir = sweep_dir / TRIALS_FOLDER
    return (
        f"interrupted: {where_it_stands(trials_dir, trials)} (in {trials_dir}); "
        f"continue with `{continue_command('sweep', args, sweep_dir)}`"
    )


def _run(args: list[str], options, sweep_dir: Path, trials) -> int:
    """Run the sweep and write its report; Ctrl-C or SIGTERM ends it as it ends `calql train`:
    one line saying what is saved and how to continue, exit 130 (training/loop.py: Interrupted)."""
    from calql.sweep.runner import run_sweep, sigterm_as_ctrl_c
    from calql.training.loop import Interrupted

    start = time.perf_counter()
    try:
        with sigterm_as_ctrl_c():
            outcomes = run_sweep(
                sweep_dir,
                trials,
                options.address,
                options.cpus_per_trial,
                options.gpus_per_trial,
                options.max_retries,
                print_line=lambda line: print(line, flush=True),
            )
    except KeyboardInterrupt:
        raise Interrupted(interrupted_message(args, sweep_dir, trials)) from None
    failed = [o for o in outcomes if o["status"] == "failed"]
    print(f"[sweep] finished in {time.perf_counter() - start:.0f} s; report: {write_sweep_report(sweep_dir)}")
    if failed:
        print(
            f"[sweep] {len(failed)} trial(s) failed; fix the cause and run the same command again "
            "(finished trials are kept)",
            file=sys.stderr,
        )
        return 1
    return 0


def main(args: list[str]) -> int:
    try:
        options = _parse(args)[0]
        if options.report:
            print(f"report: {write_sweep_report(Path(options.report))}")
            return 0
        options, sweep_dir, trials, shadowed = plan(args)
        if options.dry_run:
            _dry_run(sweep_dir, trials, shadowed, options.spec)
            return 0
        return _run(args, options, sweep_dir, trials)
    except CalqlError as error:  # also caught by calql.cli; here for direct callers
        print(f"calql: error: {error}", file=sys.stderr)
        return getattr(error, "exit_code", 2)
