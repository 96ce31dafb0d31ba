"""Test helper (not a test module): record episodes of an environment as a small dataset in
Minari's or D4RL's layout, on the real environments. Policies are callables
(observation, rng) -> action.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import gymnasium as gym
import numpy as np

from calql.envs import antmaze
from calql.envs.common import make_maze

Policy = Callable[[object, np.random.Generator], np.ndarray]


def antmaze_collection_env(maze: str) -> gym.Env:
    """A raw Gymnasium-Robotics AntMaze like Minari's collection env (random goals per episode,
    continuing task, dict observations): for building test datasets in Minari's layout."""
    spec = antmaze.maze_spec(maze)
    return make_maze(spec.gym_id, continuing_task=True, reset_target=False, max_episode_steps=spec.max_episode_steps)


def random_policy(space: gym.spaces.Box) -> Policy:
    """Uniform random actions in `space`."""
    return lambda obs, rng: rng.uniform(space.low, space.high).astype(space.dtype)


class _StepLimit(gym.Wrapper):
    """Truncates the episode after `limit` steps (set before each reset)."""

    limit = 1

    def reset(self, **kwargs):
        self._steps = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._steps += 1
        return obs, reward, terminated, truncated or self._steps >= self.limit, info


def _keep_infos(keys: tuple[str, ...]):
    """A minari StepDataCallback class that stores only info[key] for `keys` (Minari needs the
    same info keys at reset and at every step)."""
    from minari import StepDataCallback

    class KeepInfos(StepDataCallback):
        def __call__(self, env, **kwargs):
            step_data = super().__call__(env, **kwargs)
            step_data["info"] = {key: np.asarray(step_data["info"].get(key, False)) for key in keys}
            return step_data

    return KeepInfos


def record_minari(
    dataset_id: str,
    env: gym.Env,
    policy: Policy,
    episode_steps: Sequence[int],
    seed: int = 0,
    info_keys: tuple[str, ...] = (),
):
    """Episodes of at most `episode_steps[i]` steps (fewer if the env ends them) through
    minari.DataCollector, stored as the local Minari dataset `dataset_id` (HDF5), with the
    per-step infos `info_keys`."""
    import minari

    limited = _StepLimit(env)
    collector = minari.DataCollector(
        limited, step_data_callback=_keep_infos(info_keys), record_infos=bool(info_keys), data_format="hdf5"
    )
    rng = np.random.default_rng(seed)
    for index, steps in enumerate(episode_steps):
        limited.limit = steps
        obs, _ = collector.reset(seed=seed + index)
        while True:
            obs, _, terminated, truncated, _ = collector.step(policy(obs, rng))
            if terminated or truncated:
                break
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dataset = collector.create_dataset(dataset_id=dataset_id, algorithm_name="random", author="calql tests")
    collector.close()
    return dataset


def record_d4rl(
    path: str | Path,
    env: gym.Env,
    policy: Policy,
    episode_steps: Sequence[int],
    seed: int = 0,
    infos: dict[str, Callable[[dict], object]] | None = None,
    next_observations: bool = False,
) -> dict[str, np.ndarray]:
    """Episodes written to `path` in D4RL's HDF5 layout: observations, actions, rewards,
    terminals, timeouts (the last step of an episode not ended by termination), infos/<key>
    from `infos[key](info)`, and optionally next_observations. Returns the arrays written."""
    import h5py

    rows: dict[str, list] = {
        key: [] for key in ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")
    }
    info_rows: dict[str, list] = {key: [] for key in (infos or {})}
    rng = np.random.default_rng(seed)
    for index, steps in enumerate(episode_steps):
        obs, _ = env.reset(seed=seed + index)
        for step in range(steps):
            action = policy(obs, rng)
            next_obs, reward, terminated, truncated, info = env.step(action)
            ends = terminated or truncated or step == steps - 1
            for key, value in (
                ("observations", obs),
                ("actions", action),
                ("rewards", reward),
                ("terminals", terminated),
                ("timeouts", ends and not terminated),
                ("next_observations", next_obs),
            ):
                rows[key].append(value)
            for key, fn in (infos or {}).items():
                info_rows[key].append(fn(info))
            obs = next_obs
            if terminated or truncated:
                break
    data = {key: np.asarray(values) for key, values in rows.items()}
    data["observations"] = data["observations"].astype(np.float32)
    data["next_observations"] = data["next_observations"].astype(np.float32)
    data.update({f"infos/{key}": np.asarray(values) for key, values in info_rows.items()})
    with h5py.File(path, "w") as file:
        for key, values in data.items():
            if key != "next_observations" or next_observations:
                file.create_dataset(key, data=values)
    return data
