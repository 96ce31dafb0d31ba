"""Host-side data: the offline dataset, the online buffer (whole episodes only) and the
mixed sampler that stacks U batches for one scanned update call."""

import numpy as np

from calql.data.returns import ReturnRule, mc_returns, trajectory_ends
from calql.data.transitions import Transitions


class OnlineBuffer:
    """Preallocated online replay buffer, filled one finished episode at a time so every
    stored transition has its complete Monte-Carlo return (never a partial episode's)."""

    def __init__(self, capacity: int, obs_dim: int, action_dim: int):
        self.capacity = capacity
        self.size = 0
        self.data = Transitions(
            observations=np.zeros((capacity, obs_dim), np.float32),
            actions=np.zeros((capacity, action_dim), np.float32),
            rewards=np.zeros(capacity, np.float32),
            next_observations=np.zeros((capacity, obs_dim), np.float32),
            dones=np.zeros(capacity, np.float32),
            reference=np.zeros(capacity, np.float32),
        )

    def add(self, episode: Transitions) -> None:
        """Append an episode (returns already computed); raises when the buffer is full."""
        n = episode.size
        if self.size + n > self.capacity:
            raise ValueError(f"online buffer full: {self.size} + {n} transitions > capacity {self.capacity}")
        for stored, new in zip(self.data, episode):
            stored[self.size : self.size + n] = new
        self.size += n


def episode_transitions(
    observations: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    next_observations: np.ndarray,
    terminated: bool,
    rule: ReturnRule,
) -> Transitions:
    """A finished online episode (transformed rewards) as transitions with its MC returns.

    Only the last step can be terminal; a truncated episode ends in a time-out, which is
    not done and is not bootstrapped in G (docs/algorithm.md section 4).
    """
    n = len(rewards)
    dones = np.zeros(n, np.float32)
    dones[-1] = float(terminated)
    ends = np.zeros(n, bool)
    ends[-1] = True
    returns = mc_returns(np.asarray(rewards, np.float32), ends, dones.astype(bool), rule)
    return Transitions(
        np.asarray(observations, np.float32),
        np.asarray(actions, np.float32),
        np.asarray(rewards, np.float32),
        np.asarray(next_observations, np.float32),
        dones,
        returns,
    )


def offline_transitions(
    observations: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    next_observations: np.ndarray,
    terminals: np.ndarray,
    timeouts: np.ndarray,
    rule: ReturnRule,
    ends: np.ndarray | None = None,
) -> Transitions:
    """A flat offline dataset (transformed rewards) as float32 transitions with MC returns.

    `ends`: the trajectory ends (data.returns.trajectory_ends) if the caller has them already.
    Actions are clipped to +-0.99999 so their tanh-Gaussian log-probs stay finite."""
    if ends is None:
        ends = trajectory_ends(terminals, timeouts, observations, next_observations)
    returns = mc_returns(rewards, ends, terminals, rule)
    return Transitions(
        observations=np.asarray(observations, np.float32),
        actions=np.clip(actions, -0.99999, 0.99999).astype(np.float32),
        rewards=np.asarray(rewards, np.float32),
        next_observations=np.asarray(next_observations, np.float32),
        dones=np.asarray(terminals, np.float32),
        reference=returns,
    )


def gather(data: Transitions, indices: np.ndarray) -> Transitions:
    """Rows `indices` (any shape) of every field."""
    return Transitions(*(field[indices] for field in data))


def sample_stack(
    rng: np.random.Generator,
    offline: Transitions,
    online: OnlineBuffer | None,
    num_batches: int,
    batch_size: int,
    mixing_ratio: float,
) -> Transitions:
    """(num_batches, batch_size, ...) batches: round(mixing_ratio * batch_size) rows from
    the offline data and the rest from the online buffer (all offline when there is none)."""
    no_online = online is None or online.size == 0
    num_offline = batch_size if no_online else offline_rows(batch_size, mixing_ratio)
    parts = [gather(offline, rng.integers(0, offline.size, (num_batches, num_offline)))]
    if online is not None and num_offline < batch_size:
        online_indices = rng.integers(0, online.size, (num_batches, batch_size - num_offline))
        parts.append(gather(online.data, online_indices))
    if len(parts) == 1:
        return parts[0]
    return Transitions(*(np.concatenate(fields, axis=1) for fields in zip(*parts)))


def offline_rows(batch_size: int, mixing_ratio: float) -> int:
    """Offline rows per mixed batch; the configuration guarantees it is a whole number."""
    return int(round(batch_size * mixing_ratio))
