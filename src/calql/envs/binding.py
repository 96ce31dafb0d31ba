"""Binding a task to its offline data: `bind` returns a task whose `make_env` and `load_dataset`
use a given source (`--dataset`: a local Minari id, a D4RL-layout HDF5 file, AWAC .npy files,
an OGBench .npz file).

Each source is read with the generic readers of `calql.data.sources` / `calql.data.awac`, through
the task's `DataFormat` for that layout (its environment, its info keys, its relabelling), then
checked against that environment, optionally filtered, and checked again.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, cast

import gymnasium as gym
import numpy as np

from calql.data.awac import read_awac
from calql.data.sources import (
    FIELDS,
    DatasetError,
    Source,
    check_transitions,
    env_name,
    parse_source,
    read_d4rl,
    read_minari,
    read_ogbench,
)
from calql.envs.common import source_space

if TYPE_CHECKING:  # tasks.py imports this module: Task and DataFormat are only annotations here
    from calql.envs.tasks import DataFormat, Task

_KIND_WORDS = {
    "builtin": ("a built-in dataset", "built-in datasets"),
    "minari": ("a Minari dataset", "Minari datasets"),
    "d4rl": ("a D4RL HDF5 file", "D4RL HDF5 files"),
    "awac": ("AWAC .npy files", "AWAC .npy files (comma-separated)"),
    "ogbench": ("an OGBench .npz file", "OGBench .npz files"),
}
"""Each source kind in words: (one source, the kind in a list of accepted kinds)."""


def read_source(source: Source, fmt: DataFormat, env: gym.Env) -> dict[str, np.ndarray]:
    """Raw flat arrays of a Minari / D4RL / AWAC / OGBench source, read for `fmt` (its info keys, its
    env's space; OGBench's files, which hold no rewards, labelled by its `reward_labels`)."""
    if source.kind == "ogbench":
        if fmt.reward_labels is None:
            raise DatasetError(f"--dataset {source}: {env_name(env)} has no rewards for OGBench's files")
        return fmt.reward_labels(read_ogbench(source.ref, fmt.info_keys), str(source))
    if source.kind == "minari":
        return read_minari(source.ref, source_space(env), fmt.info_keys)
    if source.kind == "awac":
        obs_shape = cast(tuple[int, ...], env.observation_space.shape)
        act_shape = cast(tuple[int, ...], env.action_space.shape)
        if len(obs_shape) != 1 or len(act_shape) != 1:
            raise DatasetError(
                f"--dataset {source}: AWAC .npy files hold flat observations and actions, but "
                f"{env_name(env)} has shapes {obs_shape} and {act_shape}; use another layout"
            )
        return read_awac(source.ref, obs_shape[0], act_shape[0], env_name(env))
    return read_d4rl(source.ref, fmt.info_keys)


def load_source(task: Task, source: Source, filter_dataset: bool | None = None) -> dict[str, np.ndarray]:
    """Read, check, prepare (the format's relabelling), optionally filter, and check again one source."""
    fmt = format_for(task, source)
    env = fmt.make_env(None)
    name = str(source)
    try:
        data = check_transitions(read_source(source, fmt, env), env, name)
        if fmt.prepare is not None:
            data = fmt.prepare(data, name)
        use_filter = task.filter_by_default if filter_dataset is None else filter_dataset
        if use_filter and task.dataset_filter is not None:
            data = task.dataset_filter(data, name)
        checked = check_transitions(data, env, name)
    finally:
        env.close()
    return {field: checked[field] for field in FIELDS}


def format_for(task: Task, source: Source) -> DataFormat:
    """The task's `DataFormat` for the source's layout; DatasetError naming the accepted layouts otherwise."""
    if source.kind not in task.formats:
        accepted = ", ".join(_kind_names(task)) or "its built-in dataset only"
        raise DatasetError(
            f"--dataset {source}: task {task.name} cannot read {_KIND_WORDS[source.kind][0]}; it accepts {accepted}"
        )
    return task.formats[source.kind]


def _kind_names(task: Task) -> list[str]:
    names = [_KIND_WORDS[kind][1] for kind in ("minari", "d4rl", "awac", "ogbench") if kind in task.formats]
    return (["'builtin'"] if task.builtin else []) + names


def bind(task: Task, dataset: str = "", filter_dataset: bool | None = None) -> Task:
    """`task` with `make_env` and `load_dataset` for the source `dataset` ('' = the task's default).

    The environment follows the source's layout (e.g. D4RL AntMaze files are in D4RL's frame,
    Minari's in Gymnasium-Robotics'), so the policy sees the same observations online as offline.
    """
    source = parse_source(dataset or task.default_dataset)
    if source.kind == "builtin":
        if not task.builtin:
            raise DatasetError(
                f"--dataset builtin: task {task.name} has no built-in dataset; "
                f"it accepts {', '.join(_kind_names(task))}"
            )
        return task
    fmt = format_for(task, source)
    return dataclasses.replace(
        task,
        make_env=fmt.make_env,
        load_dataset=lambda size, seed: load_source(task, source, filter_dataset),
        builtin=False,
        default_dataset=str(source),
    )
