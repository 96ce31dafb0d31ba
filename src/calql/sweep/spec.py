"""A sweep specification: tasks x methods x seeds, with `calql train` options shared by every trial.

    # sweep.toml
    tasks = ["pointmaze-umaze"]
    methods = ["calql", "cql"]          # also "calql-learned" (Cal-QL with --reference learned)
    seeds = [0, 1, 2]

    [options]                           # any `calql train` option, without the leading --
    offline-steps = 10000
    agent.critic-hidden-dims = [64, 64]

Every trial is an ordinary `calql train` run. The same grid can come from the command line
(--tasks, --methods, --seeds, extra train options); those override the file's.
"""

import contextlib
import dataclasses
import io
import tomllib
from pathlib import Path

from calql.config import TrainConfig, validate
from calql.errors import CalqlError

METHODS: dict[str, tuple[str, ...]] = {
    "calql": ("--algo", "calql"),
    "calql-learned": ("--algo", "calql", "--reference", "learned"),
    "cql": ("--algo", "cql"),
}
"""Method name -> the train options that select it."""
RESERVED = ("algo", "seed", "seeds", "task", "run-dir", "run-name", "resume", "reference")
"""Options a sweep sets per trial itself (reference through the method)."""
TOP_LEVEL = ("tasks", "methods", "seeds", "options")


class SpecError(CalqlError):
    """A sweep specification that cannot run; the message names the file and the field."""


@dataclasses.dataclass(frozen=True)
class Trial:
    """One `calql train` run of the sweep."""

    task: str
    method: str
    seed: int
    args: tuple[str, ...]
    """The complete `calql train` options of the trial, except --run-dir / --run-name / --resume."""

    @property
    def name(self) -> str:
        """Its run directory's name under SWEEP_DIR/trials (stable, so a re-run finds it)."""
        return f"{self.task}-{self.method}-s{self.seed}"


@dataclasses.dataclass(frozen=True)
class Grid:
    tasks: tuple[str, ...]
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    options: tuple[str, ...]
    """Train options shared by every trial, as command-line arguments."""


def read_spec(path: Path) -> dict:
    """The TOML file as a dict; SpecError with the file, line and column when it does not parse."""
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SpecError(f"{path}: no such sweep specification") from None
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{path}: not valid TOML: {error}") from None


def _list_of(spec: dict, field: str, kind: type, where: str) -> tuple:
    value = spec.get(field, [])
    if not isinstance(value, list) or not all(isinstance(v, kind) and not isinstance(v, bool) for v in value):
        raise SpecError(f"{where}: field '{field}' must be a list of {kind.__name__}s, got {value!r}")
    return tuple(value)


def option_args(options: dict, prefix: str = "") -> list[str]:
    """[options] table -> command-line arguments; nested tables are dotted names (agent.x)."""
    args = []
    for key, value in options.items():
        name = f"{prefix}{key}".replace("_", "-")
        if isinstance(value, dict):
            args += option_args(value, f"{name}.")
        elif isinstance(value, bool):
            head, _, leaf = name.rpartition(".")
            args.append(f"--{name}" if value else f"--{head + '.' if head else ''}no-{leaf}")
        elif isinstance(value, list):
            args += [f"--{name}", *map(str, value)]
        else:
            args += [f"--{name}", str(value)]
    return args


def grid_from_spec(spec: dict, where: str) -> Grid:
    """Check the file's fields and types (not yet the option values: see `trials`)."""
    unknown = [key for key in spec if key not in TOP_LEVEL]
    if unknown:
        raise SpecError(f"{where}: unknown field '{unknown[0]}'; accepted: {', '.join(TOP_LEVEL)}")
    options = spec.get("options", {})
    if not isinstance(options, dict):
        raise SpecError(f"{where}: field 'options' must be a table of calql train options, got {options!r}")
    return Grid(_list_of(spec, "tasks", str, where), _list_of(spec, "methods", str, where),
                _list_of(spec, "seeds", int, where), tuple(option_args(options)))


def _parse_quietly(args: list[str]) -> TrainConfig | None:
    """parse_train_args without tyro's error box; None when tyro rejects the arguments."""
    from calql.cli import parse_train_args

    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            return parse_train_args(args)
        except SystemExit:
            return None


def _option_groups(options: tuple[str, ...]) -> list[list[str]]:
    """Arguments split per option: ["--a", "1", "--b", "2", "3"] -> [["--a", "1"], ["--b", "2", "3"]]."""
    groups: list[list[str]] = []
    for arg in options:
        if arg.startswith("--") or not groups:
            groups.append([arg])
        else:
            groups[-1].append(arg)
    return groups


def _check_options(options: tuple[str, ...], where: str) -> None:
    for group in _option_groups(options):
        name = group[0].lstrip("-")
        if name in RESERVED or name.replace("-", "_") in RESERVED:
            raise SpecError(f"{where}: option '{name}' is set by the sweep per trial (use tasks / methods / seeds)")
        if _parse_quietly(group) is None:
            value = " ".join(group[1:]) or "(flag)"
            raise SpecError(f"{where}: option '{name}' = {value}: not accepted by calql train "
                            "(see `calql train --help` for its name and type)")


def trials(grid: Grid, where: str) -> list[Trial]:
    """Every trial, seed by seed (so a stopped sweep still has paired methods), each option
    checked by calql train's own parser before anything runs."""
    from calql.envs.tasks import TASKS

    for field, values in (("tasks", grid.tasks), ("methods", grid.methods), ("seeds", grid.seeds)):
        if not values:
            raise SpecError(f"{where}: field '{field}' is empty; the grid needs at least one entry")
    for index, task in enumerate(grid.tasks):
        if task not in TASKS:
            raise SpecError(f"{where}: tasks[{index}] = {task!r} is not a task; known: {', '.join(TASKS)}")
    for index, method in enumerate(grid.methods):
        if method not in METHODS:
            raise SpecError(f"{where}: methods[{index}] = {method!r} is not a method; accepted: {', '.join(METHODS)}")
    _check_options(grid.options, where)
    out = []
    for seed in dict.fromkeys(grid.seeds):
        for task in dict.fromkeys(grid.tasks):
            for method in dict.fromkeys(grid.methods):
                args = ("--task", task, *grid.options, *METHODS[method], "--seed", str(seed))
                config = _parse_quietly(list(args))
                if config is None:
                    raise SpecError(f"{where}: the options do not parse for task {task}; check them with "
                                    f"`calql train {' '.join(args)} --help`")
                try:
                    validate(config)
                except CalqlError as error:
                    raise SpecError(f"{where}: {error}") from None
                out.append(Trial(task, method, seed, args))
    return out
