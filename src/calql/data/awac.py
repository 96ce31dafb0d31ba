"""AWAC's sparse Adroit data: NumPy object arrays of trajectory dicts (rlkit's path layout).

The Cal-QL authors' Adroit binary runs read two such files per hand: expert demonstrations
(`<hand>2_sparse.npy`, observations stored per step as dicts holding `state_observation`) and
behaviour-cloned rollouts (`<hand>_bc_sparse4.npy`, observations as plain arrays). Each file is
`np.save` of a list of dicts with `observations`, `actions`, `rewards`, `next_observations`
(plus `terminals`, `agent_infos`, `env_infos`, which are not used).

`read_awac` turns one or more files into calql's flat transition arrays, trajectory after
trajectory, file after file, following the authors' reading:

* rewards are the binary reward of `<hand>-binary-v0` already: 0 at success, -1 otherwise
  (anything else is an error). The expert files carry one reward more than observations; the
  surplus last entry is dropped. BC rewards of shape (N, 1) are flattened.
* the files' own `terminals` are ignored: a step is terminal where it succeeds (reward 0), and
  `infos/success` holds the same flag.
* the last step of every trajectory that does not end in a success is a time-out, so trajectory
  boundaries survive concatenation.

The authors' truncation (drop trajectories that never succeed, cut each after its last success)
is not done here: it is the Adroit task's data filter (`calql.envs.adroit.filter_binary`, on by
default), applied after reading, so `--no-filter` shows the files as they are.

The files are pickles: loading one runs whatever code it was written with. Load only files you
trust (AWAC's own, or your own). Every failure is a one-line `DatasetError` naming the file, the
trajectory and the field.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from calql.data.sources import DatasetError

REQUIRED = ("observations", "actions", "rewards", "next_observations")
STATE_KEY = "state_observation"
LAYOUT_HINT = "AWAC's layout, a list of trajectory dicts as in pen2_sparse.npy and pen_bc_sparse4.npy"


def split_paths(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """'a.npy,b.npy' (or a list of paths) -> [Path('a.npy'), Path('b.npy')], empty parts dropped."""
    if isinstance(paths, (str, Path)):
        paths = str(paths).split(",")
    return [Path(str(part).strip()).expanduser() for part in paths if str(part).strip()]


def read_awac(
    paths: str | Path | Sequence[str | Path],
    observation_dim: int | None = None,
    action_dim: int | None = None,
    env_name: str = "the environment",
) -> dict[str, np.ndarray]:
    """Flat transitions (observations, actions, rewards, next_observations, terminals, timeouts,
    infos/success) of AWAC-layout .npy files, in the order given (see the module doc).

    `observation_dim` / `action_dim` (the task environment's) are checked per trajectory, so a
    file of another hand is named; without them every trajectory must match the first.
    """
    files = split_paths(paths)
    if not files:
        raise DatasetError(
            "--dataset: no .npy file given; list AWAC files separated by commas, "
            "e.g. data/pen2_sparse.npy,data/pen_bc_sparse4.npy"
        )
    dims = {"observations": observation_dim, "actions": action_dim}
    columns: dict[str, list[np.ndarray]] = {
        key: [] for key in ("observations", "actions", "rewards", "next_observations")
    }
    for path in files:
        for index, trajectory in enumerate(_trajectories(path)):
            rows = _trajectory_rows(trajectory, f"{path}, trajectory {index}", dims, env_name)
            if rows is not None:
                for key, values in rows.items():
                    columns[key].append(values)
    if not columns["rewards"]:
        raise DatasetError(
            f"{', '.join(map(str, files))}: no transitions (every trajectory is empty); "
            "use AWAC files with data in them"
        )
    data = {key: np.concatenate(parts) for key, parts in columns.items()}
    success = data["rewards"] == 0.0
    last = np.cumsum([len(part) for part in columns["rewards"]]) - 1
    timeouts = np.zeros(len(success), bool)
    timeouts[last] = ~success[last]
    return {**data, "terminals": success.copy(), "timeouts": timeouts, "infos/success": success}


def _trajectories(path: Path) -> list:
    """The list of trajectories pickled in `path`."""
    if not path.is_file():
        raise DatasetError(
            f"{path}: no such file; give existing AWAC .npy files separated by commas, "
            "e.g. data/pen2_sparse.npy,data/pen_bc_sparse4.npy"
        )
    try:
        loaded = np.load(path, allow_pickle=True)
    except (
        OSError,
        ValueError,
        EOFError,
        pickle.UnpicklingError,
        ImportError,
        AttributeError,
        TypeError,
        IndexError,
        KeyError,
        MemoryError,
    ) as err:
        raise DatasetError(
            f"{path}: not a readable pickled NumPy object array ({type(err).__name__}: {_first_line(err)}); "
            "the file is truncated, corrupt or not a .npy: copy it again"
        ) from err
    if hasattr(loaded, "files"):  # an .npz archive
        names = ", ".join(loaded.files[:5])
        loaded.close()
        raise DatasetError(
            f"{path}: an .npz archive (arrays {names}), not a pickled object array of trajectory "
            f"dicts; use {LAYOUT_HINT}"
        )
    if isinstance(loaded, np.ndarray):
        if loaded.dtype != object:
            raise DatasetError(
                f"{path}: holds a {loaded.dtype} array of shape {loaded.shape}, not a pickled object "
                f"array of trajectory dicts; use {LAYOUT_HINT}"
            )
        loaded = loaded.item() if loaded.ndim == 0 else list(loaded.reshape(-1))
    if isinstance(loaded, dict) and "observations" in loaded:
        loaded = [loaded]  # a single trajectory
    if not isinstance(loaded, (list, tuple)):
        raise DatasetError(
            f"{path}: holds a {type(loaded).__name__}, not a list of trajectory dicts; use {LAYOUT_HINT}"
        )
    if not loaded:
        raise DatasetError(f"{path}: holds no trajectories; use AWAC files with data in them")
    return list(loaded)


def _trajectory_rows(
    trajectory, where: str, dims: dict[str, int | None], env_name: str
) -> dict[str, np.ndarray] | None:
    """One trajectory's float32 arrays, checked; None if it is empty."""
    if not isinstance(trajectory, dict):
        raise DatasetError(f"{where}: is a {type(trajectory).__name__}, not a dict; use {LAYOUT_HINT}")
    missing = [key for key in REQUIRED if key not in trajectory]
    if missing:
        present = ", ".join(map(str, trajectory)) or "none"
        raise DatasetError(
            f"{where}: key {missing[0]!r} is missing (keys: {present}); every trajectory needs "
            f"{', '.join(REQUIRED)}: repair or remove it"
        )
    observations = _matrix(_states(trajectory["observations"], where, "observations"), where, "observations")
    steps = len(observations)
    if steps == 0:
        return None
    out = {
        "observations": observations,
        "next_observations": _matrix(
            _states(trajectory["next_observations"], where, "next_observations"), where, "next_observations"
        ),
        "actions": _matrix(trajectory["actions"], where, "actions"),
    }
    for field in ("next_observations", "actions"):
        if len(out[field]) != steps:
            raise DatasetError(
                f"{where}: field {field!r} has {len(out[field])} rows for {steps} observations; "
                "the trajectory is misaligned: repair or remove it"
            )
    rewards = _matrix(trajectory["rewards"], where, "rewards")
    if rewards.shape[1] != 1 or len(rewards) not in (steps, steps + 1):
        raise DatasetError(
            f"{where}: field 'rewards' has shape {rewards.shape} for {steps} observations "
            f"(expected {steps} or {steps + 1} single values); repair or remove the trajectory"
        )
    out["rewards"] = rewards[:steps, 0]  # expert files: one surplus last reward, dropped as the authors do
    _check_widths(out, where, dims, env_name)
    for field, values in out.items():
        bad = ~np.isfinite(values)
        if bad.any():
            step = int(np.argwhere(bad)[0][0])
            raise DatasetError(
                f"{where}: field {field!r} has {int(bad.sum())} NaN or infinite values "
                f"(first at step {step}); repair or remove the trajectory"
            )
    not_binary = ~np.isin(out["rewards"], (-1.0, 0.0))
    if not_binary.any():
        step = int(np.flatnonzero(not_binary)[0])
        raise DatasetError(
            f"{where}: field 'rewards' holds {out['rewards'][step]:g} at step {step}; AWAC's sparse Adroit files "
            "reward 0 at success and -1 otherwise (<hand>-binary-v0): use those files or relabel rewards to 0 / -1"
        )
    return out


def _states(value, where: str, field: str):
    """Per-step observations: dicts holding `state_observation` (expert demos) become their arrays."""
    if isinstance(value, dict):
        if STATE_KEY not in value:
            raise DatasetError(
                f"{where}: field {field!r} is a dict without {STATE_KEY!r} (keys: "
                f"{', '.join(map(str, value))}); store the flat state under {STATE_KEY!r}"
            )
        return value[STATE_KEY]
    is_sequence = isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.dtype == object)
    if not is_sequence or len(value) == 0 or not isinstance(value[0], dict):
        return value
    states = []
    for step, entry in enumerate(value):
        if not isinstance(entry, dict) or STATE_KEY not in entry:
            keys = ", ".join(map(str, entry)) if isinstance(entry, dict) else type(entry).__name__
            raise DatasetError(
                f"{where}: field {field!r} at step {step} has no {STATE_KEY!r} ({keys}); "
                f"per-step observation dicts must hold the flat state under {STATE_KEY!r}"
            )
        states.append(entry[STATE_KEY])
    return states


def _matrix(value, where: str, field: str) -> np.ndarray:
    """`value` as a float32 (steps, width) array; DatasetError if it is not numeric or ragged."""
    try:
        array = np.asarray(value, dtype=np.float32)
    except (ValueError, TypeError) as err:
        raise DatasetError(
            f"{where}: field {field!r} is not a numeric array of equal-length rows "
            f"({_first_line(err)}); repair or remove the trajectory"
        ) from err
    if array.ndim == 0:
        raise DatasetError(
            f"{where}: field {field!r} is a single number, not one row per step; repair or remove the trajectory"
        )
    if len(array) == 0:
        return np.zeros((0, 0), np.float32)
    if field == "rewards" or array.ndim > 1:
        return array.reshape(len(array), -1)
    raise DatasetError(
        f"{where}: field {field!r} has shape {array.shape}, not one row of values per step; "
        "repair or remove the trajectory"
    )


def _check_widths(rows: dict[str, np.ndarray], where: str, dims: dict[str, int | None], env_name: str) -> None:
    """Observation and action widths against the environment's (or, without it, the first trajectory's)."""
    for field, key in (("observations", "observations"), ("next_observations", "observations"), ("actions", "actions")):
        width, expected = rows[field].shape[1], dims[key]
        if expected is None:
            dims[key] = expected = width
            source = "the first trajectory's"
        else:
            source = f"{env_name}'s"
        if width != expected:
            hint = (
                " (AWAC's files: pen 45, door 39, relocate 39; check --task)"
                if key == "observations"
                else " (pen 24, door 28, relocate 30; check --task)"
            )
            raise DatasetError(
                f"{where}: field {field!r} has {width} values per step but {source} {key} have "
                f"{expected}; use the files of this task's hand{hint}"
            )


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__
