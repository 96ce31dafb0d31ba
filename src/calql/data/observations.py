"""The one rule that turns a (possibly nested) Dict observation into a flat float32 vector
(and leaves uint8 image observations as they are).

The dataset readers call `flatten_observation` on whole arrays (leading batch axis) and the
environments' `calql.envs.common.FlatObservation` calls it on one observation, so the two can
never disagree. The order is gymnasium's (`gym.spaces.flatten`): the Dict space's key order,
depth first.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces


def flatten_observation(space: gym.Space, observation) -> np.ndarray:
    """float32 (..., flatdim) from a Box / (nested) Dict observation with any leading batch axes;
    uint8 (..., H, W, C) unchanged from an image Box (`is_image_space`)."""
    if isinstance(space, spaces.Dict):
        parts = [flatten_observation(sub, observation[key]) for key, sub in space.spaces.items()]
        return np.concatenate(parts, axis=-1)
    if is_image_space(space):  # images stay uint8 (H, W, C): calql.data.frames stores them once
        array = np.asarray(observation, dtype=np.uint8)
        if array.shape[-3:] != space.shape:
            raise ValueError(f"observation of shape {array.shape} does not fit the space's shape {space.shape}")
        return array
    if isinstance(space, spaces.Box):
        array = np.asarray(observation, dtype=np.float32)
        batch_axes = array.ndim - len(space.shape)
        if batch_axes < 0 or array.shape[batch_axes:] != space.shape:
            raise ValueError(f"observation of shape {array.shape} does not fit the space's shape {space.shape}")
        return array.reshape(array.shape[:batch_axes] + (-1,))
    raise TypeError(f"cannot flatten observations of a {type(space).__name__} space (Box and Dict only)")


def is_image_space(space: gym.Space) -> bool:
    """A Box of uint8 (H, W, C) images: observations calql keeps as images, never as float32 vectors."""
    return isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3


def flat_keys(space: gym.Space, prefix: str = "") -> list[tuple[str, int]]:
    """(key path, width) of each block of the flat vector, in order (e.g. 'achieved_goal/kettle', 7)."""
    if isinstance(space, spaces.Dict):
        return [item for key, sub in space.spaces.items() for item in flat_keys(sub, f"{prefix}{key}/")]
    return [(prefix.rstrip("/") or "observation", int(np.prod(space.shape or ())))]
