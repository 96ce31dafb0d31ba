"""AntMaze: Gymnasium-Robotics' AntMaze with a fixed evaluation goal, in two frames.

D4RL files and Minari datasets of AntMaze do not live in the same world:

- D4RL `antmaze-*` HDF5 files (mujoco-py): observations are 29 floats, the ant's qpos[:15]
  (x, y first) and qvel[:14], in D4RL's frame: the start cell at (0, 0), y growing with the
  map's row index. The D4RL-frame environment (`make_env(maze, "d4rl")`) builds the maze with
  its rows reversed, so Gymnasium-Robotics' y axis (row 0 at the top) gives D4RL's walls, and
  shifts (x, y) so the start cell is the origin: observation = [x, y, observation(27)].
  Goals (D4RL): umaze (0, 8), medium (20, 20), large (32, 24); success within 0.5.
  The physics are Gymnasium-Robotics' ant (MuJoCo 3), not mujoco-py's: close, not identical.
- Minari `D4RL/antmaze/*-v1` was re-collected in Gymnasium-Robotics (AntMaze_*-v4, dict
  observations {achieved_goal 2, desired_goal 2, observation 27}) with goals that change per
  episode and rewards for that goal; its episodes run 1,000 steps and keep collecting reward
  after the goal. The Minari-frame environment flattens the whole dict (31 floats, goal
  included, in `flatten_observation`'s order) and evaluates a fixed goal; success within 0.45
  (the rule the data's rewards were computed with). Scores on Minari data are NOT comparable
  to D4RL's published AntMaze numbers.

Both: sparse reward 1 at success, where the online episode terminates (time-outs are not
terminal); the task applies the authors' transform x10 - 5.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, cast

import gymnasium as gym
import numpy as np

from calql.envs.common import FlatObservation, MapObservation, make_maze, seeded

D4RL_SUCCESS_RADIUS = 0.5
MINARI_SUCCESS_RADIUS = 0.45


@dataclasses.dataclass(frozen=True)
class AntMazeSpec:
    gym_id: str
    reset_cell: tuple[int, int]
    """(row, col) in D4RL's map (the Gymnasium-Robotics map of the same name has the same rows)."""
    goal_cell: tuple[int, int]
    max_episode_steps: int


MAZES: dict[str, AntMazeSpec] = {
    "umaze": AntMazeSpec("AntMaze_UMaze-v4", (1, 1), (3, 1), 700),
    "medium": AntMazeSpec("AntMaze_Medium-v4", (1, 1), (6, 6), 1000),
    "large": AntMazeSpec("AntMaze_Large-v4", (1, 1), (7, 9), 1000),
}

# D4RL dataset name -> maze (the dataset kinds differ only in how the data was collected).
DATASETS: dict[str, str] = {
    "umaze": "umaze",
    "umaze-diverse": "umaze",
    "medium-play": "medium",
    "medium-diverse": "medium",
    "large-play": "large",
    "large-diverse": "large",
}


def maze_spec(maze: str) -> AntMazeSpec:
    if maze not in MAZES:
        raise ValueError(f"unknown AntMaze maze {maze!r}; expected one of {sorted(MAZES)}")
    return MAZES[maze]


@functools.cache
def _default_map(maze: str) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(row) for row in gym.spec(maze_spec(maze).gym_id).kwargs["maze_map"])


def _cells(maze: str, frame: str) -> tuple[np.ndarray, np.ndarray, list]:
    """(reset cell, goal cell, maze map) in Gymnasium-Robotics' indexing for `frame`."""
    spec, rows = maze_spec(maze), [list(row) for row in _default_map(maze)]
    reset, goal = np.array(spec.reset_cell), np.array(spec.goal_cell)
    if frame == "d4rl":
        rows = rows[::-1]
        reset[0], goal[0] = len(rows) - 1 - reset[0], len(rows) - 1 - goal[0]
    return reset, goal, rows


class _FixedGoal(gym.Wrapper):
    """Fixed start and goal cells, the goal exactly at its cell centre, reward 1 and termination
    at success (distance <= radius), info["success"]. Caller reset options are ignored."""

    def __init__(self, env: gym.Env, reset_cell: np.ndarray, goal_cell: np.ndarray, radius: float):
        super().__init__(env)
        self._options = {"reset_cell": reset_cell, "goal_cell": goal_cell}
        self.goal = cast(Any, env.unwrapped).maze.cell_rowcol_to_xy(goal_cell).astype(np.float64)
        self.radius = radius

    def _success(self, obs) -> bool:
        return bool(np.linalg.norm(obs["achieved_goal"] - self.goal) <= self.radius)

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=self._options)
        base = self.env.unwrapped
        base.goal = self.goal.copy()
        base.update_target_site_pos()
        obs["desired_goal"] = self.goal.copy()
        info["success"] = self._success(obs)
        return obs, info

    def step(self, action):
        obs, _, _, truncated, info = self.env.step(action)
        info["success"] = self._success(obs)
        return obs, float(info["success"]), info["success"], truncated, info


def _base_env(maze: str, frame: str) -> tuple[gym.Env, np.ndarray]:
    """The fixed-goal dict-observation env of `frame` and the frame's xy offset."""
    spec = maze_spec(maze)
    reset, goal, rows = _cells(maze, frame)
    # continuing_task: the base env never terminates or moves its goal; _FixedGoal decides.
    env = make_maze(
        spec.gym_id, maze_map=rows, continuing_task=True, reset_target=False, max_episode_steps=spec.max_episode_steps
    )
    radius = D4RL_SUCCESS_RADIUS if frame == "d4rl" else MINARI_SUCCESS_RADIUS
    offset = -cast(Any, env.unwrapped).maze.cell_rowcol_to_xy(reset) if frame == "d4rl" else np.zeros(2)
    return _FixedGoal(env, reset, goal, radius), offset


def d4rl_observation(obs: dict, offset: np.ndarray) -> np.ndarray:
    """D4RL's 29 floats: (x, y) in D4RL's frame, then the 27-float ant observation."""
    return np.concatenate([np.asarray(obs["achieved_goal"]) + offset, obs["observation"]], axis=-1)


def make_env(maze: str, frame: str = "minari", seed: int | None = None) -> gym.Env:
    """Online / evaluation AntMaze: float32 vector observations of `frame` ('minari' or 'd4rl')."""
    if frame not in ("minari", "d4rl"):
        raise ValueError(f"unknown AntMaze frame {frame!r}; expected 'minari' or 'd4rl'")
    env, offset = _base_env(maze, frame)
    if frame == "d4rl":
        env = MapObservation(env, functools.partial(d4rl_observation, offset=offset), 29)
    else:
        env = FlatObservation(env)
    return seeded(env, seed)


def goal_xy(maze: str, frame: str) -> np.ndarray:
    """The evaluation goal in `frame`'s coordinates."""
    env, offset = _base_env(maze, frame)
    try:
        return cast(_FixedGoal, env).goal + offset
    finally:
        env.close()


def minari_terminals_at_goal(data: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    """Minari AntMaze: a step with reward (at its episode's goal) is terminal, as online.

    The Minari episodes run on after the goal and keep collecting reward; online the episode
    ends there, so offline it must too (D4RL's files already mark these terminals).
    """
    return {**data, "terminals": data["terminals"] | (data["rewards"] > 0)}
