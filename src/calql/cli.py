"""The `calql` command line: train, eval, plot, compare.

Modules that import MuJoCo are imported inside the commands: `calql eval --video` must set
MUJOCO_GL before the first MuJoCo import.
"""

import dataclasses
import importlib
import sys
from pathlib import Path

import tyro
from rich.console import Console
from rich.table import Table

from calql.config import PRESETS, TrainConfig, config_from_dict
from calql.errors import CalqlError

COMMANDS = {
    "train": "pre-train offline, then fine-tune online (Cal-QL or CQL); --resume RUN_DIR continues a run",
    "eval": "evaluate a run's policy with confidence intervals, optionally recording a video",
    "plot": "learning curves, fine-tuning zoom, calibration and regret figures from run directories",
    "compare": "run Cal-QL and CQL over seeds on one task and write a report",
    "datasets": "list built-in and local datasets, generate a built-in one, describe and check a dataset",
    "sweep": "run a grid of tasks x methods x seeds on Ray (local or a cluster), resumable, with a report",
}
# Commands implemented in calql.commands.<module>.main(args) -> exit code.
COMMAND_MODULES = {"eval": "evaluate", "plot": "plot", "compare": "compare", "datasets": "datasets", "sweep": "sweep"}
USAGE = f"usage: calql {{{','.join(COMMANDS)}}} [--help] ...\n" + "\n".join(
    f"  {name}: {doc}" for name, doc in COMMANDS.items()
)


class UsageError(CalqlError):
    """A command-line mistake caught before tyro parses the options."""


def _option_value(args: list[str], option: str) -> str | None:
    """The value of `--option VALUE` or `--option=VALUE` in args, if present."""
    for i, arg in enumerate(args):
        if arg == option and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    return None


def _without_option(args: list[str], option: str) -> list[str]:
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            out.append(arg)
    return out


def _train_description() -> str:
    from calql.envs.tasks import TASKS

    tasks = "\n".join(f"  {name}: {task.description}" for name, task in TASKS.items())
    presets = ", ".join(PRESETS)
    return (
        "Pre-train Cal-QL (or CQL with --algo cql) on a task's offline dataset, fine-tune it online, "
        "and print success and normalized score after each phase, cumulative regret and wall time.\n\n"
        f"--preset NAME picks the hyperparameter preset ({presets}); by default the task's own. "
        "Every option below overrides the preset.\n\nTasks:\n" + tasks
    )


def _resumed_defaults(run_dir: str) -> TrainConfig:
    """With --resume, the run's own saved options are the defaults (any option given must match)."""
    from calql.training.metrics import read_config

    return dataclasses.replace(config_from_dict(read_config(Path(run_dir))), resume=run_dir)


def parse_train_args(args: list[str]) -> TrainConfig:
    """Options -> TrainConfig: the preset (explicit or the task's) gives the defaults."""
    resume = _option_value(args, "--resume")
    if resume:
        return tyro.cli(TrainConfig, default=_resumed_defaults(resume), args=args, prog="calql train",
                        description=_train_description())
    from calql.envs.tasks import TASKS, get_task

    task_name = _option_value(args, "--task") or TrainConfig.task
    preset_name = _option_value(args, "--preset")
    if preset_name is None:
        preset_name = get_task(task_name).preset if task_name in TASKS else "pointmaze"
    if preset_name not in PRESETS:
        raise UsageError(f"--preset: unknown preset {preset_name!r}; accepted: {', '.join(PRESETS)}")
    default = dataclasses.replace(PRESETS[preset_name], task=task_name)
    return tyro.cli(
        TrainConfig, default=default, args=_without_option(args, "--preset"),
        prog="calql train", description=_train_description(),
    )


def print_summary(result, config: TrainConfig, console: Console) -> None:
    table = Table(title=f"{config.algo} on {config.task} (seed {config.seed})")
    for column in ("", "success rate", "normalized score"):
        table.add_column(column, justify="right")
    table.add_row("after offline pre-training", f"{result.offline['success']:.2f}",
                  f"{result.offline['normalized_score']:.1f}")
    table.add_row("after online fine-tuning", f"{result.final['success']:.2f}", f"{result.final['normalized_score']:.1f}")
    console.print(table)
    console.print(f"cumulative regret: {result.regret:.3f}   wall time: {result.wall_time:.0f} s   "
                  f"run directory: {result.run_dir}")


def report_line(console: Console):
    """One printed line per evaluation (the `report` callback of training.loop.train)."""
    def report(row: dict) -> None:
        extra = f"  regret {row['cumulative_regret']:.3f}" if "cumulative_regret" in row else ""
        console.print(
            f"[seed {row['seed']} {row['phase']} step {row['step']}] success {row['success']:.2f}  score {row['normalized_score']:.1f}  "
            f"Q(s,a) {row['calibration/q_data']:.1f} vs MC return {row['calibration/mc_return']:.1f}{extra}",
            markup=False,
        )

    return report


def train_command(args: list[str]) -> int:
    from calql.training.loop import train, train_seeds  # imported late: keeps `--help` fast

    config = parse_train_args(args)
    console = Console()
    if config.seeds:
        results = train_seeds(config, list(config.seeds), report=report_line(console), console=console)
        for seed, result in zip(config.seeds, results):
            print_summary(result, dataclasses.replace(config, seed=seed), console)
        return 0
    result = train(config, report=report_line(console), console=console)
    print_summary(result, config, console)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    try:
        if command == "train":
            return train_command(rest)
        if command in COMMAND_MODULES:
            return importlib.import_module(f"calql.commands.{COMMAND_MODULES[command]}").main(rest)
        raise UsageError(f"unknown command {command!r}; accepted: {', '.join(COMMANDS)}")
    except (CalqlError, FileNotFoundError) as error:
        print(f"calql: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
