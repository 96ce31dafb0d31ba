"""The task registry: a task name -> environment, dataset, reward transform, return rules,
score normalisation and hyperparameter preset."""

import dataclasses
import functools
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from calql.envs import pointmaze


class UnknownTaskError(ValueError):
    """A task name that is not registered."""


@dataclasses.dataclass(frozen=True)
class Task:
    """Everything that makes one benchmark task, independent of the learner."""

    name: str
    description: str
    preset: str
    """Name of the hyperparameter preset (calql.config.PRESETS) used unless --preset says otherwise."""
    make_env: Callable[[int | None], gym.Env]
    """seed -> online / evaluation environment with flat observations and info["success"]."""
    load_dataset: Callable[[int, int], dict[str, np.ndarray]]
    """(size, seed) -> flat arrays observations, actions, rewards, next_observations, terminals, timeouts."""
    reward_scale: float
    reward_bias: float
    sparse_reward: bool
    """Sparse {fail, success} rewards: an all-failure trajectory gets G = r_fail / (1 - gamma)."""
    failure_reward: float
    """The raw (untransformed) reward of a failed step, for the all-failure rule."""
    score_min: float
    score_max: float
    """Normalised score = 100 * (raw return - score_min) / (score_max - score_min)."""

    @property
    def sparse_failure_reward(self) -> float | None:
        """The failure reward after the transform, or None for dense-reward tasks."""
        return self.failure_reward * self.reward_scale + self.reward_bias if self.sparse_reward else None

    def normalized_score(self, raw_return: float | np.ndarray) -> float | np.ndarray:
        return 100.0 * (raw_return - self.score_min) / (self.score_max - self.score_min)


def _pointmaze_task(maze: str) -> Task:
    spec = pointmaze.MAZES[maze]
    return Task(
        name=f"pointmaze-{maze}",
        description=f"{spec.gym_id}, fixed start {spec.reset_cell} and goal {spec.goal_cell}, sparse reward, "
        "locally generated stitching data (built in, no download)",
        preset="pointmaze",
        make_env=functools.partial(pointmaze.make_env, maze),
        load_dataset=lambda size, seed: pointmaze.load_or_generate(maze, size, seed),
        # AntMaze's transform: {0, 1} -> {-5, +5} (ALGORITHM.md section 6).
        reward_scale=10.0,
        reward_bias=-5.0,
        sparse_reward=True,
        failure_reward=0.0,
        # Success ends the episode with raw return 1, as D4RL AntMaze: score = 100 * success.
        score_min=0.0,
        score_max=1.0,
    )


TASKS: dict[str, Task] = {task.name: task for task in map(_pointmaze_task, pointmaze.MAZES)}


def get_task(name: str) -> Task:
    """The registered task `name`; UnknownTaskError listing the accepted names otherwise."""
    if name not in TASKS:
        raise UnknownTaskError(f"--task: unknown task {name!r}; accepted: {', '.join(sorted(TASKS))}")
    return TASKS[name]
