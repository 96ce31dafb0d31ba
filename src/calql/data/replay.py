"""Host-side data: the offline dataset, the online buffer (whole episodes only) and the
mixed sampler that stacks U batches for one scanned update call."""

import numpy as np

from calql.data.frames import FrameStacks, continuation_breaks, dedup_frames, is_image
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

    def arrays(self) -> dict[str, np.ndarray]:
        """The filled rows of every field, by name (what a checkpoint saves)."""
        return {name: field[: self.size] for name, field in zip(Transitions._fields, self.data)}

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Refill an empty buffer from `arrays()` of a saved one."""
        self.add(Transitions(*(np.asarray(arrays[name]) for name in Transitions._fields)))


class FrameBuffer:
    """The online buffer of a pixel task: OnlineBuffer's interface, each uint8 frame stored once
    (an episode of L steps adds L + 1 frames; calql.data.frames) and observations read through
    indices. The frame array grows by doubling, so no worst-case frame count is reserved."""

    def __init__(self, capacity: int, frame_shape: tuple[int, ...], stack: int, action_dim: int):
        self.capacity, self.size, self.num_frames = capacity, 0, 0
        self.frames = np.zeros((min(capacity, 1024),) + tuple(frame_shape), np.uint8)
        self.observation_rows = np.zeros((capacity, stack), np.int64)
        self.next_rows = np.zeros((capacity, stack), np.int64)
        self.actions = np.zeros((capacity, action_dim), np.float32)
        self.rewards, self.dones, self.reference = (np.zeros(capacity, np.float32) for _ in range(3))

    @property
    def data(self) -> Transitions:
        return Transitions(
            FrameStacks(self.frames, self.observation_rows),
            self.actions,
            self.rewards,
            FrameStacks(self.frames, self.next_rows),
            self.dones,
            self.reference,
        )

    def add(self, episode: Transitions) -> None:
        """Append an episode whose observations are FrameStacks of its own frames (episode_transitions)."""
        n, observations = episode.size, episode.observations
        if self.size + n > self.capacity:
            raise ValueError(f"online buffer full: {self.size} + {n} transitions > capacity {self.capacity}")
        new_frames = observations.frames
        self._reserve(self.num_frames + len(new_frames))
        self.frames[self.num_frames : self.num_frames + len(new_frames)] = new_frames
        rows = slice(self.size, self.size + n)
        self.observation_rows[rows] = observations.rows + self.num_frames
        self.next_rows[rows] = episode.next_observations.rows + self.num_frames
        for stored, new in zip((self.actions, self.rewards, self.dones, self.reference), episode[1:3] + episode[4:]):
            stored[rows] = new
        self.size += n
        self.num_frames += len(new_frames)

    def _reserve(self, count: int) -> None:
        if count > len(self.frames):
            grown = np.zeros((max(count, 2 * len(self.frames)),) + self.frames.shape[1:], np.uint8)
            grown[: self.num_frames] = self.frames[: self.num_frames]
            self.frames = grown

    def arrays(self) -> dict[str, np.ndarray]:
        """Frames, frame indices and the other fields of the filled rows (what a checkpoint saves)."""
        return {
            "frames": self.frames[: self.num_frames],
            "observation_rows": self.observation_rows[: self.size],
            "next_rows": self.next_rows[: self.size],
            **{name: getattr(self, name)[: self.size] for name in ("actions", "rewards", "dones", "reference")},
        }

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Refill an empty buffer from `arrays()` of a saved one."""
        frames = np.asarray(arrays["frames"])
        self._reserve(len(frames))
        self.frames[: len(frames)] = frames
        self.num_frames = len(frames)
        self.size = len(arrays["actions"])
        for name in ("observation_rows", "next_rows", "actions", "rewards", "dones", "reference"):
            getattr(self, name)[: self.size] = np.asarray(arrays[name])


def new_buffer(capacity: int, offline: Transitions) -> OnlineBuffer | FrameBuffer:
    """An empty online buffer for data shaped like `offline` (a FrameBuffer for pixel data)."""
    observations, action_dim = offline.observations, offline.actions.shape[1]
    if isinstance(observations, FrameStacks):
        return FrameBuffer(capacity, observations.frames.shape[1:], observations.rows.shape[1], action_dim)
    return OnlineBuffer(capacity, observations.shape[1], action_dim)


def episode_transitions(
    observations: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    next_observations: np.ndarray,
    terminated: bool,
    rule: ReturnRule,
    stack: int = 1,
) -> Transitions:
    """A finished online episode (transformed rewards) as transitions with its MC returns; image
    observations (stacks of `stack` frames) as FrameStacks of the episode's frames.

    Only the last step can be terminal; a truncated episode ends in a time-out, which is
    not done and is not bootstrapped in G (docs/algorithm.md section 4).
    """
    n = len(rewards)
    dones = np.zeros(n, np.float32)
    dones[-1] = float(terminated)
    ends = np.zeros(n, bool)
    ends[-1] = True
    returns = mc_returns(np.asarray(rewards, np.float32), ends, dones.astype(bool), rule)
    stored: tuple[FrameStacks, FrameStacks] | tuple[np.ndarray, np.ndarray]
    if is_image(observations):
        stored = episode_frames(observations, next_observations, stack)
    else:
        stored = (np.asarray(observations, np.float32), np.asarray(next_observations, np.float32))
    return Transitions(
        stored[0],
        np.asarray(actions, np.float32),
        np.asarray(rewards, np.float32),
        stored[1],
        dones,
        returns,
    )


def episode_frames(
    observations: np.ndarray, next_observations: np.ndarray, stack: int
) -> tuple[FrameStacks, FrameStacks]:
    """An episode's (L, H, W, S*C) image observations as L + 1 frames and their indices; each
    observation's newest frame is its last C channels (a stack's older frames are earlier rows')."""
    channels = observations.shape[-1] // stack
    breaks = np.zeros(len(observations), bool)
    breaks[-1] = True
    views = dedup_frames(observations[..., -channels:], next_observations[..., -channels:], breaks, stack)
    if stack > 1 and not np.array_equal(views[0][np.arange(len(observations))], observations):
        raise ValueError("stacked observations do not follow the frame-stacking rule of calql.data.frames")
    return views


def offline_transitions(
    observations: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    next_observations: np.ndarray,
    terminals: np.ndarray,
    timeouts: np.ndarray,
    rule: ReturnRule,
    ends: np.ndarray | None = None,
    stack: int = 1,
) -> Transitions:
    """A flat offline dataset (transformed rewards) as float32 transitions with MC returns; uint8
    single-frame images (N, H, W, C) as FrameStacks of `stack` frames, each frame stored once.

    `ends`: the trajectory ends (data.returns.trajectory_ends) if the caller has them already.
    Actions are clipped to +-0.99999 so their tanh-Gaussian log-probs stay finite."""
    if ends is None:
        ends = trajectory_ends(terminals, timeouts, observations, next_observations)
    returns = mc_returns(rewards, ends, terminals, rule)
    stored: tuple[FrameStacks, FrameStacks] | tuple[np.ndarray, np.ndarray]
    if is_image(observations):
        # Stacks restart at every episode (a time-out), even where the next one's first frame happens to match.
        breaks = continuation_breaks(observations, next_observations) | np.asarray(timeouts, bool)
        stored = dedup_frames(observations, next_observations, breaks, stack)
    else:
        stored = (np.asarray(observations, np.float32), np.asarray(next_observations, np.float32))
    return Transitions(
        observations=stored[0],
        actions=np.clip(actions, -0.99999, 0.99999).astype(np.float32),
        rewards=np.asarray(rewards, np.float32),
        next_observations=stored[1],
        dones=np.asarray(terminals, np.float32),
        reference=returns,
    )


def gather(data: Transitions, indices: np.ndarray) -> Transitions:
    """Rows `indices` (any shape) of every field."""
    return Transitions(*(field[indices] for field in data))


def sample_stack(
    rng: np.random.Generator,
    offline: Transitions,
    online: OnlineBuffer | FrameBuffer | None,
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
