"""A sweep specification: tasks x methods x seeds, with `calql train` options shared by every trial.

    # sweep.toml
    tasks = ["pointmaze-umaze"]
    methods = ["calql", "cql"]          # any name in calql.methods.METHODS (calql-learned, calql-wsrl, iql, ...)
    seeds = [0, 1, 2]

    [options]                           # any `calql train` option, without the leading --
    offline-steps = 10000
    agent.critic-hidden-dims = [64, 64]
    agent.cql-lagrange = false          # booleans as true / false

Every trial is an ordinary training run (calql.train) of the task's configuration with these
options applied (calql.config_for). The same grid can come from the command line (--tasks,
--methods, --seeds, extra train options); those override the file's.
"""

import dataclasses
import tomllib
from pathlib import Path

from calql.api import config_for
from calql.config import ConfigError, OptionError, TrainConfig, option_name
from calql.envs.tasks import TASKS
from calql.errors import CalqlError
from calql.methods import METHODS

RESERVED = ("algo", "seed", "seeds", "task", "run_dir", "run_name", "resume", "reference")
"""Options a sweep sets per trial itself (reference through the method)."""
TOP_LEVEL = ("tasks", "methods", "seeds", "options")


class SpecError(CalqlError):
    """A sweep specification that cannot run; the message names the file and the field."""


@dataclasses.dataclass(frozen=True)
class Trial:
    """One run of the sweep."""

    task: str
    method: str
    seed: int
    config: TrainConfig
    """Its configuration, except where it runs (run_dir, run_name, resume: see sweep.trial)."""

    @property
    def name(self) -> str:
        """Its run directory's name (stable, so a re-run finds it)."""
        return f"{self.task}-{self.method}-s{self.seed}"


@dataclasses.dataclass(frozen=True)
class Grid:
    tasks: tuple[str, ...]
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    options: dict
    """Config overrides shared by every trial (calql.config_for's form: field names, agent={...})."""


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


def overrides_from_table(options: dict) -> dict:
    """[options] table -> config overrides: dashed names become field names (offline-steps ->
    offline_steps), tables nest (agent.critic-hidden-dims -> agent={"critic_hidden_dims": ...})."""
    return {
        key.replace("-", "_"): overrides_from_table(value) if isinstance(value, dict) else value
        for key, value in options.items()
    }


def merged(first: dict, second: dict) -> dict:
    """Overrides of `first` with those of `second` on top (agent options merged one by one)."""
    out = dict(first)
    for key, value in second.items():
        both_tables = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = {**out[key], **value} if both_tables else value
    return out


def overridden(first: dict, second: dict, prefix: str = "") -> list[tuple[str, object]]:
    """(dotted field name, value) of each option of `first` that `second` sets too."""
    found = []
    for key, value in first.items():
        if isinstance(value, dict) and isinstance(second.get(key), dict):
            found += overridden(value, second[key], f"{prefix}{key}.")
        elif key in second:
            found.append((prefix + key, value))
    return found


def grid_from_spec(spec: dict, where: str) -> Grid:
    """Check the file's fields and types (not yet the option values: see `trials`)."""
    unknown = [key for key in spec if key not in TOP_LEVEL]
    if unknown:
        raise SpecError(f"{where}: unknown field '{unknown[0]}'; accepted: {', '.join(TOP_LEVEL)}")
    options = spec.get("options", {})
    if not isinstance(options, dict):
        raise SpecError(f"{where}: field 'options' must be a table of calql train options, got {options!r}")
    return Grid(
        _list_of(spec, "tasks", str, where),
        _list_of(spec, "methods", str, where),
        _list_of(spec, "seeds", int, where),
        overrides_from_table(options),
    )


def _shown(value) -> str:
    """An option's value as on a command line: lists space-separated."""
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _trial_config(task: str, method: str, seed: int, options: dict, where: str) -> TrainConfig:
    """config_for with the grid's options, the method's and the seed; SpecError naming the option."""
    try:
        return config_for(task, **{**options, **METHODS[method].overrides(), "seed": seed})
    except OptionError as error:
        raise SpecError(f"{where}: option '{error.option}' = {_shown(error.value)}: {error.reason}") from None
    except ConfigError as error:
        raise SpecError(f"{where}: {error}") from None


def _check_grid(grid: Grid, where: str) -> None:
    for field, values in (("tasks", grid.tasks), ("methods", grid.methods), ("seeds", grid.seeds)):
        if not values:
            raise SpecError(f"{where}: field '{field}' is empty; the grid needs at least one entry")
    for index, task in enumerate(grid.tasks):
        if task not in TASKS:
            raise SpecError(f"{where}: tasks[{index}] = {task!r} is not a task; known: {', '.join(TASKS)}")
    for index, method in enumerate(grid.methods):
        if method not in METHODS:
            raise SpecError(f"{where}: methods[{index}] = {method!r} is not a method; accepted: {', '.join(METHODS)}")
    for index, seed in enumerate(grid.seeds):
        if seed < 0:  # numpy's generators refuse it, which would fail the trial only once it runs
            raise SpecError(f"{where}: seeds[{index}] = {seed} is negative; seeds must be >= 0")
    for name in grid.options:
        if name in RESERVED:
            raise SpecError(
                f"{where}: option '{option_name(name)}' is set by the sweep per trial (use tasks / methods / seeds)"
            )


def trials(grid: Grid, where: str) -> list[Trial]:
    """Every trial, seed by seed (so a stopped sweep still has paired methods), each configuration
    built and validated before anything runs."""
    _check_grid(grid, where)
    return [
        Trial(task, method, seed, _trial_config(task, method, seed, grid.options, where))
        for seed in dict.fromkeys(grid.seeds)
        for task in dict.fromkeys(grid.tasks)
        for method in dict.fromkeys(grid.methods)
    ]
