"""`calql datasets list | generate NAME | info SOURCE`: what data there is, and what is in it."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from calql.config import PRESETS
from calql.data import sources
from calql.data.returns import trajectory_ends
from calql.data.sources import DatasetError
from calql.envs import tasks as registry
from calql.envs.binding import bind
from calql.envs.tasks import UnknownTaskError
from calql.errors import CalqlError

USAGE = "calql datasets {list,generate,info} ..."


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="calql datasets", description="Offline datasets: built-in and local.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="built-in datasets and the local Minari datasets, with sizes")
    generate = commands.add_parser("generate", help="generate (and cache) a built-in dataset")
    generate.add_argument("name", help="a task with a built-in dataset: " + ", ".join(_builtin_names()))
    generate.add_argument("--size", type=int, default=None, help="transitions (default: the task preset's)")
    generate.add_argument("--seed", type=int, default=0, help="dataset seed (the same seed gives the same data)")
    info = commands.add_parser("info", help="describe a dataset and check it against its environment")
    info.add_argument("source", help="a Minari id, a D4RL-layout .hdf5 path, or a task with a built-in dataset")
    info.add_argument("--task", default=None, help="the task to check against (default: guessed from the name)")
    info.add_argument("--size", type=int, default=None, help="built-in datasets: transitions")
    info.add_argument("--seed", type=int, default=0, help="built-in datasets: seed")
    info.add_argument("--no-filter", action="store_true", help="skip the task's data filter (Adroit binary)")
    return parser


def _builtin_names() -> list[str]:
    return [name for name in registry.task_names() if registry.TASKS[name].builtin]


def _default_size(task: registry.Task) -> int:
    return PRESETS[task.preset].dataset_size


def list_command() -> int:
    print("built-in datasets (generated locally: calql datasets generate NAME --size N):")
    for name in _builtin_names():
        print(f"  {name:<20} {registry.TASKS[name].description}")
    import minari

    local = minari.list_local_datasets()
    print(
        f"local Minari datasets in {sources.minari_root()}:"
        if local
        else f"no local Minari datasets in {sources.minari_root()} (copy them there, or set MINARI_DATASETS_PATH)"
    )
    for dataset_id, meta in sorted(local.items()):
        task = registry.guess_task(dataset_id) or "?"
        print(
            f"  {dataset_id:<48} {int(meta['total_steps']):>10,} transitions {int(meta['total_episodes']):>7,} "
            f"episodes   task {task}"
        )
    return 0


def generate_command(name: str, size: int | None, seed: int) -> int:
    task = registry.get_task(name)
    if not task.builtin:
        raise DatasetError(
            f"{name} has no built-in dataset (it reads {task.default_dataset} or a D4RL file); "
            f"built-in: {', '.join(_builtin_names())}"
        )
    size = _default_size(task) if size is None else size
    if size < 1:
        raise DatasetError(f"--size must be >= 1, got {size}")
    start = time.perf_counter()
    data = task.load_dataset(size, seed)
    seconds = time.perf_counter() - start
    print(
        f"{name}: {len(data['rewards']):,} transitions (seed {seed}) in {seconds:.1f} s "
        f"({len(data['rewards']) / max(seconds, 1e-9):,.0f} transitions/s, cached after the first run)"
    )
    return 0


def _resolve(source: str, task_name: str | None) -> tuple[registry.Task, str]:
    """The task to check `source` against, and the source spec (a built-in task name -> 'builtin')."""
    if task_name is None and source in registry.TASKS and registry.TASKS[source].builtin:
        return registry.TASKS[source], "builtin"
    task_name = task_name or registry.guess_task(source)
    if task_name is None:
        raise DatasetError(
            f"cannot tell which task {source!r} belongs to; add --task NAME ({', '.join(registry.task_names())})"
        )
    return registry.get_task(task_name), source


def describe(data: dict[str, np.ndarray], task: registry.Task) -> dict[str, float]:
    """Transitions; episodes (split at time-outs and observation jumps) with their success
    fraction and raw-return statistics; trajectories (also split at terminals, as the MC returns)."""
    no_terminals = np.zeros_like(data["terminals"])
    episode_ends = trajectory_ends(no_terminals, data["timeouts"], data["observations"], data["next_observations"])
    starts = np.flatnonzero(np.concatenate([[True], episode_ends[:-1]]))
    returns = np.add.reduceat(data["rewards"].astype(np.float64), starts)
    stats = {"transitions": len(data["rewards"]), "episodes": len(starts)}
    if task.sparse_reward:
        successes = np.add.reduceat((data["rewards"] != task.failure_reward).astype(np.int64), starts)
        stats["success fraction (episodes)"] = float(np.mean(successes > 0))
    stats.update(
        {
            "return mean": float(returns.mean()),
            "return min": float(returns.min()),
            "return max": float(returns.max()),
            "terminal fraction": float(data["terminals"].mean()),
        }
    )
    ends = trajectory_ends(data["terminals"], data["timeouts"], data["observations"], data["next_observations"])
    stats["trajectories (MC returns)"] = int(ends.sum())
    return stats


def _shapes_in_words(observations: np.ndarray, actions: np.ndarray) -> str:
    """'4 / 2 floats' for vectors; '32x32x3 uint8 images / 2 floats' for pixel data (shape and dtype)."""
    if observations.ndim == 2:
        return f"{observations.shape[1]} / {actions.shape[1]} floats"
    return f"{'x'.join(map(str, observations.shape[1:]))} {observations.dtype} images / {actions.shape[1]} floats"


def info_command(source: str, task_name: str | None, size: int | None, seed: int, no_filter: bool) -> int:
    task, spec = _resolve(source, task_name)
    bound = bind(task, spec, filter_dataset=False if no_filter else None)
    start = time.perf_counter()
    data = bound.load_dataset(_default_size(task) if size is None else size, seed)
    seconds = time.perf_counter() - start
    env = bound.make_env(None)
    env_id = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    print(f"{source}  (task {task.name}, loaded in {seconds:.2f} s)")
    for key, value in describe(data, task).items():
        print(f"  {key:<34} {value:,.4g}" if isinstance(value, float) else f"  {key:<34} {value:,}")
    print(f"  {'observations / actions':<34} {_shapes_in_words(data['observations'], data['actions'])}")
    print(
        f"  {'environment':<34} matches {env_id}: observations {env.observation_space.shape}, "
        f"actions {env.action_space.shape} in [{env.action_space.low.min():g}, {env.action_space.high.max():g}]"
    )
    if task.filter_by_default and task.dataset_filter is not None:
        state = "off (--no-filter)" if no_filter else "on: the authors filtering (docs/algorithm.md section 7)"
        print(f"  {'filter':<34} {state}")
    env.close()
    return 0


def main(args: list[str]) -> int:
    """Run `calql datasets ARGS`; errors are one line 'calql: error: ...' and exit status 2."""
    try:
        options = _parser().parse_args(args)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        if options.command == "list":
            return list_command()
        if options.command == "generate":
            return generate_command(options.name, options.size, options.seed)
        return info_command(options.source, options.task, options.size, options.seed, options.no_filter)
    except (CalqlError, UnknownTaskError) as error:
        print(f"calql: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
