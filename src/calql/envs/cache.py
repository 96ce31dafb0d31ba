"""Built-in generated datasets cached as local Minari datasets (generated once, then read back)."""

from __future__ import annotations

import shutil
import sys
import warnings
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from calql.data.returns import trajectory_ends
from calql.data.sources import DatasetError, check_transitions, minari_root, read_minari


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
    """Store flat `data` (episodes ending at time-outs) as a Minari HDF5 dataset.

    When another process wrote the same id first, this one leaves its folder alone (Minari refuses
    an existing id); a half-written folder of this process is removed on failure.
    """
    import minari
    from minari.storage import get_dataset_path

    path = get_dataset_path(dataset_id)
    if path.exists():
        return  # another process cached it since this one looked
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
                jpeg_encoding=False,  # Minari JPEG-encodes image observations by default: lossy, so the
                # cache would not hold the frames the generator made (a first run and later ones would differ)
            )
    except BaseException as err:
        if not _refused_existing(err):
            shutil.rmtree(path, ignore_errors=True)
        raise


def _refused_existing(err: BaseException) -> bool:
    """Minari's refusal to create a dataset id whose folder another process made first: that folder
    is not this process's to remove."""
    return isinstance(err, FileExistsError) or (isinstance(err, ValueError) and "already exists" in str(err))


def load_or_generate(
    dataset_id: str,
    num_transitions: int | None,
    generate: Callable[[], dict[str, np.ndarray]],
    make_env: Callable[[], gym.Env],
    algorithm: str,
    description: str,
) -> dict[str, np.ndarray]:
    """The cached dataset `dataset_id`, or `generate()` written to the cache first; either passes
    `check_transitions` against `make_env()`'s spaces.

    A cache that is unreadable, fails the checks, or (when `num_transitions` is known) has the wrong
    size is a DatasetError naming its folder and the fix (delete it to regenerate).
    """
    path = minari_root() / dataset_id
    env = make_env()
    try:
        if path.exists():
            return _read_cache(dataset_id, num_transitions, env)
        print(f"generating {dataset_id} at {path} (first run only)", file=sys.stderr)
        raw = generate()
        data = check_transitions(raw, env, dataset_id)  # a generator's bug never reaches the cache
        write_minari(dataset_id, raw, env, algorithm, description)
        return data
    finally:
        env.close()


def _read_cache(dataset_id: str, num_transitions: int | None, env: gym.Env) -> dict[str, np.ndarray]:
    path = minari_root() / dataset_id
    fix = "delete that folder to regenerate it"
    try:
        data = check_transitions(read_minari(dataset_id), env, dataset_id)
    except DatasetError as err:
        raise DatasetError(f"corrupt dataset cache at {path} ({err}); {fix}") from err
    if num_transitions is not None and len(data["rewards"]) != num_transitions:
        raise DatasetError(
            f"corrupt dataset cache at {path} (it holds {len(data['rewards'])} transitions, "
            f"not {num_transitions}); {fix}"
        )
    return data
