"""`calql train`'s options as a command line: arguments -> TrainConfig (parsed by tyro, the
command-line layer's one parser), train options of other commands -> config overrides, and a
TrainConfig -> the arguments that reproduce it."""

import contextlib
import dataclasses
import io
import typing

import tyro

from calql.config import (
    PRESETS,
    AgentConfig,
    ConfigError,
    OptionError,
    TrainConfig,
    algo_defaults,
    config_from_dict,
    option_name,
    preset_config,
)
from calql.envs.tasks import TASKS, default_config
from calql.training.metrics import read_config

IDENTITY = ("task", "algo", "seed")
"""Options `command_line` always writes: they say which run it is."""


def option_value(args: list[str], option: str) -> str | None:
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
    tasks = "\n".join(f"  {name}: {task.description}" for name, task in TASKS.items())
    return (
        "Pre-train Cal-QL (or CQL with --algo cql, IQL with --algo iql; --algo rlpd: RLPD, online only) "
        "on a task's offline dataset, fine-tune it "
        "online, and print success and normalized score after each phase, cumulative regret and wall time.\n\n"
        f"--preset NAME picks the hyperparameter preset ({', '.join(PRESETS)}); by default the task's own. "
        "Every option below overrides the preset.\n\nTasks:\n" + tasks
    )


def _resumed_defaults(run_dir: str) -> TrainConfig:
    """With --resume, the run's own saved options are the defaults (any option given must match)."""
    return dataclasses.replace(config_from_dict(read_config(run_dir)), resume=run_dir)


def parse_train_args(args: list[str]) -> TrainConfig:
    """`calql train` options -> TrainConfig: the preset (explicit or the task's) gives the defaults,
    under RLPD's settings with --algo rlpd (config.rlpd_settings); the options given override both."""
    resume = option_value(args, "--resume")
    if resume:
        if any(arg == "--preset" or arg.startswith("--preset=") for arg in args):
            raise ConfigError(
                "--preset cannot be combined with --resume: a resumed run keeps the settings in its "
                "config.json; drop --preset"
            )
        default = _resumed_defaults(resume)
    else:
        preset = default_config(option_value(args, "--task") or TrainConfig.task, option_value(args, "--preset"))
        default = algo_defaults(preset, option_value(args, "--algo"))
        args = _without_option(args, "--preset")
    return tyro.cli(TrainConfig, default=default, args=args, prog="calql train", description=_train_description())


def option_groups(args: list[str]) -> list[list[str]]:
    """Arguments split per option: ["--a", "1", "--b", "2", "3"] -> [["--a", "1"], ["--b", "2", "3"]]."""
    groups: list[list[str]] = []
    for arg in args:
        if arg.startswith("--") or not groups:
            groups.append([arg])
        else:
            groups[-1].append(arg)
    return groups


def _field_path(group: list[str]) -> list[str]:
    """The TrainConfig field an option sets: --agent.no-layer-norm -> ["agent", "layer_norm"]."""
    flag = group[0]
    if not flag.startswith("--"):
        raise OptionError(flag, " ".join(group[1:]), "not an option; train options start with --")
    *parents, leaf = flag[2:].split("=", 1)[0].replace("-", "_").split(".")
    owner = {(): TrainConfig, ("agent",): AgentConfig}.get(tuple(parents))
    fields = {field.name for field in dataclasses.fields(owner)} if owner else set()
    if leaf not in fields and leaf.startswith("no_") and leaf[3:] in fields:
        leaf = leaf[3:]  # tyro's --no-FLAG form of a boolean
    return [*parents, leaf]


def _parse_one(group: list[str]) -> TrainConfig:
    """parse_train_args of one option without tyro's error box; OptionError if tyro rejects it."""
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            return parse_train_args(group)
        except SystemExit:
            pass
    name = group[0][2:].split("=", 1)[0]
    raise OptionError(
        name,
        " ".join(group[1:]) or "(flag)",
        "not accepted by calql train (see `calql train --help` for its name and type)",
    )


def train_overrides(args: list[str]) -> dict:
    """Train options given to another command (compare, sweep) -> overrides for calql.config_for,
    each parsed and type-checked by calql train's own parser:
    ["--offline-steps", "2000", "--agent.no-layer-norm"] -> {"offline_steps": 2000, "agent": {"layer_norm": False}}.
    --preset NAME becomes {"preset": NAME}. OptionError names the first option it rejects."""
    overrides: dict = {}
    for group in option_groups(args):
        path = _field_path(group)
        if path == ["preset"]:
            overrides["preset"] = option_value(group, "--preset")
            preset_config(overrides["preset"])
            continue
        value = _parse_one(group)
        for name in path:
            value = getattr(value, name)
        *parents, leaf = path
        target = overrides
        for name in parents:
            target = target.setdefault(name, {})
        target[leaf] = value
    return overrides


def _field_type(field: str):
    """The annotation of a dotted TrainConfig field (agent.layer_norm -> bool); None for a
    name that is no field (preset)."""
    owner = TrainConfig
    *parents, leaf = field.split(".")
    for name in parents:
        owner = typing.get_type_hints(owner)[name]
    return typing.get_type_hints(owner).get(leaf)


def option_args(field: str, value) -> list[str]:
    """One option as tyro reads it: --name VALUE, --name V1 V2 for tuples, --[no-]name for booleans
    (a `bool | None` field takes a value: --filter-dataset False)."""
    head, _, leaf = option_name(field).rpartition(".")
    prefix = f"--{head}." if head else "--"
    if _field_type(field) is bool:
        return [f"{prefix}{leaf}" if value else f"{prefix}no-{leaf}"]
    if isinstance(value, tuple):
        return [f"{prefix}{leaf}", *map(str, value)]
    return [f"{prefix}{leaf}", str(value)]


def _flat_fields(config, prefix: str = ""):
    """(dotted field name, value) of every option, agent options as agent.NAME."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            yield from _flat_fields(value, f"{prefix}{field.name}.")
        else:
            yield prefix + field.name, value


def command_line(config: TrainConfig) -> list[str]:
    """The `calql train` arguments that give config: --task, --algo and --seed, then every option
    that differs from the task's preset. parse_train_args(command_line(config)) == config."""
    defaults = dict(_flat_fields(algo_defaults(default_config(config.task), config.algo)))
    args = ["--task", config.task, "--algo", config.algo, "--seed", str(config.seed)]
    for field, value in _flat_fields(config):
        if field not in IDENTITY and value != defaults[field]:
            args += option_args(field, value)
    return args
