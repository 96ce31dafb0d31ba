"""Pieces shared by the domain modules: wrappers that give every task float32 vectors and
info["success"], and quiet, seeded construction of the Gymnasium(-Robotics) environments.

`FlatObservation` flattens with `calql.data.observations.flatten_observation`, the rule the
dataset readers use, so data and environment can never disagree.
"""

from __future__ import annotations

import collections
import pathlib
import warnings
from collections.abc import Callable
from typing import Any, cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from calql.data.observations import flatten_observation


def float32_box(size: int) -> spaces.Box:
    return spaces.Box(-np.inf, np.inf, (size,), np.float32)


class FlatObservation(gym.ObservationWrapper):
    """Observations as float32 vectors: `flatten_observation` of the wrapped env's space."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.source_space = env.observation_space
        self.observation_space = float32_box(int(spaces.flatdim(env.observation_space)))

    def observation(self, observation):
        return flatten_observation(self.source_space, observation)


def source_space(env: gym.Env) -> gym.Space | None:
    """The raw (Dict) observation space under a FlatObservation wrapper, if `env` has one."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, FlatObservation):
            return env.source_space
        env = env.env
    return None


class MapObservation(gym.ObservationWrapper):
    """Observations through `fn` (a vectorised map to float32 vectors of width `size`)."""

    def __init__(self, env: gym.Env, fn: Callable[[Any], Any], size: int):
        super().__init__(env)
        self._fn = fn
        self.observation_space = float32_box(size)

    def observation(self, observation):
        return np.asarray(self._fn(observation), dtype=np.float32)


class StackFrames(gym.Wrapper):
    """uint8 (H, W, C) frames -> (H, W, count * C): the last `count` frames along the channel axis,
    oldest first, the episode's first frame repeated before its start. The rule by which
    calql.data.frames reads datasets of single frames, so data and environment agree."""

    def __init__(self, env: gym.Env, count: int):
        super().__init__(env)
        self.frame_shape = cast(tuple[int, ...], env.observation_space.shape)
        self.frames_per_observation = count
        height, width, channels = self.frame_shape
        self.observation_space = spaces.Box(0, 255, (height, width, channels * count), np.uint8)
        self._frames: collections.deque = collections.deque(maxlen=count)

    def reset(self, **kwargs):
        frame, info = self.env.reset(**kwargs)
        self._frames.extend([frame] * cast(int, self._frames.maxlen))
        return np.concatenate(self._frames, axis=-1), info

    def step(self, action):
        frame, reward, terminated, truncated, info = self.env.step(action)
        self._frames.append(frame)
        return np.concatenate(self._frames, axis=-1), reward, terminated, truncated, info


def flat_width(space: gym.Space) -> int:
    """The width of a flat (vector) space: its shape's first entry."""
    return cast(tuple[int, ...], space.shape)[0]


def make_quietly(env_id: str, **kwargs) -> gym.Env:
    """gym.make without the "out of date, upgrade to v5" notice: calql pins the versions its
    datasets were recorded with (Minari's AntMaze data is AntMaze_*-v4)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*out of date.*")
        return gym.make(env_id, **kwargs)


def make_maze(env_id: str, **kwargs) -> gym.Env:
    """`make_quietly` for Gymnasium-Robotics' PointMaze / AntMaze, then delete the maze's XML file.

    Those envs write the maze model to a new `ant_maze<time>.xml` in the temp directory on every
    construction and never delete it (thousands accumulate over test runs and sweeps); MuJoCo has
    read it by the time the constructor returns, so it is removed here.
    """
    env = make_quietly(env_id, **kwargs)
    xml_path = getattr(env.unwrapped, "tmp_xml_file_path", None)
    if xml_path is not None:
        pathlib.Path(xml_path).unlink(missing_ok=True)
    return env


def seeded(env: gym.Env, seed: int | None) -> gym.Env:
    """Seed the first reset and the action space when `seed` is given (the tasks' convention)."""
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def env_stack(env: gym.Env) -> list[gym.Env]:
    """The unwrapped env and any env it holds (PointMaze and AntMaze hold the robot's own env,
    with its own RNG and renderer)."""
    base = env.unwrapped
    return [base] + [value for value in vars(base).values() if isinstance(value, gym.Env)]
