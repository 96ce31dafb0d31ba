"""Built-in generated datasets cached as local Minari datasets (generated once, then read back)."""

from __future__ import annotations

import shutil
import sys
import warnings
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from calql.data.returns import trajectory_ends
from calql.data.sources import DatasetError, minari_root, read_minari


def episode_buffers(data: dict[str, np.ndarray]) -> list:
    """Split flat data into Minari episodes (L+1 observations, L steps each) at its time-outs and
    wherever the next observation does not continue the episode (an episode that ended at a
    terminal, followed by a new one).

    Terminals inside an episode stay per-step `terminations` (D4RL AntMaze style): the scripted
    episode went on after them.
    """
    from minari.data_collector import EpisodeBuffer

    no_terminals = np.zeros(len(data["rewards"]), bool)
    ends = (
        np.flatnonzero(trajectory_ends(no_terminals, data["timeouts"], data["observations"], data["next_observations"]))
        + 1
    )
    starts = np.concatenate([[0], ends[:-1]])
    return [
        EpisodeBuffer(
            id=i,
            observations=np.concatenate([data["observations"][s:e], data["next_observations"][e - 1 : e]]),
            actions=data["actions"][s:e],
            rewards=data["rewards"][s:e],
            terminations=data["terminals"][s:e],
            truncations=data["timeouts"][s:e],
        )
        for i, (s, e) in enumerate(zip(starts, ends))
    ]


def write_minari(dataset_id: str, data: dict[str, np.ndarray], env: gym.Env, algorithm: str, description: str) -> None:
    """Store flat `data` (episodes ending at time-outs) as a Minari HDF5 dataset; removes a
    half-written folder on failure."""
    import minari
    from minari.storage import get_dataset_path

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # provenance fields a local cache does not have
            minari.create_dataset_from_buffers(
                dataset_id=dataset_id,
                buffer=episode_buffers(data),
                observation_space=env.observation_space,
                action_space=env.action_space,
                algorithm_name=algorithm,
                author="calql",
                description=description,
                data_format="hdf5",
            )
    except BaseException:
        shutil.rmtree(get_dataset_path(dataset_id), ignore_errors=True)
        raise


def load_or_generate(
    dataset_id: str,
    num_transitions: int | None,
    generate: Callable[[], dict[str, np.ndarray]],
    make_env: Callable[[], gym.Env],
    algorithm: str,
    description: str,
) -> dict[str, np.ndarray]:
    """The cached dataset `dataset_id`, or `generate()` written to the cache first.

    A cache that is unreadable or (when `num_transitions` is known) of the wrong size is a
    DatasetError naming its folder.
    """
    path = minari_root() / dataset_id
    if path.exists():
        try:
            data = read_minari(dataset_id)
        except DatasetError as err:
            raise DatasetError(f"corrupt dataset cache at {path} ({err}); delete that folder to regenerate it") from err
        if num_transitions is not None and len(data["rewards"]) != num_transitions:
            raise DatasetError(
                f"corrupt dataset cache at {path} (it holds {len(data['rewards'])} transitions, "
                f"not {num_transitions}); delete that folder to regenerate it"
            )
        return data
    print(f"generating {dataset_id} at {path} (first run only)", file=sys.stderr)
    data = generate()
    env = make_env()
    try:
        write_minari(dataset_id, data, env, algorithm, description)
    finally:
        env.close()
    return data
