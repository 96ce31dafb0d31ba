"""The transition record shared by datasets, replay buffers and the learner."""

from typing import NamedTuple

import numpy as np


class Transitions(NamedTuple):
    """A batch (or a whole dataset) of transitions; numpy on the host, jax arrays on device.

    Leading dims are free: (N,) for a dataset, (B,) for a batch, (U, B) for a stack of
    batches scanned over the update-to-data axis. Rewards are already transformed and
    mc_returns are the Monte-Carlo returns-to-go G of the transformed rewards.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    dones: np.ndarray
    mc_returns: np.ndarray

    @property
    def size(self) -> int:
        """Number of transitions along the leading axis."""
        return self.rewards.shape[0]
