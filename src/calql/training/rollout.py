"""Episodes in a gymnasium environment, and evaluation of the deterministic policy."""

import copy
import dataclasses
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from calql.envs.common import env_stack

Policy = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass
class Episode:
    """One finished episode with its raw (untransformed) rewards."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminated: bool
    success: bool
    score_return: float
    """Sum of the rewards the task's score is defined on (info[score_key], else the rewards)."""

    @property
    def length(self) -> int:
        return len(self.rewards)

    @property
    def raw_return(self) -> float:
        return float(self.rewards.sum())


def run_episode(env: gym.Env, policy: Policy, seed: int | None = None, score_key: str = "") -> Episode:
    """Roll out one episode until termination or the environment's time limit. score_key names
    an info field whose sum the task's score uses (Adroit binary: the dense reward)."""
    observation, _ = env.reset(seed=seed)
    steps: list[tuple] = []
    success, score_return = False, 0.0
    while True:
        action = policy(observation)
        next_observation, reward, terminated, truncated, info = env.step(action)
        steps.append((observation, action, reward, next_observation))
        score_return += float(info[score_key]) if score_key else float(reward)
        success = success or bool(info.get("success", False))
        observation = next_observation
        if terminated or truncated:
            break
    observations, actions, rewards, next_observations = (np.asarray(x) for x in zip(*steps))
    return Episode(
        observations, actions, rewards.astype(np.float32), next_observations, bool(terminated), success, score_return
    )


def evaluate(env: gym.Env, policy: Policy, num_episodes: int, score_key: str = "") -> dict[str, float]:
    """Mean raw return, mean score return, success rate and mean length over `num_episodes` episodes."""
    episodes = [run_episode(env, policy, score_key=score_key) for _ in range(num_episodes)]
    return _summary(
        [e.raw_return for e in episodes], [e.score_return for e in episodes], [e.success for e in episodes],
        [e.length for e in episodes],
    )  # fmt: skip


def _summary(returns: list, score_returns: list, successes: list, lengths: list) -> dict[str, float]:
    return {
        "return": float(np.mean(returns)),
        "score_return": float(np.mean(score_returns)),
        "success": float(np.mean(successes)),
        "length": float(np.mean(lengths)),
    }


def _take_random_state(target: gym.Env, source: gym.Env) -> None:
    """Give `target` (an environment of the same task) copies of `source`'s random generators."""
    for into, outof in zip(env_stack(target), env_stack(source), strict=True):
        into.np_random = copy.deepcopy(outof.np_random)


def evaluate_lockstep(env: gym.Env, copies: list[gym.Env], policy: Policy, score_key: str = "") -> dict[str, float]:
    """`evaluate` with one episode per copy, all stepped together: one batched policy call per step
    for every episode (observations (N, ...) -> actions (N, A); a finished episode's last observation
    keeps the batch's shape fixed, so the policy compiles once).

    Copy i starts from the random state `env`'s i-th reset would have drawn from, and `env` is left
    as N sequential episodes leave it, for environments that draw randomness only when they reset
    (the mazes, manipulation): the same start states as `evaluate(env, policy, N)` and the same
    state for the next evaluation. The actions match the sequential ones up to the last bits of
    float32 (a batched matrix product may sum in another order), so the episodes can differ where
    such a difference tips an outcome."""
    for episode in copies:
        _take_random_state(episode, env)
        env.reset()  # advances env's generators as that episode's reset does
    observations = [episode.reset()[0] for episode in copies]
    count = len(copies)
    rewards: list[list] = [[] for _ in range(count)]
    score_returns, lengths = [0.0] * count, [0] * count
    successes, running = [False] * count, [True] * count
    while any(running):
        actions = policy(np.stack(observations))
        for i, episode in enumerate(copies):
            if not running[i]:
                continue
            observations[i], reward, terminated, truncated, info = episode.step(actions[i])
            rewards[i].append(reward)
            score_returns[i] += float(info[score_key]) if score_key else float(reward)
            successes[i] = successes[i] or bool(info.get("success", False))
            lengths[i] += 1
            running[i] = not (terminated or truncated)
    returns = [float(np.asarray(r).astype(np.float32).sum()) for r in rewards]  # as Episode.raw_return
    return _summary(returns, score_returns, successes, lengths)
