"""Random transition batches for unit tests of the learners' update steps."""

import numpy as np

from calql.data.transitions import Transitions


def random_batch(seed: int, obs: int, act: int, batch_size: int = 6, leading: tuple[int, ...] = ()) -> Transitions:
    """A batch of `batch_size` made-up transitions (every other one terminal), with optional
    leading axes (e.g. (U,) for a scanned call); reference values 0."""
    rng = np.random.default_rng(seed)
    shape = leading + (batch_size,)
    return Transitions(
        observations=rng.normal(size=shape + (obs,)).astype(np.float32),
        actions=rng.uniform(-0.9, 0.9, shape + (act,)).astype(np.float32),
        rewards=rng.normal(size=shape).astype(np.float32),
        next_observations=rng.normal(size=shape + (obs,)).astype(np.float32),
        dones=(np.arange(batch_size) % 2 * np.ones(shape)).astype(np.float32),
        reference=np.zeros(shape, np.float32),
    )
