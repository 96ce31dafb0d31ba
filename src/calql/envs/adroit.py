"""Adroit binary (the Cal-QL authors' pen / door / relocate, and hammer): reward 0 on success,
-1 otherwise; online episodes end on success (docs/algorithm.md section 7).

The environments are Gymnasium-Robotics' AdroitHand*-v1, whose observations equal D4RL's, so
one environment serves Minari `D4RL/<hand>/*-v2` datasets (success in infos/success), D4RL
`<hand>-*.hdf5` files (infos/goal_achieved) and AWAC's sparse `.npy` files, the data of the
authors' Adroit runs (`<hand>2_sparse.npy` expert demonstrations plus `<hand>_bc_sparse4.npy`
behaviour-cloned rollouts, read by `calql.data.awac`; success where the binary reward is 0).
Dense D4RL-style rewards are not the task: D4RL's `*-cloned` dense data is a different problem
on which CQL and Cal-QL score about 0.

`filter_binary` is the authors' data filtering: drop trajectories that never succeed, cut each
kept trajectory after its last success, and make every success step terminal. It is the same
for every layout (for AWAC files it is the authors' truncation in their replay_buffer.py).
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np

from calql.data.returns import trajectory_ends
from calql.data.sources import DatasetError
from calql.envs.common import MapObservation, flat_width, make_quietly, seeded


@dataclasses.dataclass(frozen=True)
class HandSpec:
    gym_id: str
    max_episode_steps: int
    score_min: float
    score_max: float
    """D4RL reference returns of the dense reward (docs/algorithm.md section 7), for the normalized score."""


HANDS: dict[str, HandSpec] = {
    "pen": HandSpec("AdroitHandPen-v1", 100, 96.262799, 3076.8331017826877),
    "door": HandSpec("AdroitHandDoor-v1", 200, -56.512833, 2880.5693087298737),
    "relocate": HandSpec("AdroitHandRelocate-v1", 200, -6.425911, 4233.877797728884),
    "hammer": HandSpec("AdroitHandHammer-v1", 200, -274.856578, 12794.134825156867),
}

SUCCESS_INFO_KEYS = {"minari": "success", "d4rl": "goal_achieved", "awac": "success"}
"""Where each dataset layout keeps the per-step success flag (D4RL: goal_achieved; AWAC: derived
by the reader from reward 0)."""

LAYOUT_EXAMPLES = {
    "minari": "Minari D4RL/<hand>/*-v2",
    "d4rl": "D4RL adroit files",
    "awac": "AWAC's <hand>2_sparse.npy / <hand>_bc_sparse4.npy",
}


def hand_spec(hand: str) -> HandSpec:
    if hand not in HANDS:
        raise ValueError(f"unknown Adroit task {hand!r}; expected one of {sorted(HANDS)}")
    return HANDS[hand]


class BinaryReward(gym.Wrapper):
    """Reward 0 on success and -1 otherwise, termination at success; the environment's own
    (dense) reward is kept in info["dense_reward"] for D4RL's normalized score."""

    def step(self, action):
        obs, dense, terminated, truncated, info = self.env.step(action)
        success = bool(info.get("success", False))
        info["success"] = success
        info["dense_reward"] = float(dense)
        return obs, 0.0 if success else -1.0, terminated or success, truncated, info

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        info["success"] = bool(info.get("success", False))
        return obs, info


def make_env(hand: str, seed: int | None = None) -> gym.Env:
    """Binary-reward Adroit with float32 observations and D4RL's episode length for `hand`."""
    spec = hand_spec(hand)
    env: gym.Env = BinaryReward(make_quietly(spec.gym_id, max_episode_steps=spec.max_episode_steps))
    env = MapObservation(env, lambda obs: obs, flat_width(env.observation_space))
    return seeded(env, seed)


def binary_rewards(layout: str):
    """prepare(data, name) for `layout`: rewards from the per-step success flag (0 / -1)."""
    key = f"infos/{SUCCESS_INFO_KEYS[layout]}"

    def prepare(data: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
        if key not in data:
            example = LAYOUT_EXAMPLES[layout]
            raise DatasetError(
                f"{name}: field {key!r} is missing; Adroit binary rewards come from the per-step success flag, "
                f"so use a dataset that records it ({example})"
            )
        success = np.asarray(data[key]).reshape(len(data["rewards"])).astype(bool)
        return {**data, "rewards": np.where(success, 0.0, -1.0).astype(np.float32), "success": success}

    return prepare


def filter_binary(data: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    """The authors' filtering of binary Adroit data (see the module doc), vectorised."""
    n = len(data["rewards"])
    success = data["rewards"] == 0.0
    ends = trajectory_ends(data["terminals"], data["timeouts"], data["observations"], data["next_observations"])
    trajectory = np.concatenate([[0], np.cumsum(ends[:-1])])
    last_success = np.full(trajectory[-1] + 1, -1)
    np.maximum.at(last_success, trajectory[success], np.flatnonzero(success))
    keep = np.arange(n) <= last_success[trajectory]
    if not keep.any():
        raise DatasetError(
            f"{name}: no trajectory ever succeeds, so the Adroit filter keeps nothing; "
            "use data with successful demonstrations (or switch the filter off)"
        )
    kept_ends = keep & (np.arange(n) == last_success[trajectory])
    out = {key: values[keep] for key, values in data.items() if len(values) == n}
    out["terminals"] = success[keep]
    # The cut end of a trajectory is its last success (terminal); no time-out remains there.
    out["timeouts"] = data["timeouts"][keep] & ~kept_ends[keep]
    return out
