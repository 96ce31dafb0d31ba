"""FrankaKitchen (complete / partial / mixed): Gymnasium-Robotics' FrankaKitchen-v1.

Needs mujoco 3.11 (pinned in pyproject.toml): from 3.12 on the environment fails with an
AssertionError in gymnasium_robotics/utils/mujoco_utils.py:get_joint_qpos.

Two layouts:
- Minari `D4RL/kitchen/{complete,partial,mixed}-v2`: dict observations {observation 59,
  achieved_goal {task: ...}, desired_goal {task: ...}}, flattened whole (nested goal dicts
  included) in `flatten_observation`'s order, the same for data and environment.
- D4RL `kitchen-*.hdf5`: 60 floats = robot joint positions (9), object positions (21) and
  the goal vector (30: each task's goal at its element's qpos indices, zero elsewhere). The
  D4RL-layout environment builds exactly that vector from FrankaKitchen-v1's observation.

Reward: +1 per task completed (each counts once), return 0..4, the episode ends when all four
are done (success) or after 280 steps. Normalized score: 100 * return / 4 (D4RL's 0..4).
"""

from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np
from gymnasium_robotics.envs.franka_kitchen.kitchen_env import OBS_ELEMENT_GOALS, OBS_ELEMENT_INDICES

from calql.envs.common import FlatObservation, MapObservation, make_quietly, seeded

TASKS: dict[str, tuple[str, ...]] = {
    "complete": ("microwave", "kettle", "light switch", "slide cabinet"),
    "partial": ("microwave", "kettle", "bottom burner", "light switch"),
    "mixed": ("microwave", "kettle", "bottom burner", "light switch"),
}
MAX_EPISODE_STEPS = 280
D4RL_OBS_DIM = 60


def tasks_of(variant: str) -> tuple[str, ...]:
    if variant not in TASKS:
        raise ValueError(f"unknown FrankaKitchen variant {variant!r}; expected one of {sorted(TASKS)}")
    return TASKS[variant]


class TaskSuccess(gym.Wrapper):
    """info["success"]: every task of the episode is completed."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        info["success"] = False
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["success"] = len(info.get("episode_task_completions", ())) == len(self.env.unwrapped.goal)
        return obs, reward, terminated, truncated, info


def _base_env(variant: str) -> gym.Env:
    return TaskSuccess(
        make_quietly("FrankaKitchen-v1", tasks_to_complete=list(tasks_of(variant)), max_episode_steps=MAX_EPISODE_STEPS)
    )


@functools.cache
def d4rl_goal(variant: str) -> np.ndarray:
    """D4RL's 30-float goal vector: each task's goal at its element's qpos indices."""
    goal = np.zeros(30)
    for task in tasks_of(variant):
        goal[OBS_ELEMENT_INDICES[task]] = OBS_ELEMENT_GOALS[task]
    return goal


def d4rl_observation(obs: dict, variant: str) -> np.ndarray:
    """D4RL's 60 floats from FrankaKitchen-v1's: robot qpos (9), object qpos (21), goal (30)."""
    state = np.asarray(obs["observation"])
    robot_qpos, object_qpos = state[..., :9], state[..., 18:39]
    goal = np.broadcast_to(d4rl_goal(variant), state.shape[:-1] + (30,))
    return np.concatenate([robot_qpos, object_qpos, goal], axis=-1)


def make_env(variant: str, layout: str = "minari", seed: int | None = None) -> gym.Env:
    """Online / evaluation FrankaKitchen with float32 vector observations of `layout`."""
    env = _base_env(variant)
    if layout == "d4rl":
        env = MapObservation(env, functools.partial(d4rl_observation, variant=variant), D4RL_OBS_DIM)
    elif layout == "minari":
        env = FlatObservation(env)
    else:
        raise ValueError(f"unknown FrankaKitchen layout {layout!r}; expected 'minari' or 'd4rl'")
    return seeded(env, seed)
