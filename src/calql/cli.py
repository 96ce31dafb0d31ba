"""The `calql` command line: dispatch to calql.commands.<module>.main.

Only the chosen command's module is imported: `calql eval --video` must set MUJOCO_GL before
the first MuJoCo import, and `--help` stays fast. For the same reason a command line that names a
visual task (`visual-*`: a task, its dataset file or its run directory) gets MUJOCO_GL=egl here,
when it is unset and an EGL library is installed (those tasks render every observation offscreen).
"""

import ctypes.util
import importlib
import os
import sys

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
COMMAND_MODULES = {
    "train": "train",
    "eval": "evaluate",
    "plot": "plot",
    "compare": "compare",
    "datasets": "datasets",
    "sweep": "sweep",
}
USAGE = f"usage: calql {{{','.join(COMMANDS)}}} [--help] ...\n" + "\n".join(
    f"  {name}: {doc}" for name, doc in COMMANDS.items()
)


class UsageError(CalqlError):
    """A command-line mistake caught before a command parses its options."""


def default_rendering_backend(args: list[str]) -> None:
    """MUJOCO_GL=egl for a command line that names a visual task, unless MUJOCO_GL is set or no EGL
    library is installed (MuJoCo would then fail to import; the task reports the fix instead)."""
    names_visual_task = any("visual-" in arg for arg in args)
    if names_visual_task and "MUJOCO_GL" not in os.environ and ctypes.util.find_library("EGL"):
        os.environ["MUJOCO_GL"] = "egl"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    default_rendering_backend(args)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    try:
        if command in COMMAND_MODULES:
            return importlib.import_module(f"calql.commands.{COMMAND_MODULES[command]}").main(rest)
        raise UsageError(f"unknown command {command!r}; accepted: {', '.join(COMMANDS)}")
    except (CalqlError, FileNotFoundError) as error:
        print(f"calql: error: {error}", file=sys.stderr)
        return getattr(error, "exit_code", 2)
    except KeyboardInterrupt:  # before a run exists (loading, compiling): nothing to save
        print("calql: interrupted before anything was saved", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
