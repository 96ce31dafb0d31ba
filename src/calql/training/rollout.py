"""Episodes in a gymnasium environment, and evaluation of the deterministic policy."""

import dataclasses
from collections.abc import Callable

import gymnasium as gym
import numpy as np

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

    @property
    def length(self) -> int:
        return len(self.rewards)

    @property
    def raw_return(self) -> float:
        return float(self.rewards.sum())


def run_episode(env: gym.Env, policy: Policy, seed: int | None = None) -> Episode:
    """Roll out one episode until termination or the environment's time limit."""
    observation, _ = env.reset(seed=seed)
    steps: list[tuple] = []
    success = False
    while True:
        action = policy(observation)
        next_observation, reward, terminated, truncated, info = env.step(action)
        steps.append((observation, action, reward, next_observation))
        success = success or bool(info.get("success", False))
        observation = next_observation
        if terminated or truncated:
            break
    observations, actions, rewards, next_observations = (np.asarray(x) for x in zip(*steps))
    return Episode(observations, actions, rewards.astype(np.float32), next_observations, bool(terminated), success)


def evaluate(env: gym.Env, policy: Policy, num_episodes: int) -> dict[str, float]:
    """Mean raw return, success rate and mean length over `num_episodes` episodes."""
    episodes = [run_episode(env, policy) for _ in range(num_episodes)]
    return {
        "return": float(np.mean([e.raw_return for e in episodes])),
        "success": float(np.mean([e.success for e in episodes])),
        "length": float(np.mean([e.length for e in episodes])),
    }
