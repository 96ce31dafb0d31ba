"""The transition record shared by datasets, replay buffers and the learner."""

from typing import NamedTuple

import numpy as np


class Transitions(NamedTuple):
    """A batch (or a whole dataset) of transitions; numpy on the host, jax arrays on device.

    Leading dims are free: (N,) for a dataset, (B,) for a batch, (U, B) for a stack of
    batches scanned over the update-to-data axis. Rewards are already transformed.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    dones: np.ndarray
    reference: np.ndarray
    """The reference value G of the Cal-QL bound: the Monte-Carlo return-to-go of the transformed
    rewards, or, for offline rows under --reference learned, the fitted behaviour value V(s)."""

    @property
    def size(self) -> int:
        """Number of transitions along the leading axis."""
        return self.rewards.shape[0]
