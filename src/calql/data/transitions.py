"""The transition record shared by datasets, replay buffers and the learner."""

from typing import Any, NamedTuple

Array = Any
"""A numpy array on the host or a jax array inside the compiled update: one record serves both."""


class Transitions(NamedTuple):
    """A batch (or a whole dataset) of transitions; numpy on the host, jax arrays on device.

    Leading dims are free: (N,) for a dataset, (B,) for a batch, (U, B) for a stack of
    batches scanned over the update-to-data axis. Rewards are already transformed.
    """

    observations: Array
    actions: Array
    rewards: Array
    next_observations: Array
    dones: Array
    reference: Array
    """The reference value G of the Cal-QL bound: the Monte-Carlo return-to-go of the transformed
    rewards, or, for offline rows under --reference learned, the fitted behaviour value V(s)."""

    @property
    def size(self) -> int:
        """Number of transitions along the leading axis."""
        return self.rewards.shape[0]
