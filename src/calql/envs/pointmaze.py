"""Built-in default task: PointMaze with a fixed goal and a locally generated stitching dataset.

`make_env` is gymnasium-robotics' PointMaze with a fixed goal cell and a start region per maze
(`MAZES`): each episode starts in one of a few neighbouring start cells, drawn uniformly, plus
PointMaze's own uniform noise of +-0.25 around the cell centre, so that evaluation outcomes vary
between episodes. The goal never moves, so it is left out of the observation, which is just the
ball's (x, y, vx, vy).

`generate_dataset` builds a "diverse"-style offline dataset (like D4RL antmaze-diverse): a noisy
scripted controller drives between random cells of the maze, and rewards are relabelled to the
fixed evaluation goal. Few trajectories go from the start to the goal, so a good policy has to
stitch pieces of many trajectories together. `load_or_generate` caches the dataset as a Minari
dataset so that it is generated only once.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from typing import Any, cast

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import FilterObservation, FlattenObservation, TransformObservation

from calql.envs import cache
from calql.envs.common import make_maze

SUCCESS_RADIUS = 0.45
"""Distance (m) from the goal at which PointMaze counts success (its own sparse-reward rule)."""


@dataclasses.dataclass(frozen=True)
class MazeSpec:
    """One evaluation task: a PointMaze layout with a start region and a fixed goal cell."""

    gym_id: str
    start_cells: tuple[tuple[int, int], ...]
    """Cells (row, col) an episode starts in, drawn uniformly; the first is D4RL maze2d's start."""
    goal_cell: tuple[int, int]
    max_episode_steps: int

    @property
    def reset_cell(self) -> tuple[int, int]:
        return self.start_cells[0]


# Start and goal are D4RL maze2d's cells, 6 / 10 / 14 grid steps apart on the shortest path, so the
# dataset's random hops between cells must be stitched; the start region adds the free cells next
# to the start in the same corner. The time limits (gymnasium-robotics' defaults) are over 2x the
# ~120 / ~200 / ~285 steps the noiseless scripted controller needs from the start cell.
MAZES: dict[str, MazeSpec] = {
    "umaze": MazeSpec("PointMaze_UMaze-v3", start_cells=((3, 1), (3, 2)), goal_cell=(1, 1), max_episode_steps=300),
    "medium": MazeSpec(
        "PointMaze_Medium-v3", start_cells=((1, 1), (1, 2), (2, 1), (2, 2)), goal_cell=(6, 6), max_episode_steps=600
    ),
    "large": MazeSpec(
        "PointMaze_Large-v3", start_cells=((1, 1), (1, 2), (2, 1)), goal_cell=(7, 9), max_episode_steps=800
    ),
}

# Scripted controller: PD gains on (waypoint - position) and velocity, Gaussian action noise,
# and how close to a goal cell's centre counts as having reached it.
KP = 10.0
KD = 1.0
ACTION_NOISE_STD = 0.3
GOAL_REACHED_RADIUS = 0.25
ENVS_IN_LOCKSTEP = 8  # each env costs ~0.1 s to build; more buys no speed


def maze_spec(maze: str) -> MazeSpec:
    """The `MazeSpec` named `maze`; ValueError listing the accepted names otherwise."""
    if maze not in MAZES:
        raise ValueError(f"unknown maze {maze!r}; expected one of {sorted(MAZES)}")
    return MAZES[maze]


@functools.cache
def _free_mask(maze: str) -> np.ndarray:
    """(rows, cols) bool grid, True where the ball can be (the registered env's maze map)."""
    maze_map = gym.spec(maze_spec(maze).gym_id).kwargs["maze_map"]
    return np.array([[cell != 1 for cell in row] for row in maze_map])


def _cell_centres(shape: tuple[int, int]) -> np.ndarray:
    """(rows*cols, 2) xy centres of every cell, indexed by row*cols + col.

    Same convention as gymnasium-robotics' Maze.cell_rowcol_to_xy for maze_size_scaling=1
    (PointMaze's): the maze is centred on the origin and row 0 is at the top (largest y).
    """
    rows, cols = np.divmod(np.arange(shape[0] * shape[1]), shape[1])
    return np.stack([cols + 0.5 - shape[1] / 2, shape[0] / 2 - rows - 0.5], axis=-1)


def _xy_to_cell(xy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Flat cell index (row*cols + col) of each (..., 2) position."""
    row = np.clip(np.floor(shape[0] / 2 - xy[..., 1]).astype(np.int64), 0, shape[0] - 1)
    col = np.clip(np.floor(xy[..., 0] + shape[1] / 2).astype(np.int64), 0, shape[1] - 1)
    return row * shape[1] + col


def cell_xy(maze: str, cell: tuple[int, int]) -> np.ndarray:
    """The (x, y) centre of grid cell (row, col) of `maze`."""
    shape = _free_mask(maze).shape
    return _cell_centres(shape)[cell[0] * shape[1] + cell[1]].copy()


def goal_xy(maze: str) -> np.ndarray:
    """The fixed evaluation goal of `maze`: the exact centre of its goal cell, shape (2,)."""
    return cell_xy(maze, maze_spec(maze).goal_cell)


def success(xy: np.ndarray, maze: str) -> np.ndarray:
    """Whether each (..., 2) position is within SUCCESS_RADIUS of the goal (the one success rule)."""
    distance = np.linalg.norm(np.asarray(xy, dtype=np.float64) - goal_xy(maze), axis=-1)
    return distance <= SUCCESS_RADIUS


class _FixedGoalTask(gym.Wrapper):
    """Draws the start cell from the task's start region, pins the goal cell, removes the goal
    noise, applies `success`.

    Reset options from the caller are ignored: the task's cells are fixed by design. The start cell
    is drawn from the base env's RNG (seeded by reset(seed=...), saved in checkpoints).
    """

    def __init__(self, env: gym.Env, maze: str):
        super().__init__(env)
        self._maze = maze
        self._start_cells = np.array(maze_spec(maze).start_cells)
        self._goal_cell = np.array(maze_spec(maze).goal_cell)
        self._goal = goal_xy(maze)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        base = self.env.unwrapped
        if seed is not None:
            # Seed first, so the start cell comes from the seeded stream; PointMaze's inner robot
            # env draws nothing at reset, so resetting it unseeded below changes nothing.
            gym.Env.reset(base, seed=seed)
        start = self._start_cells[base.np_random.integers(len(self._start_cells))]
        obs, info = self.env.reset(options={"reset_cell": start, "goal_cell": self._goal_cell})
        # The base env adds uniform noise to the goal as well as the start; undo it for the goal.
        base = cast(Any, self.env.unwrapped)
        base.goal = self._goal.copy()
        base.update_target_site_pos()
        obs["desired_goal"] = self._goal.copy()
        info["success"] = bool(success(obs["achieved_goal"], self._maze))
        return obs, info

    def step(self, action):
        obs, _, _, truncated, info = self.env.step(action)
        reached = bool(success(obs["achieved_goal"], self._maze))
        info["success"] = reached
        return obs, float(reached), reached, truncated, info


def make_env(maze: str = "medium", seed: int | None = None) -> gym.Env:
    """Online / evaluation env: float32 (x, y, vx, vy) observations, sparse reward, fixed goal.

    Reward is 1.0 (and the episode terminates) when `success`; truncated at
    MAZES[maze].max_episode_steps. `seed`, if given, seeds the first reset and the action space.
    """
    spec = maze_spec(maze)
    env = make_maze(spec.gym_id, continuing_task=False, max_episode_steps=spec.max_episode_steps)
    env = _FixedGoalTask(env, maze)
    env = FlattenObservation(FilterObservation(env, filter_keys=["observation"]))
    # (DtypeObservation would do, but warns about casting the infinite bounds to float32.)
    float32_space = gym.spaces.Box(-np.inf, np.inf, env.observation_space.shape, np.float32)
    env = TransformObservation(env, lambda obs: obs.astype(np.float32), float32_space)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


@dataclasses.dataclass(frozen=True)
class _Controller:
    """Grid tables for the BFS waypoint controller of one maze."""

    shape: tuple[int, int]
    centres: np.ndarray  # (cells, 2) xy of every cell centre
    next_cell: np.ndarray  # (goal cell, current cell) -> next cell on a shortest path
    free_cells: np.ndarray  # flat indices of the cells the ball can be in


def _neighbours(cell: int, shape: tuple[int, int]) -> list[int]:
    """Flat indices of the (up to 4) grid cells sharing an edge with flat cell `cell`."""
    row, col = divmod(cell, shape[1])
    candidates = ((row - 1, col), (row + 1, col), (row, col - 1), (row, col + 1))
    return [r * shape[1] + c for r, c in candidates if 0 <= r < shape[0] and 0 <= c < shape[1]]


def _bfs_distances(free: np.ndarray, source: int) -> np.ndarray:
    """Grid steps from flat cell `source` to every cell (4-connected; -1 = unreachable/wall)."""
    free_flat = free.ravel()
    distance = np.full(free.size, -1)
    distance[source] = 0
    frontier = collections.deque([source])
    while frontier:
        cell = frontier.popleft()
        for n in _neighbours(cell, free.shape):
            if free_flat[n] and distance[n] < 0:
                distance[n] = distance[cell] + 1
                frontier.append(n)
    return distance


def _next_cell_table(free: np.ndarray) -> np.ndarray:
    """(cells, cells) table: next_cell[goal, cell] is a neighbour of `cell` one step closer to `goal`.

    The goal cell (and any unreachable or wall cell) maps to itself.
    """
    table = np.tile(np.arange(free.size), (free.size, 1))
    for goal in np.flatnonzero(free):
        distance = _bfs_distances(free, cast(int, goal))
        for cell in np.flatnonzero(distance > 0):
            closer = (n for n in _neighbours(cast(int, cell), free.shape) if distance[n] == distance[cell] - 1)
            table[goal, cell] = next(closer)
    return table


@functools.cache
def _controller(maze: str) -> _Controller:
    free = _free_mask(maze)
    return _Controller(
        shape=free.shape,
        centres=_cell_centres(free.shape),
        next_cell=_next_cell_table(free),
        free_cells=np.flatnonzero(free),
    )


def _waypoint_actions(ctrl: _Controller, obs: np.ndarray, goal_cells: np.ndarray) -> np.ndarray:
    """Noiseless PD actions (..., 2) driving each (..., 4) observation towards its goal cell."""
    position, velocity = obs[..., :2], obs[..., 2:4]
    waypoint = ctrl.centres[ctrl.next_cell[goal_cells, _xy_to_cell(position, ctrl.shape)]]
    return np.clip(KP * (waypoint - position) - KD * velocity, -1.0, 1.0)


def _episode_lengths(num_transitions: int, episode_length: int) -> list[int]:
    """Full-length episodes, then one shorter episode for the remainder (if any)."""
    full, rest = divmod(num_transitions, episode_length)
    return [episode_length] * full + ([rest] if rest else [])


def _draw_goal(rng: np.random.Generator, ctrl: _Controller, exclude: int) -> int:
    """A uniformly random free cell other than `exclude`."""
    candidates = ctrl.free_cells[ctrl.free_cells != exclude]
    return int(rng.choice(candidates))


def _start_episode(env: gym.Env, rng: np.random.Generator, ctrl: _Controller) -> tuple[np.ndarray, int]:
    """Reset `env` near a random free cell; returns the first observation and a first goal cell."""
    start = int(rng.choice(ctrl.free_cells))
    rowcol = np.array(divmod(start, ctrl.shape[1]))
    obs, _ = env.reset(seed=int(rng.integers(2**31)), options={"reset_cell": rowcol, "goal_cell": rowcol})
    return obs["observation"], _draw_goal(rng, ctrl, exclude=start)


def _rollout_batch(
    envs: list[gym.Env], rngs: list[np.random.Generator], ctrl: _Controller, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Run one episode per rng in lockstep (controller math vectorised across episodes).

    Returns observations (batch, length + 1, 4) and actions (batch, length, 2). Each episode
    draws only from its own rng, so results do not depend on how episodes are batched.
    """
    batch = len(rngs)
    obs = np.empty((batch, length + 1, 4))
    actions = np.empty((batch, length, 2), dtype=np.float32)
    goals = np.empty(batch, dtype=np.int64)
    for i, (env, rng) in enumerate(zip(envs, rngs)):
        obs[i, 0], goals[i] = _start_episode(env, rng, ctrl)
    noise = np.stack([rng.normal(0.0, ACTION_NOISE_STD, (length, 2)) for rng in rngs])
    for t in range(length):
        pd = _waypoint_actions(ctrl, obs[:, t], goals)
        actions[:, t] = np.clip(pd + noise[:, t], -1.0, 1.0)
        for i, env in enumerate(envs[:batch]):
            obs[i, t + 1] = env.step(actions[i, t])[0]["observation"]
        to_goal = np.linalg.norm(obs[:, t + 1, :2] - ctrl.centres[goals], axis=-1)
        for reached in np.flatnonzero(to_goal <= GOAL_REACHED_RADIUS):
            goals[reached] = _draw_goal(rngs[reached], ctrl, exclude=goals[reached])
    return obs, actions


def _flat_transitions(obs: list[np.ndarray], actions: list[np.ndarray], maze: str) -> dict[str, np.ndarray]:
    """Concatenate per-episode arrays (L+1 observations, L actions) into the flat dataset dict."""
    observations = np.concatenate([o[:-1] for o in obs]).astype(np.float32)
    next_observations = np.concatenate([o[1:] for o in obs]).astype(np.float32)
    # Reward from the stored float32 positions, so it is exactly reproducible from the arrays.
    rewards = success(next_observations[:, :2], maze).astype(np.float32)
    timeouts = np.zeros(len(rewards), dtype=bool)
    timeouts[np.cumsum([len(a) for a in actions]) - 1] = True
    return {
        "observations": observations,
        "actions": np.concatenate(actions).astype(np.float32),
        "next_observations": next_observations,
        "rewards": rewards,
        "terminals": rewards > 0,
        "timeouts": timeouts,
    }


def generate_dataset(maze: str, num_transitions: int, seed: int, episode_length: int = 1000) -> dict[str, np.ndarray]:
    """Scripted-controller dataset with rewards for the fixed evaluation goal (see module doc).

    Episodes start near a random free cell; the controller follows BFS waypoints to a sequence of
    random goal cells, with Gaussian action noise. Episodes continue past terminals (reaching the
    evaluation goal) and end only at `timeouts`. Deterministic given `seed`.
    """
    maze_spec(maze)
    if num_transitions < 1 or episode_length < 1:
        raise ValueError(f"num_transitions and episode_length must be >= 1, got {num_transitions}, {episode_length}")
    ctrl = _controller(maze)
    lengths = _episode_lengths(num_transitions, episode_length)
    # Continuing task: the base env never terminates; its goal and reward are ignored.
    gym_id = maze_spec(maze).gym_id
    envs = [make_maze(gym_id, continuing_task=True).unwrapped for _ in range(min(len(lengths), ENVS_IN_LOCKSTEP))]
    all_obs, all_actions = [], []
    for first in range(0, len(lengths), ENVS_IN_LOCKSTEP):
        chunk = lengths[first : first + ENVS_IN_LOCKSTEP]
        rngs = [np.random.default_rng([seed, episode]) for episode in range(first, first + len(chunk))]
        obs, actions = _rollout_batch(envs, rngs, ctrl, max(chunk))
        all_obs += [obs[i, : n + 1] for i, n in enumerate(chunk)]
        all_actions += [actions[i, :n] for i, n in enumerate(chunk)]
    for env in envs:
        env.close()
    return _flat_transitions(all_obs, all_actions, maze)


# ----- narrow data: demonstrations from the start region to the goal (Adroit-style coverage) -----

NARROW_DEMOS = 40
NARROW_FAILURES = 20
"""Episodes of the narrow dataset: noisy demonstrations that reach the goal, and failed attempts."""


def _narrow_episode(
    env: gym.Env, rng: np.random.Generator, ctrl: _Controller, maze: str, waypoint_goals: list[int]
) -> tuple[np.ndarray, np.ndarray, bool]:
    """One episode from a start cell drawn from the start region, the noisy controller heading to
    each of `waypoint_goals` in turn (the last one held), until the goal region or the time limit.
    Returns observations (L+1, 4), actions (L, 2) and whether it ended at the goal."""
    spec = maze_spec(maze)
    start = spec.start_cells[rng.integers(len(spec.start_cells))]
    obs, _ = env.reset(
        seed=int(rng.integers(2**31)), options={"reset_cell": np.array(start), "goal_cell": np.array(start)}
    )
    observations, actions, target = [obs["observation"]], [], 0
    for _ in range(spec.max_episode_steps):
        current = observations[-1]
        goal = np.array(waypoint_goals[target])
        action = np.clip(_waypoint_actions(ctrl, current, goal) + rng.normal(0.0, ACTION_NOISE_STD, 2), -1.0, 1.0)
        observations.append(env.step(action.astype(np.float32))[0]["observation"])
        actions.append(action)
        if success(np.asarray(observations[-1][:2], np.float32), maze):
            return np.array(observations), np.array(actions, np.float32), True
        if np.linalg.norm(observations[-1][:2] - ctrl.centres[goal]) <= GOAL_REACHED_RADIUS:
            target = min(target + 1, len(waypoint_goals) - 1)
    return np.array(observations), np.array(actions, np.float32), False


def _failure_goals(rng: np.random.Generator, ctrl: _Controller, maze: str, count: int = 4) -> list[int]:
    """Random cells other than the goal cell: a failed attempt wanders between them."""
    spec = maze_spec(maze)
    goal = spec.goal_cell[0] * ctrl.shape[1] + spec.goal_cell[1]
    candidates = ctrl.free_cells[ctrl.free_cells != goal]
    return [int(cell) for cell in rng.choice(candidates, count)]


def generate_narrow_dataset(
    maze: str, seed: int, demos: int = NARROW_DEMOS, failures: int = NARROW_FAILURES
) -> dict[str, np.ndarray]:
    """Narrow data like Adroit's: `demos` noisy scripted demonstrations from the start region to the
    goal (each ends at the goal: terminal), then `failures` attempts that wander between random
    other cells until the time limit (an attempt that happens to reach the goal ends there, a
    success). Deterministic given `seed`."""
    ctrl = _controller(maze)
    spec = maze_spec(maze)
    goal = spec.goal_cell[0] * ctrl.shape[1] + spec.goal_cell[1]
    env = make_maze(spec.gym_id, continuing_task=True).unwrapped
    episodes = []
    for index in range(demos + failures):
        rng = np.random.default_rng([seed, index])
        targets = [goal] if index < demos else _failure_goals(rng, ctrl, maze)
        episodes.append(_narrow_episode(env, rng, ctrl, maze, targets))
    env.close()
    return _episodes_to_transitions(episodes, maze)


def _episodes_to_transitions(episodes: list[tuple[np.ndarray, np.ndarray, bool]], maze: str) -> dict[str, np.ndarray]:
    """Flat transitions of whole episodes: terminal at the goal, a time-out otherwise."""
    data = _flat_transitions([obs for obs, _, _ in episodes], [actions for _, actions, _ in episodes], maze)
    last = np.cumsum([len(actions) for _, actions, _ in episodes]) - 1
    reached = np.array([ended for _, _, ended in episodes])
    data["timeouts"][last] = ~reached  # _flat_transitions marks every episode's end a time-out
    return data


def narrow_dataset_id(maze: str, seed: int, demos: int = NARROW_DEMOS, failures: int = NARROW_FAILURES) -> str:
    return f"calql/pointmaze-{maze}-narrow-d{demos}-f{failures}-s{seed}-v0"


def load_or_generate_narrow(maze: str, seed: int = 0) -> dict[str, np.ndarray]:
    """`generate_narrow_dataset(maze, seed)`, cached as a local Minari dataset (see `load_or_generate`)."""
    spec = maze_spec(maze)
    description = (
        f"calql PointMaze narrow data on {spec.gym_id}: {NARROW_DEMOS} noisy demonstrations (BFS waypoint PD "
        f"controller, action noise std={ACTION_NOISE_STD}) from start cells {list(spec.start_cells)} to the goal "
        f"cell {spec.goal_cell}, and {NARROW_FAILURES} attempts wandering between other cells."
    )
    return cache.load_or_generate(
        narrow_dataset_id(maze, seed),
        None,
        generate=lambda: generate_narrow_dataset(maze, seed),
        make_env=lambda: make_env(maze),
        algorithm="scripted BFS waypoint controller",
        description=description,
    )


def dataset_id(maze: str, num_transitions: int, seed: int) -> str:
    """The Minari dataset id under which `load_or_generate` caches a dataset."""
    return f"calql/pointmaze-{maze}-stitch-n{num_transitions}-s{seed}-v0"


def load_or_generate(maze: str, num_transitions: int, seed: int = 0) -> dict[str, np.ndarray]:
    """`generate_dataset(maze, num_transitions, seed)`, cached as a local Minari dataset.

    Stored under MINARI_DATASETS_PATH (Minari's default, ~/.minari/datasets, if unset). Only
    the local cache is used: no network access.
    """
    spec = maze_spec(maze)
    description = (
        f"calql PointMaze stitching data on {spec.gym_id}: BFS waypoint PD controller "
        f"(kp={KP}, kd={KD}, action noise std={ACTION_NOISE_STD}) between random cells; "
        f"rewards and terminations for the fixed goal cell {spec.goal_cell}."
    )
    return cache.load_or_generate(
        dataset_id(maze, num_transitions, seed),
        num_transitions,
        generate=lambda: generate_dataset(maze, num_transitions, seed),
        make_env=lambda: make_env(maze),
        algorithm="scripted BFS waypoint controller",
        description=description,
    )
