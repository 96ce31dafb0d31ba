"""The task registry: a task name -> environment, dataset (and the dataset layouts it reads),
reward transform, return rules, score normalisation and hyperparameter preset.

A task's `make_env` / `load_dataset` are those of its default dataset. `calql.envs.binding.bind`
re-binds both to another source (`--dataset`): a local Minari id or a D4RL-layout HDF5 file,
each read through the task's `DataFormat` for that layout (its environment, its relabelling).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from types import MappingProxyType

import gymnasium as gym
import numpy as np

from calql.config import TrainConfig, preset_config
from calql.data.returns import ReturnRule
from calql.data.sources import parse_source
from calql.envs import adroit, antmaze, kitchen, manipulation, pixelmaze, pointmaze, visual_manipulation
from calql.envs.binding import load_source
from calql.errors import CalqlError

Data = dict[str, np.ndarray]


class UnknownTaskError(CalqlError):
    """A task name that is not registered."""


@dataclasses.dataclass(frozen=True)
class DataFormat:
    """How one dataset layout ('minari', 'd4rl', 'awac', 'ogbench') maps onto a task."""

    make_env: Callable[[int | None], gym.Env]
    """seed -> the environment whose observations match this layout's."""
    prepare: Callable[[Data, str], Data] | None = None
    """(data, source name) -> data: the layout's relabelling (binary rewards, terminals at the goal)."""
    info_keys: tuple[str, ...] = ()
    """Per-step info fields `prepare` needs (read as data['infos/<key>']); for OGBench's files, the
    per-state fields `reward_labels` needs (e.g. qpos)."""
    reward_labels: Callable[[Data, str], Data] | None = None
    """Layouts whose files hold no rewards (OGBench's): (data, source name) -> data with the task's
    rewards and terminals, computed from its info fields as the file is read (before the checks)."""


@dataclasses.dataclass(frozen=True)
class Task:
    """Everything that makes one benchmark task, independent of the learner."""

    name: str
    description: str
    preset: str
    """Name of the hyperparameter preset (calql.config.PRESETS) used unless --preset says otherwise."""
    make_env: Callable[[int | None], gym.Env]
    """seed -> online / evaluation environment with flat observations and info["success"]."""
    load_dataset: Callable[[int, int], Data]
    """(size, seed) -> flat arrays observations, actions, rewards, next_observations, terminals, timeouts.
    size and seed only matter for built-in generated datasets."""
    reward_scale: float
    reward_bias: float
    sparse_reward: bool
    """Sparse {fail, success} rewards: an all-failure trajectory gets G = r_fail / (1 - gamma)."""
    failure_reward: float
    """The raw (untransformed) reward of a failed step, for the all-failure rule."""
    score_min: float
    score_max: float
    """Normalised score = 100 * (raw return - score_min) / (score_max - score_min)."""
    default_dataset: str = "builtin"
    """The source used without --dataset: 'builtin' (generated locally) or a Minari id."""
    builtin: bool = True
    """`load_dataset` generates the data locally (no files needed)."""
    formats: Mapping[str, DataFormat] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    """Dataset layouts the task reads: 'minari' (a local Minari id), 'd4rl' (an HDF5 file)."""
    dataset_filter: Callable[[Data, str], Data] | None = None
    """A task-specific data filter (Adroit binary: the authors' filtering)."""
    filter_by_default: bool = False
    """Apply `dataset_filter` unless the run says otherwise."""
    score_reward_info: str = ""
    """If set, the normalized score is computed from the sum of info[score_reward_info] (the
    dense reward) instead of the task's reward (Adroit binary)."""
    frame_stack: int = 1
    """Pixel tasks: observations are stacks of this many frames (calql.envs.common.StackFrames);
    the data holds single frames, stacked by index when loaded (calql.data.frames)."""
    infinite_return_tail: bool = False
    """Monte-Carlo returns continue after a trajectory's last step as if its last reward were
    received forever: G_last = r_last + gamma (1 - d_last) r_last / (1 - gamma) (the authors'
    FrankaKitchen rule, docs/algorithm.md section 4). False: G after the last step is 0."""

    @property
    def sparse_failure_reward(self) -> float | None:
        """The failure reward after the transform, or None for dense-reward tasks."""
        return self.failure_reward * self.reward_scale + self.reward_bias if self.sparse_reward else None

    def return_rule(self, discount: float) -> ReturnRule:
        """How this task's Monte-Carlo returns are computed, for the offline data and online episodes."""
        return ReturnRule(discount, self.sparse_failure_reward, self.infinite_return_tail)

    def normalized_score(self, raw_return: float | np.ndarray) -> float | np.ndarray:
        return 100.0 * (raw_return - self.score_min) / (self.score_max - self.score_min)


def _load_default(name: str, size: int, seed: int) -> Data:
    """The task's default (non-built-in) source, read through `calql.envs.binding`."""
    task = get_task(name)
    return load_source(task, parse_source(task.default_dataset))


# ----- PointMaze (built in) -----


def _pointmaze_task(maze: str) -> Task:
    spec = pointmaze.MAZES[maze]
    make_env = functools.partial(pointmaze.make_env, maze)
    return Task(
        name=f"pointmaze-{maze}",
        description=f"{spec.gym_id}, start cells {list(spec.start_cells)} and fixed goal {spec.goal_cell}, "
        "sparse reward, locally generated stitching data (built in, no download)",
        preset="pointmaze",
        make_env=make_env,
        load_dataset=lambda size, seed: pointmaze.load_or_generate(maze, size, seed),
        # AntMaze's transform: {0, 1} -> {-5, +5} (docs/algorithm.md section 6).
        reward_scale=10.0,
        reward_bias=-5.0,
        sparse_reward=True,
        failure_reward=0.0,
        # Success ends the episode with raw return 1, as D4RL AntMaze: score = 100 * success.
        score_min=0.0,
        score_max=1.0,
        formats=MappingProxyType({"minari": DataFormat(make_env)}),
    )


def _pointmaze_narrow_task(maze: str) -> Task:
    """The same maze and reward with narrow data: demonstrations from the start region to the goal
    plus failed attempts (Adroit-style coverage, where the paper finds CQL's unlearning)."""
    spec = pointmaze.MAZES[maze]
    return dataclasses.replace(
        _pointmaze_task(maze),
        name=f"pointmaze-{maze}-narrow",
        preset="pointmaze-narrow",
        description=f"{spec.gym_id}, start cells {list(spec.start_cells)} and fixed goal {spec.goal_cell}, sparse "
        f"reward, narrow data: {pointmaze.NARROW_DEMOS} noisy demonstrations to the goal + "
        f"{pointmaze.NARROW_FAILURES} failed attempts (built in; --dataset-size is not used)",
        load_dataset=lambda size, seed: pointmaze.load_or_generate_narrow(maze, seed),
    )


def _pixel_pointmaze_narrow_task(maze: str) -> Task:
    """The narrow task seen through top-down images (calql.envs.pixelmaze): control from pixels."""
    make_env = functools.partial(pixelmaze.make_env, maze)
    size = pixelmaze.IMAGE_SIZE
    return dataclasses.replace(
        _pointmaze_narrow_task(maze),
        name=f"pointmaze-{maze}-narrow-pixels",
        preset="vision",
        description=f"pointmaze-{maze}-narrow observed through {size}x{size}x3 uint8 top-down images drawn "
        "from the maze's geometry (walls and goal red, ball green, ball a moment ago blue); the same "
        "narrow data, each state drawn (built in; --dataset-size is not used)",
        make_env=make_env,
        load_dataset=lambda size, seed: pixelmaze.load_or_generate_narrow(maze, seed),
        formats=MappingProxyType({"minari": DataFormat(make_env)}),
    )


def _stacked_pixel_pointmaze_narrow_task(maze: str) -> Task:
    """The pixel task without the velocity trail, observations the last few frames instead."""
    make_env = functools.partial(pixelmaze.make_stacked_env, maze)
    size, stack = pixelmaze.IMAGE_SIZE, pixelmaze.STACK
    return dataclasses.replace(
        _pixel_pointmaze_narrow_task(maze),
        name=f"pointmaze-{maze}-narrow-pixels-stacked",
        description=f"pointmaze-{maze}-narrow-pixels without the blue trail, each observation the last {stack} "
        f"{size}x{size}x3 frames ({size}x{size}x{3 * stack} uint8; the data holds single frames, stacked by index)",
        make_env=make_env,
        load_dataset=lambda size, seed: pixelmaze.load_or_generate_narrow(maze, seed, trail=False),
        formats=MappingProxyType({"minari": DataFormat(make_env)}),
        frame_stack=stack,
    )


# ----- AntMaze -----


def _antmaze_task(dataset: str) -> Task:
    maze = antmaze.DATASETS[dataset]
    name = f"antmaze-{dataset}"
    return Task(
        name=name,
        description=f"AntMaze {maze} ({antmaze.MAZES[maze].gym_id}), fixed goal, sparse reward; data: Minari "
        f"D4RL/antmaze/{dataset}-v1 (default; scores not comparable to D4RL's) or a D4RL {name}-v2.hdf5 file",
        preset="antmaze",
        make_env=functools.partial(antmaze.make_env, maze, "minari"),
        load_dataset=functools.partial(_load_default, name),
        reward_scale=10.0,
        reward_bias=-5.0,
        sparse_reward=True,
        failure_reward=0.0,
        score_min=0.0,
        score_max=1.0,
        default_dataset=f"D4RL/antmaze/{dataset}-v1",
        builtin=False,
        formats=MappingProxyType(
            {
                "minari": DataFormat(
                    functools.partial(antmaze.make_env, maze, "minari"), antmaze.minari_terminals_at_goal
                ),
                "d4rl": DataFormat(functools.partial(antmaze.make_env, maze, "d4rl")),
            }
        ),
    )


# ----- Adroit binary -----


def _adroit_task(hand: str) -> Task:
    spec = adroit.HANDS[hand]
    make_env = functools.partial(adroit.make_env, hand)
    name = f"{hand}-binary"
    # The authors' data: AWAC's expert demos + BC rollouts (released for pen, door and relocate only).
    awac = f", or --dataset {hand}2_sparse.npy,{hand}_bc_sparse4.npy (AWAC's files)" if hand != "hammer" else ""
    return Task(
        name=name,
        description=f"{spec.gym_id} binary (0 at success, -1 otherwise; episode ends at success), authors' data "
        f"filter on; data: Minari D4RL/{hand}/cloned-v2 (default) or human/expert, a D4RL {hand}-*.hdf5 file{awac}",
        # The authors fine-tune pen for 200k environment steps, door and relocate for 1M.
        preset="adroit-pen" if hand == "pen" else "adroit",
        make_env=make_env,
        load_dataset=functools.partial(_load_default, name),
        # {-1, 0} -> {-5, +5} (docs/algorithm.md section 6).
        reward_scale=10.0,
        reward_bias=5.0,
        sparse_reward=True,
        failure_reward=-1.0,
        score_min=spec.score_min,
        score_max=spec.score_max,
        default_dataset=f"D4RL/{hand}/cloned-v2",
        builtin=False,
        # Minari, D4RL HDF5 and AWAC .npy ("awac": the authors' data); rewards from each layout's
        # success flag, then the authors' filter (truncation after the last success).
        formats=MappingProxyType(
            {
                layout: DataFormat(make_env, adroit.binary_rewards(layout), (key,))
                for layout, key in adroit.SUCCESS_INFO_KEYS.items()
            }
        ),
        dataset_filter=adroit.filter_binary,
        filter_by_default=True,
        score_reward_info="dense_reward",
    )


# ----- FrankaKitchen -----


def _kitchen_task(variant: str) -> Task:
    name = f"kitchen-{variant}"
    return Task(
        name=name,
        description=f"FrankaKitchen-v1, tasks {', '.join(kitchen.TASKS[variant])}; data: Minari "
        f"D4RL/kitchen/{variant}-v2 (default) or a D4RL {name}-v0.hdf5 file",
        preset="kitchen",
        make_env=functools.partial(kitchen.make_env, variant, "minari"),
        load_dataset=functools.partial(_load_default, name),
        # The authors' kitchen commit: rewards as they are (stages solved), no all-failure rule,
        # and an infinite-horizon tail on the Monte-Carlo returns.
        reward_scale=1.0,
        reward_bias=0.0,
        sparse_reward=False,
        failure_reward=0.0,
        infinite_return_tail=True,
        # Score = stages solved / 4 x 100, as D4RL.
        score_min=0.0,
        score_max=4.0,
        default_dataset=f"D4RL/kitchen/{variant}-v2",
        builtin=False,
        formats=MappingProxyType(
            {layout: DataFormat(functools.partial(kitchen.make_env, variant, layout)) for layout in ("minari", "d4rl")}
        ),
    )


# ----- Manipulation (OGBench, built in) -----


def _ogbench_format(domain: str, make_env: Callable[[int | None], gym.Env]) -> DataFormat:
    """OGBench's .npz files of `domain` (states or frames, as `make_env`'s): rewards and terminals
    of the fixed task relabelled from the files' joint positions and button states."""
    return DataFormat(
        make_env,
        info_keys=manipulation.ogbench_info_keys(domain),
        reward_labels=manipulation.relabel_for_task(domain),
    )


def _manipulation_task(domain: str) -> Task:
    make_env = functools.partial(manipulation.make_env, domain)
    spec = manipulation.DOMAINS[domain]
    failure = float(-spec.subgoals)
    return Task(
        name=domain,
        description=f"OGBench {manipulation.task_env_id(domain)} (default task), episode ends at success; "
        f"noisy oracle play data generated locally (built in; needs calql[manipulation]), or OGBench's "
        f"{spec.env_type}-play-v0.npz",
        preset="manipulation",
        make_env=make_env,
        load_dataset=lambda size, seed: manipulation.load_or_generate(domain, size, seed),
        reward_scale=1.0,
        reward_bias=0.0,
        sparse_reward=True,
        failure_reward=failure,
        # Return is -(unsolved subgoals) per step: 100 = solved at once, 0 = nothing ever solved.
        # OGBench's own metric is the success rate.
        score_min=failure * spec.max_episode_steps,
        score_max=0.0,
        formats=MappingProxyType({"minari": DataFormat(make_env), "ogbench": _ogbench_format(domain, make_env)}),
    )


def _visual_manipulation_task(domain: str) -> Task:
    """The same task observed through OGBench's 64x64 camera frames (calql.envs.visual_manipulation)."""
    make_env = functools.partial(visual_manipulation.make_env, domain)
    size, spec = visual_manipulation.IMAGE_SIZE, manipulation.DOMAINS[domain]
    return dataclasses.replace(
        _manipulation_task(domain),
        name=f"visual-{domain}",
        preset="visual-manipulation",
        description=f"OGBench {visual_manipulation.visual_env_id(domain)}: {domain} from {size}x{size}x3 uint8 "
        "frames rendered by MuJoCo offscreen (MUJOCO_GL=egl); small noisy oracle play data generated locally "
        f"({visual_manipulation.EPISODE_LENGTH}-step episodes, slow: every frame rendered; built in, needs "
        f"calql[manipulation]), or OGBench's visual-{spec.env_type}-play-v0.npz",
        make_env=make_env,
        load_dataset=lambda size, seed: visual_manipulation.load_or_generate(domain, size, seed),
        formats=MappingProxyType({"minari": DataFormat(make_env), "ogbench": _ogbench_format(domain, make_env)}),
    )


def _all_tasks() -> dict[str, Task]:
    tasks = [_pointmaze_task(maze) for maze in pointmaze.MAZES]
    tasks += [_pointmaze_narrow_task(maze) for maze in pointmaze.MAZES]
    tasks += [_pixel_pointmaze_narrow_task("umaze"), _stacked_pixel_pointmaze_narrow_task("umaze")]
    tasks += [_antmaze_task(dataset) for dataset in antmaze.DATASETS]
    tasks += [_adroit_task(hand) for hand in adroit.HANDS]
    tasks += [_kitchen_task(variant) for variant in kitchen.TASKS]
    tasks += [_manipulation_task(domain) for domain in manipulation.DOMAINS]
    tasks += [_visual_manipulation_task(domain) for domain in manipulation.DOMAINS]
    return {task.name: task for task in tasks}


TASKS: dict[str, Task] = _all_tasks()


def task_names() -> list[str]:
    """Every task name: the built-in PointMaze tasks first, then the others, each group sorted."""
    return sorted(TASKS, key=lambda name: (not name.startswith("pointmaze-"), name))


def get_task(name: str) -> Task:
    """The registered task `name`; UnknownTaskError listing the accepted names otherwise."""
    if name not in TASKS:
        raise UnknownTaskError(f"--task: unknown task {name!r}; accepted: {', '.join(task_names())}")
    return TASKS[name]


def default_config(name: str, preset: str | None = None) -> TrainConfig:
    """The configuration task `name` runs with unless told otherwise: its preset (or the named
    one) with the task set."""
    task = get_task(name)
    return dataclasses.replace(preset_config(preset or task.preset), task=name)


def guess_task(source: str) -> str | None:
    """The task a dataset most likely belongs to, from its Minari id or file name, or None.

    'D4RL/antmaze/umaze-diverse-v1' and 'antmaze-umaze-diverse-v2.hdf5' -> antmaze-umaze-diverse;
    'D4RL/pen/human-v2' and 'pen-cloned-v1.hdf5' -> pen-binary; 'D4RL/kitchen/mixed-v2' ->
    kitchen-mixed; calql's cached ids 'calql/pointmaze-umaze-...' -> pointmaze-umaze; OGBench's
    'visual-cube-single-play-v0.npz' -> visual-cube-single.
    """
    source = source.strip().rstrip("/")
    if source.lower().endswith((".hdf5", ".h5", ".hdf", ".npz")) or source.startswith(("/", ".", "~")):
        words = source.rsplit("/", 1)[-1].rsplit(".", 1)[0]  # a file: its name
    else:
        words = "-".join(part for part in source.split("/") if part.upper() != "D4RL" and part != "calql")
    for hand in adroit.HANDS:
        if words.startswith(f"{hand}-"):
            return f"{hand}-binary"
    matches = [name for name in TASKS if words == name or words.startswith(name + "-")]
    return max(matches, key=len) if matches else None
