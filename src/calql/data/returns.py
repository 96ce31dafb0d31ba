"""Monte-Carlo return-to-go G, the Cal-QL reference value (docs/algorithm.md section 4).

Vectorised: the backward recursion G_t = r_t + gamma (1 - end_t) G_{t+1} is a chain of affine
maps, composed by recursive doubling in log2(N) numpy passes (1M transitions in well under
a second) instead of a Python loop per step.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class ReturnRule:
    """How a task's Monte-Carlo returns are computed (docs/algorithm.md section 4)."""

    discount: float
    sparse_failure_reward: float | None = None
    """Transformed failure reward of a sparse-reward task: a trajectory whose every reward equals
    it gets G = r_fail / (1 - gamma) (the all-failure rule); None: no such rule."""
    infinite_tail: bool = False
    """The value after a trajectory's last step is r_last / (1 - gamma) unless that step is
    terminal (the authors' FrankaKitchen rule); False: no bootstrap after the last step."""


def transform_rewards(rewards: np.ndarray, scale: float, bias: float) -> np.ndarray:
    """r * scale + bias: applied before any return is computed."""
    return rewards * scale + bias


def trajectory_ends(
    terminals: np.ndarray,
    timeouts: np.ndarray,
    observations: np.ndarray | None = None,
    next_observations: np.ndarray | None = None,
) -> np.ndarray:
    """(N,) bool: True where a trajectory ends -- at a terminal, a time-out, the last
    transition, and wherever next_obs[t] != obs[t+1] (a discontinuity starts a new episode)."""
    ends = np.asarray(terminals, bool) | np.asarray(timeouts, bool)
    if observations is not None and next_observations is not None and len(ends) > 1:
        ends[:-1] |= np.any(next_observations[:-1] != observations[1:], axis=tuple(range(1, observations.ndim)))
    if len(ends):
        ends[-1] = True
    return ends


def discounted_returns(rewards: np.ndarray, ends: np.ndarray, discount: float) -> np.ndarray:
    """G_t = r_t + discount * G_{t+1} inside a trajectory, G = r at its last step (no bootstrap)."""
    carry = np.where(ends, 0.0, discount).astype(np.float64)
    total = np.asarray(rewards, np.float64).copy()
    shift = 1
    while shift < len(total):
        # After this pass, (carry_t, total_t) maps G_{t+2*shift} to G_t.
        total[:-shift] += carry[:-shift] * total[shift:]
        carry[:-shift] *= carry[shift:]
        shift *= 2
    return total


def all_failure_trajectories(rewards: np.ndarray, ends: np.ndarray, failure_reward: float) -> np.ndarray:
    """(N,) bool: True on every step of a trajectory whose rewards all equal failure_reward."""
    starts = trajectory_starts(ends)
    successes_per_trajectory = np.add.reduceat((rewards != failure_reward).astype(np.int64), starts)
    lengths = np.diff(np.append(starts, len(rewards)))
    return np.repeat(successes_per_trajectory == 0, lengths)


def with_infinite_tail(rewards: np.ndarray, ends: np.ndarray, terminals: np.ndarray, discount: float) -> np.ndarray:
    """Rewards whose last step of each trajectory also carries the discounted value of receiving
    that reward forever: r_last + gamma (1 - d_last) r_last / (1 - gamma)."""
    rewards = np.asarray(rewards, np.float64)
    tail = np.where(ends & ~np.asarray(terminals, bool), discount * rewards / (1.0 - discount), 0.0)
    return rewards + tail


def mc_returns(rewards: np.ndarray, ends: np.ndarray, terminals: np.ndarray, rule: ReturnRule) -> np.ndarray:
    """Monte-Carlo return-to-go of already-transformed rewards, float32 (N,).

    With rule.sparse_failure_reward, a trajectory whose every reward equals it never succeeded
    and gets G = r_neg / (1 - gamma) at every step, the return of failing forever (checking
    every reward, not only the last: a known peer bug). With rule.infinite_tail, the return
    continues after a non-terminal last step as if its reward were received forever.
    """
    tailed = with_infinite_tail(rewards, ends, terminals, rule.discount) if rule.infinite_tail else rewards
    returns = discounted_returns(tailed, ends, rule.discount)
    failure = rule.sparse_failure_reward
    if failure is not None and len(rewards):
        failed = all_failure_trajectories(rewards, ends, failure)
        returns[failed] = failure / (1.0 - rule.discount)
    return returns.astype(np.float32)


def trajectory_starts(ends: np.ndarray) -> np.ndarray:
    """(T,) the first row of each trajectory, for the (N,) `ends` of trajectory_ends."""
    return np.flatnonzero(np.concatenate([[True], np.asarray(ends, bool)[:-1]])) if len(ends) else np.zeros(0, int)


def best_trajectory_rows(returns: np.ndarray, ends: np.ndarray, fraction: float) -> np.ndarray:
    """(N,) bool: True on every row of the best round(fraction * T) of the T trajectories (at least
    one), ranked by the return at their first step (their Monte-Carlo value from where they
    start); ties go to the earlier trajectory."""
    starts = trajectory_starts(ends)
    lengths = np.diff(np.append(starts, len(returns)))
    count = max(1, round(fraction * len(starts)))
    best = np.argsort(-np.asarray(returns, np.float64)[starts], kind="stable")[:count]
    chosen = np.zeros(len(starts), bool)
    chosen[best] = True
    return np.repeat(chosen, lengths)
