"""`calql compare --task T --seeds N [--out DIR] [train options...]`: Cal-QL and CQL on the same
data for N seeds, then the report of `calql plot` on those runs."""

import argparse
import sys
import time
from pathlib import Path

from calql.errors import CalqlError

COMPARED = ("calql", "cql")
RESERVED = ("--algo", "--seed", "--run-dir", "--resume")
"""Train options compare sets itself."""


class CompareUsageError(CalqlError):
    """A compare option that cannot be honoured."""


def build_parser(prog: str = "calql compare") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, allow_abbrev=False,
        description="Train Cal-QL and CQL with seeds 0..N-1 on each task (every run uses the same dataset: "
        "--dataset-seed is shared), then write figures, results.csv and report.md. Any other option is "
        "passed to `calql train` for every run (see `calql train --help`), except --algo, --seed, --run-dir "
        "and --resume.",
    )
    parser.add_argument("--task", nargs="+", action="extend", required=True, metavar="TASK",
                        help="task(s) to compare on; with several, the report adds IQM and probability of improvement")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds per algorithm (default: 3)")
    parser.add_argument("--out", default=None, help="output folder (default: runs/compare-<time>); runs go to OUT/runs")
    return parser


def _reserved_option(overrides: list[str]) -> str | None:
    for arg in overrides:
        for option in RESERVED:
            if arg == option or arg.startswith(option + "="):
                return option
    return None


def plan(args: list[str]):
    """Options -> (output folder, [TrainConfig]) ordered seed by seed, so a stopped comparison
    still has paired runs. Every configuration is parsed before anything trains."""
    from calql.cli import parse_train_args
    from calql.config import validate
    from calql.envs.tasks import get_task

    options, overrides = build_parser().parse_known_args(args)
    if options.seeds < 1:
        raise CompareUsageError(f"--seeds must be >= 1, got {options.seeds}")
    if option := _reserved_option(overrides):
        raise CompareUsageError(f"{option} is set by compare itself (seeds 0..N-1, both algorithms, OUT/runs)")
    out = Path(options.out or f"runs/compare-{time.strftime('%Y%m%d-%H%M%S')}")
    configs = [
        parse_train_args([*overrides, "--task", task, "--algo", algo, "--seed", str(seed),
                          "--run-dir", str(out / "runs")])
        for seed in range(options.seeds) for task in dict.fromkeys(options.task) for algo in COMPARED
    ]
    for config in configs:
        get_task(config.task)
        validate(config)
    return out, configs


def _eval_line(row: dict) -> None:
    print(f"  {row['phase']} step {row['step']}: score {row['normalized_score']:.1f}, Q on data "
          f"{row['calibration/q_data']:.1f} vs MC return {row['calibration/mc_return']:.1f}", flush=True)


def _run_all(configs) -> list[str]:
    from calql.training.loop import train  # imported late: keeps `--help` fast

    run_dirs = []
    for number, config in enumerate(configs, start=1):
        print(f"[{number}/{len(configs)}] {config.algo} on {config.task}, seed {config.seed}", flush=True)
        result = train(config, report=_eval_line)
        run_dirs.append(result.run_dir)
        print(f"  score {result.offline['normalized_score']:.1f} after pre-training -> "
              f"{result.final['normalized_score']:.1f} after fine-tuning, regret {result.regret:.3f}, "
              f"{result.wall_time:.0f} s", flush=True)
    return run_dirs


def main(args: list[str]) -> int:
    from calql.envs.tasks import UnknownTaskError
    from calql.reporting.report import write_report
    from calql.reporting.runs import find_runs

    try:
        out, configs = plan(args)
        run_dirs = _run_all(configs)
        path = write_report(find_runs(run_dirs), out)
    except (CalqlError, UnknownTaskError) as error:  # also caught by calql.cli; here for direct callers
        print(f"calql: error: {error}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0
