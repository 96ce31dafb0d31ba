"""Image observations stored once: uint8 frames, and per transition the indices of its frames.

A pixel dataset of N transitions in E trajectory segments has N + E distinct frames (each
segment's observations plus its last next observation), so `observations` and
`next_observations` are two `FrameStacks` views of one frame array: next_observations[t] is
frame index + 1 within a segment (docs/algorithm.md section 10). With a stack of S frames, row t
reads the frames t-S+1 .. t of its segment, the segment's first frame repeated before its start
(the rule of `calql.envs.common.StackFrames`), and returns them along the channel axis.
"""

from __future__ import annotations

import numpy as np


def is_image(observations) -> bool:
    """(N, H, W, C) uint8 observations (or a FrameStacks view of them): a pixel dataset."""
    return isinstance(observations, FrameStacks) or (
        getattr(observations, "ndim", 0) == 4 and getattr(observations, "dtype", None) == np.uint8
    )


class FrameStacks:
    """(N, H, W, S*C) uint8 observations read through indices: `frames` (M, H, W, C) and `rows`
    (N, S), the frames of each observation's stack, oldest first. Indexing by any integer array
    returns a plain numpy array of those observations (a batch), never the whole dataset."""

    def __init__(self, frames: np.ndarray, rows: np.ndarray):
        self.frames, self.rows = frames, rows

    @property
    def shape(self) -> tuple[int, ...]:
        height, width, channels = self.frames.shape[1:]
        return (len(self.rows), height, width, channels * self.rows.shape[1])

    @property
    def ndim(self) -> int:
        return 4

    @property
    def dtype(self) -> np.dtype:
        return self.frames.dtype

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, indices) -> np.ndarray:
        stacks = self.frames[self.rows[indices]]  # (..., S, H, W, C)
        stacks = np.moveaxis(stacks, -4, -2)  # (..., H, W, S, C)
        return stacks.reshape(stacks.shape[:-2] + (-1,))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        array = self[np.arange(len(self))]
        return array if dtype is None else array.astype(dtype)


def stack_rows(frame_index: np.ndarray, segment_start: np.ndarray, stack: int) -> np.ndarray:
    """(N, stack) frame indices: frame_index - stack + 1 .. frame_index, none before its segment's start."""
    offsets = np.arange(1 - stack, 1)
    return np.maximum(frame_index[:, None] + offsets, segment_start[:, None]).astype(np.int64)


def dedup_frames(
    observations: np.ndarray, next_observations: np.ndarray, breaks: np.ndarray, stack: int = 1
) -> tuple[FrameStacks, FrameStacks]:
    """Single-frame (N, H, W, C) observations and next observations as two FrameStacks views of
    one frame array. breaks (N,) bool: True where next_observations[t] is not observations[t + 1]
    (a segment ends: a discontinuity, or the last row); only there is a next frame stored.
    """
    breaks = np.asarray(breaks, bool)
    before = np.concatenate([[0], np.cumsum(breaks)[:-1]])  # breaks strictly before row t
    frame_index = np.arange(len(breaks)) + before
    frames = np.empty((len(breaks) + int(breaks.sum()),) + observations.shape[1:], np.uint8)
    frames[frame_index] = observations
    frames[frame_index[breaks] + 1] = next_observations[breaks]
    starts = np.concatenate([[True], breaks[:-1]])
    segment_start = np.maximum.accumulate(np.where(starts, frame_index, 0))
    observation_view = FrameStacks(frames, stack_rows(frame_index, segment_start, stack))
    next_view = FrameStacks(frames, stack_rows(frame_index + 1, segment_start, stack))
    return observation_view, next_view


def continuation_breaks(observations: np.ndarray, next_observations: np.ndarray) -> np.ndarray:
    """(N,) bool: True where next_observations[t] differs from observations[t + 1], and at the last row."""
    breaks = np.ones(len(observations), bool)
    if len(observations) > 1:
        breaks[:-1] = np.any(next_observations[:-1] != observations[1:], axis=(1, 2, 3))
    return breaks


def agent_input(observations) -> int | tuple[int, ...]:
    """What an agent is built for (calql.agent.state.new_agent): a vector's width, or an image's (H, W, C)."""
    return tuple(observations.shape[1:]) if is_image(observations) else int(observations.shape[1])
