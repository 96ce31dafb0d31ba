"""Offline dataset sources: local Minari datasets, D4RL-layout HDF5 files, AWAC-layout .npy files
(Adroit), OGBench's .npz files, built-in generated data.

`parse_source` tells the five apart; `read_minari` / `read_d4rl` / `calql.data.awac.read_awac` /
`read_ogbench` turn a source into flat
transition arrays (observations, actions, rewards, next_observations, terminals, timeouts, plus
any requested `infos/<key>` arrays); `check_transitions` rejects data that does not fit an
environment. Nothing here knows the tasks: `calql.envs.binding` reads a task's source through
these readers and binds it to the task.

Every reading or checking failure is a `DatasetError`: one line that names the file or dataset,
the field, and what to do. Nothing here downloads: a Minari id must already be on disk.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Literal

import gymnasium as gym
import numpy as np

from calql.data.observations import flatten_observation, is_image_space
from calql.errors import CalqlError

FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")
D4RL_REQUIRED = ("observations", "actions", "rewards", "terminals", "timeouts")
HDF5_SUFFIXES = (".hdf5", ".h5", ".hdf")
NPY_SUFFIX = ".npy"
"""AWAC's pickled trajectory lists; several are given as one --dataset, separated by commas."""
NPZ_SUFFIX = ".npz"
"""OGBench's dataset files (e.g. visual-cube-single-play-v0.npz)."""
OGBENCH_REQUIRED = ("observations", "actions", "terminals")
ACTION_TOLERANCE = 1e-4
"""Actions this far outside the bounds are float noise and get clipped; further out is an error."""


class DatasetError(CalqlError):
    """A dataset that cannot be used; the one-line message names the source, the field and the fix."""


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a dataset comes from: kind 'builtin' (generated), 'minari' (an id), 'd4rl' (a path),
    'awac' (one or more .npy paths, joined by commas) or 'ogbench' (a .npz path)."""

    kind: Literal["builtin", "minari", "d4rl", "awac", "ogbench"]
    ref: str = ""

    def __str__(self) -> str:
        return "built-in generated dataset" if self.kind == "builtin" else self.ref


def parse_source(spec: str) -> Source:
    """'' or 'builtin' -> built-in; *.npy files separated by commas -> AWAC layout; a *.npz name ->
    OGBench's layout; an existing file or a *.hdf5 / path-like name -> D4RL HDF5; anything else ->
    a Minari dataset id (e.g. D4RL/antmaze/umaze-v1)."""
    spec = spec.strip()
    if spec in ("", "builtin"):
        return Source("builtin")
    parts = [part.strip() for part in spec.split(",") if part.strip()]
    npy = [part.lower().endswith(NPY_SUFFIX) for part in parts]
    if any(npy):
        if not all(npy):
            other = parts[npy.index(False)]
            raise DatasetError(
                f"--dataset {spec}: {other!r} is not a .npy file; a comma-separated list holds only "
                "AWAC .npy files (e.g. data/pen2_sparse.npy,data/pen_bc_sparse4.npy)"
            )
        return Source("awac", ",".join(str(Path(part).expanduser()) for part in parts))
    path = Path(spec).expanduser()
    if path.is_dir():
        raise DatasetError(_folder_given_message(spec, path))
    if spec.lower().endswith(NPZ_SUFFIX):
        return Source("ogbench", str(path))
    path_like = spec.startswith(("/", "./", "../", "~")) or spec.lower().endswith(HDF5_SUFFIXES)
    if path_like or path.is_file():
        return Source("d4rl", str(path))
    return Source("minari", spec)


def _folder_given_message(spec: str, folder: Path) -> str:
    """What to pass instead of a folder: a file in it, or (a Minari dataset's folder) its id."""
    if (folder / "data").is_dir():
        return (
            f"--dataset {spec}: a folder (a Minari dataset's, it seems); pass its id instead, with "
            "MINARI_DATASETS_PATH set to the folder that holds the ids (e.g. --dataset D4RL/antmaze/umaze-v1)"
        )
    return (
        f"--dataset {spec}: a folder; pass a D4RL .hdf5 file in it, AWAC .npy files joined by commas, "
        f"or a Minari dataset id (looked up in {minari_root()})"
    )


# ----- Minari -----


def minari_root() -> Path:
    """The local Minari datasets folder (MINARI_DATASETS_PATH, or ~/.minari/datasets)."""
    return Path(os.environ.get("MINARI_DATASETS_PATH") or Path.home() / ".minari" / "datasets")


def minari_missing_message(dataset_id: str) -> str:
    return (
        f"Minari dataset {dataset_id!r} is not in {minari_root()} (nothing is downloaded at run time); "
        f"on a machine with internet run `minari download {dataset_id}`, then copy its folder "
        f"(~/.minari/datasets/{dataset_id}) to {minari_root() / dataset_id} or point MINARI_DATASETS_PATH at its root"
    )


def open_minari(dataset_id: str):
    """The local MinariDataset `dataset_id`; DatasetError if absent or unreadable."""
    import minari

    if not (minari_root() / dataset_id / "data").is_dir():
        raise DatasetError(minari_missing_message(dataset_id))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return minari.load_dataset(dataset_id)
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as err:
        raise DatasetError(
            f"Minari dataset {dataset_id!r} in {minari_root() / dataset_id} is unreadable ({type(err).__name__}: "
            f"{_first_line(err)}); delete that folder and copy or download it again"
        ) from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def _episode_infos(infos, keys: tuple[str, ...], steps: int) -> dict[str, np.ndarray]:
    """infos[key] per step (Minari stores N+1 entries, the first from reset: dropped)."""
    out = {}
    for key in keys:
        if isinstance(infos, dict) and key in infos:
            values = np.asarray(infos[key])
            out[key] = values[1:] if len(values) == steps + 1 else values[:steps]
    return out


def read_minari(
    dataset_id: str, observation_space: gym.Space | None = None, info_keys: tuple[str, ...] = ()
) -> dict[str, np.ndarray]:
    """Flat transitions of a local Minari dataset.

    Each episode holds observations[N+1] and actions/rewards/terminations/truncations[N]:
    observations are obs[:-1] and next_observations obs[1:] *per episode*, so no episode is
    shifted against its actions. Dict observations are flattened with `flatten_observation`
    and `observation_space` (the environment's), the same rule as the env wrapper.
    """
    dataset = open_minari(dataset_id)
    space = observation_space if observation_space is not None else dataset.observation_space
    columns: dict[str, list[np.ndarray]] = {field: [] for field in FIELDS}
    info_columns: dict[str, list[np.ndarray]] = {key: [] for key in info_keys}
    try:
        for episode in dataset.iterate_episodes():
            steps = len(episode.actions)
            obs = _flat_episode_observations(space, episode.observations, dataset_id)
            if len(obs) != steps + 1:
                raise DatasetError(
                    f"Minari dataset {dataset_id!r}, episode {episode.id}: field observations has {len(obs)} rows "
                    f"for {steps} actions (expected {steps + 1}); the dataset is damaged: copy it again"
                )
            columns["observations"].append(obs[:-1])
            columns["next_observations"].append(obs[1:])
            columns["actions"].append(np.asarray(episode.actions, np.float32).reshape(steps, -1))
            columns["rewards"].append(np.asarray(episode.rewards, np.float32))
            columns["terminals"].append(np.asarray(episode.terminations, bool))
            columns["timeouts"].append(np.asarray(episode.truncations, bool))
            for key, values in _episode_infos(episode.infos, info_keys, steps).items():
                info_columns[key].append(values)
    except (OSError, KeyError, TypeError) as err:
        raise DatasetError(
            f"Minari dataset {dataset_id!r} in {minari_root() / dataset_id} is unreadable ({type(err).__name__}: "
            f"{_first_line(err)}); delete that folder and copy or download it again"
        ) from err
    if not columns["rewards"]:
        raise DatasetError(f"Minari dataset {dataset_id!r} has no episodes; use a dataset with data in it")
    data = {field: np.concatenate(parts) for field, parts in columns.items()}
    for key, parts in info_columns.items():
        if len(parts) == len(columns["rewards"]):
            data[f"infos/{key}"] = np.concatenate(parts)
    # A Minari episode always ends: at a termination or (otherwise) a truncation.
    ends = np.cumsum([len(r) for r in columns["rewards"]]) - 1
    data["timeouts"][ends] |= ~data["terminals"][ends]
    return data


def _flat_episode_observations(space: gym.Space, observations, dataset_id: str) -> np.ndarray:
    try:
        return flatten_observation(space, observations)
    except KeyError as err:
        raise DatasetError(
            f"Minari dataset {dataset_id!r}: field observations has no key {err.args[0]!r} that the environment's "
            f"observations have; use a dataset recorded on the task's environment"
        ) from err
    except (ValueError, TypeError) as err:
        raise DatasetError(
            f"Minari dataset {dataset_id!r}: field observations does not fit the environment's observation space "
            f"({_first_line(err)}); use a dataset recorded on the task's environment"
        ) from err


# ----- D4RL HDF5 -----


def read_d4rl(path: str | Path, info_keys: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Flat transitions of a D4RL-layout HDF5 file (observations, actions, rewards, terminals,
    timeouts; optional next_observations and infos/<key>).

    Without next_observations, next_observations[t] = observations[t+1]; a row whose successor
    is another episode (a time-out, or the last row) and that is not terminal has no next
    observation and is dropped (as d4rl.qlearning_dataset does); the row before it becomes the
    episode's time-out.
    """
    import h5py

    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"{path}: no such file; give the path of a D4RL-layout .hdf5 file or a local Minari id")
    try:
        with h5py.File(path, "r") as file:
            missing = [key for key in D4RL_REQUIRED if key not in file]
            if missing:
                raise DatasetError(
                    f"{path}: field {missing[0]!r} is missing (D4RL layout needs {', '.join(D4RL_REQUIRED)}); "
                    "write the file with those datasets at its top level"
                )
            raw = {key: file[key][()] for key in (*D4RL_REQUIRED, "next_observations") if key in file}
            for key in info_keys:
                if f"infos/{key}" in file:
                    raw[f"infos/{key}"] = file[f"infos/{key}"][()]
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as err:
        raise DatasetError(
            f"{path}: not a readable HDF5 file ({_first_line(err)}); the file is truncated, corrupt or not HDF5: "
            "copy or download it again"
        ) from err
    return _d4rl_transitions(raw, path)


def _common_rows(raw: dict[str, np.ndarray], reference: str, unit: str, path: Path) -> int:
    """The number of rows every array of a file has (that of `reference`); DatasetError naming the
    first array with another number, or the file if it has none."""
    rows = _rows(raw[reference])
    for key, values in raw.items():
        if _rows(values) != rows:
            raise DatasetError(
                f"{path}: field {key!r} has {_rows(values)} rows but {reference} has {rows}; "
                f"every array in the file must have one row per {unit}"
            )
    if rows == 0:
        raise DatasetError(f"{path}: the dataset is empty (0 {unit}s); use a file with data in it")
    return rows


def _rows(values: np.ndarray) -> int:
    return values.shape[0] if np.ndim(values) else 1


def _d4rl_transitions(raw: dict[str, np.ndarray], path: Path) -> dict[str, np.ndarray]:
    n = _common_rows(raw, "rewards", "transition", path)
    data = {
        "observations": raw["observations"].reshape(n, -1),
        "actions": raw["actions"].reshape(n, -1),
        "rewards": raw["rewards"].reshape(n).astype(np.float32),
        "terminals": raw["terminals"].reshape(n).astype(bool),
        "timeouts": raw["timeouts"].reshape(n).astype(bool),
        **{key: values for key, values in raw.items() if key.startswith("infos/")},
    }
    if "next_observations" in raw:
        data["next_observations"] = raw["next_observations"].reshape(n, -1)
        return data
    observations = data["observations"]
    data["next_observations"] = np.concatenate([observations[1:], observations[-1:]])
    episode_end = data["timeouts"].copy()
    episode_end[-1] = True
    keep = ~episode_end | data["terminals"]
    # The row before a dropped one ends its episode (it was followed by the dropped time-out).
    dropped = np.flatnonzero(~keep)
    before = dropped[dropped > 0] - 1
    data["timeouts"][before[keep[before]]] = True
    return {key: values[keep] for key, values in data.items()}


# ----- OGBench .npz -----


def read_ogbench(path: str | Path, info_keys: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Flat transitions of an OGBench dataset file (observations, actions, terminals; the per-state
    `info_keys`, e.g. qpos and button_states, returned as infos/<key>).

    OGBench stores each trajectory's states, its final one included, one per row, with terminals = 1
    at that final state (the end of the trajectory, not a success) and no rewards: a transition is
    a row that is not a trajectory's last, its next observation the following row. Rewards and
    terminals of a task come from relabelling (the task's `DataFormat.reward_labels`).
    Image observations stay as stored (uint8): the frames are indexed, never converted to floats.
    """
    path = Path(path).expanduser()
    raw = _read_npz(path, info_keys)
    rows = _common_rows(raw, "observations", "state", path)
    observations = raw["observations"]
    if observations.ndim == 4 and observations.dtype != np.uint8:
        raise DatasetError(
            f"{path}: field 'observations' holds {observations.dtype} images; OGBench's visual datasets "
            "store uint8 (0-255): use the original file or convert the frames to uint8"
        )
    ends = raw["terminals"].reshape(rows).astype(bool)
    has_next = ~ends
    has_next[-1] = False  # the file's last state has no next state, whether marked or not
    steps = np.flatnonzero(has_next)
    if len(steps) == 0:
        raise DatasetError(f"{path}: the dataset has no transitions (every row ends a trajectory); use another file")
    timeouts = ~has_next[steps + 1]  # the step into a trajectory's final state ends its episode
    data = {
        "observations": observations[steps],
        "next_observations": observations[steps + 1],
        "actions": raw["actions"][steps].reshape(len(steps), -1),
        "terminals": np.zeros(len(steps), bool),
        "timeouts": timeouts,
    }
    data.update({f"infos/{key}": raw[key][steps] for key in info_keys})
    return data


def _read_npz(path: Path, info_keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The required arrays and `info_keys` of an .npz file; DatasetError naming a missing one."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such file; give the path of an OGBench .npz dataset file")
    needed = OGBENCH_REQUIRED + tuple(info_keys)
    try:
        with np.load(path, allow_pickle=False) as file:
            missing = [key for key in needed if key not in file.files]
            if missing:
                raise DatasetError(
                    f"{path}: field {missing[0]!r} is missing (this task reads {', '.join(needed)} from "
                    "OGBench's files); use an OGBench dataset file of this task's domain"
                )
            return {key: file[key] for key in needed}
    except DatasetError:
        raise
    except (OSError, ValueError, EOFError) as err:
        raise DatasetError(
            f"{path}: not a readable .npz file ({_first_line(err)}); the file is truncated, corrupt or not "
            "an OGBench dataset: copy or download it again"
        ) from err


# ----- checks -----


def check_transitions(data: dict[str, np.ndarray], env: gym.Env, name: str) -> dict[str, np.ndarray]:
    """Reject data that does not fit `env` (shapes, bounds, NaN/inf, empty).

    Returns the six fields as float32 / bool (uint8 image observations as they are; actions clipped
    to the bounds when only float noise lies outside) and any other keys (infos/<key>) unchanged.
    """
    missing = [field for field in FIELDS if field not in data]
    if missing:
        raise DatasetError(f"{name}: field {missing[0]!r} is missing; the dataset needs {', '.join(FIELDS)}")
    n = len(data["rewards"])
    if n == 0:
        raise DatasetError(f"{name}: the dataset is empty (0 transitions); use a dataset with data in it")
    obs_shape, act_shape = _stored_observation_shape(env), env.action_space.shape or ()
    for field, shape in (("observations", obs_shape), ("next_observations", obs_shape), ("actions", act_shape)):
        if tuple(data[field].shape[1:]) != tuple(shape) or len(data[field]) != n:
            raise DatasetError(
                f"{name}: field {field!r} has shape {tuple(data[field].shape)} but the environment "
                f"{env_name(env)} needs ({n}, {', '.join(map(str, shape))}); use a dataset recorded on this "
                "task's environment (check --task)"
            )
    out = {}
    images = is_image_space(env.observation_space)
    if images:
        out.update(_checked_images(data, name))
    for field in ("actions", "rewards") if images else ("observations", "actions", "rewards", "next_observations"):
        values = np.asarray(data[field], np.float32)
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise DatasetError(
                f"{name}: field {field!r} has {int(bad.sum())} NaN or infinite values "
                f"(first at row {row}); remove or repair those transitions"
            )
        out[field] = values
    if not isinstance(env.action_space, gym.spaces.Box):
        raise DatasetError(f"{name}: the environment {env_name(env)} has no continuous (Box) action space")
    out["actions"] = _checked_actions(out["actions"], env.action_space, name)
    out["terminals"] = np.asarray(data["terminals"], bool).reshape(n)
    out["timeouts"] = np.asarray(data["timeouts"], bool).reshape(n)
    return {**data, **out}  # extra keys (infos/<key>) pass through for the task's relabelling


def _stored_observation_shape(env: gym.Env) -> tuple[int, ...]:
    """The shape of one stored observation: one frame where the environment stacks several
    (calql.envs.common.StackFrames; datasets hold single frames), else its observations'."""
    try:
        return tuple(env.get_wrapper_attr("frame_shape"))
    except AttributeError:
        return tuple(env.observation_space.shape or ())


def _checked_images(data: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    """Image observations as they are: uint8 only (a float copy of every frame is never made)."""
    for field in ("observations", "next_observations"):
        if np.asarray(data[field][:0]).dtype != np.uint8:
            raise DatasetError(
                f"{name}: field {field!r} holds {np.asarray(data[field][:0]).dtype} images but the environment's "
                "are uint8 (0-255); store the frames as uint8"
            )
    return {field: np.asarray(data[field]) for field in ("observations", "next_observations")}


def _checked_actions(actions: np.ndarray, space: gym.spaces.Box, name: str) -> np.ndarray:
    low, high = space.low.astype(np.float32), space.high.astype(np.float32)
    outside = (actions < low - ACTION_TOLERANCE) | (actions > high + ACTION_TOLERANCE)
    if outside.any():
        row, col = map(int, np.argwhere(outside)[0])
        raise DatasetError(
            f"{name}: field 'actions' has {int(outside.any(axis=1).sum())} rows outside the action bounds "
            f"[{low.min():g}, {high.max():g}] (first: row {row}, dimension {col}, value {actions[row, col]:g}); "
            "rescale the actions to the environment's bounds, or use the matching task"
        )
    return np.clip(actions, low, high)


def env_name(env: gym.Env) -> str:
    """The registered id of `env` (e.g. AntMaze_UMaze-v4), or its class name if it has none."""
    return env.spec.id if env.spec is not None else type(env.unwrapped).__name__
