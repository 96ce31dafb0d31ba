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
    return {
        "return": float(np.mean([e.raw_return for e in episodes])),
        "score_return": float(np.mean([e.score_return for e in episodes])),
        "success": float(np.mean([e.success for e in episodes])),
        "length": float(np.mean([e.length for e in episodes])),
    }
