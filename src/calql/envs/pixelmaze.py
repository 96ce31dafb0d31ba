"""The built-in pixel task: PointMaze narrow (calql.envs.pointmaze) seen through a top-down image.

The image is drawn with numpy from the known geometry, not by MuJoCo's renderer (7-28 frames/s at
64x64 on 2 CPU cores; this draws thousands per second: benchmarks/pixel_task.py): the maze's walls
and the goal in the red channel, the ball as a Gaussian blob (sub-pixel position) in the green
channel, and in the blue channel the same blob where the ball was TRAIL_SECONDS ago at its current
velocity (x - TRAIL_SECONDS * v), so one frame shows the velocity as a frame stack would. Control
must come from these pixels: the policy never sees (x, y, vx, vy).

Same start region, goal, reward, time limit and offline data as the vector task: the narrow
generator's states, each drawn as an image, cached as a Minari dataset of uint8 images.

With `trail=False` the blue channel stays dark and one frame shows only where the ball is: the
`-stacked` task stacks the last STACK frames instead (calql.envs.common.StackFrames), so the
velocity is read from the difference of frames, as in the usual frame-stacked pixel benchmarks.
"""

from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np

from calql.envs import cache, pointmaze
from calql.envs.common import StackFrames

IMAGE_SIZE = 32
"""Height and width of the frames (pixels): 6.4 pixels per maze cell on the UMaze."""
TRAIL_SECONDS = 0.2
"""The blue channel's ball is drawn at x - TRAIL_SECONDS * v (about 2 pixels at 1 m/s)."""
BALL_SIGMA = 0.12
"""Standard deviation (m) of the ball's Gaussian blob: about 0.8 pixel at 32 pixels."""
STACK = 3
"""Frames per observation of the stacked task (DrQ's 3)."""
WALL, GOAL = 255, 96
"""Red-channel intensities of wall pixels and of the goal disk (radius pointmaze.SUCCESS_RADIUS)."""


def _pixel_centres(maze: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(size,) x of each pixel column and (size,) y of each pixel row, row 0 at the top (largest y)."""
    rows, cols = pointmaze._free_mask(maze).shape
    along = (np.arange(size) + 0.5) / size
    return along * cols - cols / 2, rows / 2 - along * rows


@functools.cache
def _background(maze: str, size: int) -> np.ndarray:
    """(size, size) uint8 red channel: walls and the goal disk."""
    free = pointmaze._free_mask(maze)
    xs, ys = _pixel_centres(maze, size)
    grid_x, grid_y = np.meshgrid(xs, ys)
    row = np.clip(np.floor(free.shape[0] / 2 - grid_y).astype(int), 0, free.shape[0] - 1)
    col = np.clip(np.floor(grid_x + free.shape[1] / 2).astype(int), 0, free.shape[1] - 1)
    red = np.where(free[row, col], 0, WALL).astype(np.uint8)
    goal = pointmaze.goal_xy(maze)
    red[np.hypot(grid_x - goal[0], grid_y - goal[1]) <= pointmaze.SUCCESS_RADIUS] = GOAL
    red.setflags(write=False)
    return red


def _blobs(maze: str, size: int, xy: np.ndarray) -> np.ndarray:
    """(N, size, size) uint8 Gaussian blobs centred at each (N, 2) position."""
    xs, ys = _pixel_centres(maze, size)
    along_x = np.exp(-((xs[None, :] - xy[:, :1]) ** 2) / (2 * BALL_SIGMA**2))  # separable: (N, W)
    along_y = np.exp(-((ys[None, :] - xy[:, 1:2]) ** 2) / (2 * BALL_SIGMA**2))  # (N, H)
    return np.round(255.0 * along_y[:, :, None] * along_x[:, None, :]).astype(np.uint8)


def render(maze: str, states: np.ndarray, size: int = IMAGE_SIZE, trail: bool = True) -> np.ndarray:
    """(N, size, size, 3) uint8 frames of (N, 4) ball states (x, y, vx, vy); (size, size, 3) for one
    state. trail=False: no blue trail (the blue channel is 0)."""
    states = np.asarray(states, np.float64)
    single = states.ndim == 1
    states = states.reshape(-1, 4)
    frames = np.empty((len(states), size, size, 3), np.uint8)
    frames[..., 0] = _background(maze, size)
    frames[..., 1] = _blobs(maze, size, states[:, :2])
    frames[..., 2] = _blobs(maze, size, states[:, :2] - TRAIL_SECONDS * states[:, 2:4]) if trail else 0
    return frames[0] if single else frames


class TopDownImage(gym.ObservationWrapper):
    """The vector task's (x, y, vx, vy) observation replaced by its `render`ed frame."""

    def __init__(self, env: gym.Env, maze: str, size: int = IMAGE_SIZE, trail: bool = True):
        super().__init__(env)
        self._maze, self._size, self._trail = maze, size, trail
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)

    def observation(self, observation):
        return render(self._maze, observation, self._size, self._trail)


def make_env(maze: str = "umaze", seed: int | None = None, trail: bool = True) -> gym.Env:
    """pointmaze.make_env(maze, seed) observed through (IMAGE_SIZE, IMAGE_SIZE, 3) uint8 frames."""
    return TopDownImage(pointmaze.make_env(maze, seed), maze, trail=trail)


def make_stacked_env(maze: str = "umaze", seed: int | None = None) -> gym.Env:
    """The frames without the trail, the last STACK of them per observation: (size, size, 3 * STACK)."""
    return StackFrames(make_env(maze, seed, trail=False), STACK)


def generate_narrow_dataset(maze: str, seed: int, trail: bool = True) -> dict[str, np.ndarray]:
    """pointmaze's narrow dataset with every observation and next observation drawn as a frame."""
    data = pointmaze.generate_narrow_dataset(maze, seed)
    for field in ("observations", "next_observations"):
        data[field] = render(maze, data[field], trail=trail)
    return data


def narrow_dataset_id(maze: str, seed: int, trail: bool = True) -> str:
    vector_id = pointmaze.narrow_dataset_id(maze, seed).removeprefix(f"calql/pointmaze-{maze}-narrow-")
    kind = "pixels" if trail else "pixels-stacked"
    return f"calql/pointmaze-{maze}-narrow-{kind}-{IMAGE_SIZE}px-{vector_id}"


def load_or_generate_narrow(maze: str, seed: int = 0, trail: bool = True) -> dict[str, np.ndarray]:
    """`generate_narrow_dataset(maze, seed, trail)`, cached as a local Minari dataset of uint8 frames
    (single frames also for the stacked task: stacks are made by index when loaded)."""
    blue = "ball a moment ago blue" if trail else "blue empty"
    description = (
        f"calql PointMaze narrow data ({pointmaze.NARROW_DEMOS} demonstrations, {pointmaze.NARROW_FAILURES} "
        f"failed attempts) on {pointmaze.maze_spec(maze).gym_id}, observations drawn as {IMAGE_SIZE}x{IMAGE_SIZE}x3 "
        f"top-down frames (walls and goal red, ball green, {blue})."
    )
    return cache.load_or_generate(
        narrow_dataset_id(maze, seed, trail),
        None,
        generate=lambda: generate_narrow_dataset(maze, seed, trail),
        make_env=lambda: make_env(maze, trail=trail),
        algorithm="scripted BFS waypoint controller",
        description=description,
    )
