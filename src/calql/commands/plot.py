"""`calql plot RUN_DIR... [--out DIR]`: figures, tables and a Markdown report from run directories."""

import argparse
import sys

from calql.errors import CalqlError
from calql.reporting.runs import find_runs

DESCRIPTION = (
    "Draw, across seeds (mean with a 95% bootstrap confidence band), the learning curve through "
    "pre-training and fine-tuning, a zoom on the start of fine-tuning, the calibration diagnostic "
    "(mean Q on the data vs Monte-Carlo return) and cumulative regret, with Cal-QL and CQL on the same "
    "axes; write report.md, results.csv and seeds.csv. Runs are grouped by (task, algorithm)."
)


def build_parser(prog: str = "calql plot") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, allow_abbrev=False)
    parser.add_argument(
        "run_dirs",
        nargs="+",
        metavar="RUN_DIR",
        help="a run directory of `calql train`, or a folder of them (e.g. runs/)",
    )
    parser.add_argument("--out", default="plots", help="output folder (default: plots)")
    return parser


def main(args: list[str]) -> int:
    options = build_parser().parse_args(args)
    from calql.reporting.report import write_report  # imported after parsing: keeps `--help` fast

    try:
        runs = find_runs(options.run_dirs)
        path = write_report(runs, options.out)
    except CalqlError as error:  # also caught by calql.cli; here for direct callers
        print(f"calql: error: {error}", file=sys.stderr)
        return 2
    print(f"{len(runs)} runs -> {path}")
    return 0
