"""Episodes and evaluation: success, returns, and the score computed from an info field."""

import gymnasium as gym
import numpy as np

from calql.training.rollout import evaluate, run_episode


class _CountingEnv(gym.Env):
    """Three steps; reward 1 each, info["dense"] = 10 each, success on the last step."""

    observation_space = gym.spaces.Box(-1, 1, (1,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        done = self.t == 3
        return np.full(1, self.t, np.float32), 1.0, done, False, {"dense": 10.0, "success": done}


def test_episode_records_transitions_success_and_score_return():
    episode = run_episode(_CountingEnv(), lambda obs: np.zeros(1, np.float32), score_key="dense")
    assert episode.length == 3 and episode.terminated and episode.success
    assert episode.raw_return == 3.0 and episode.score_return == 30.0
    np.testing.assert_array_equal(episode.next_observations[:-1], episode.observations[1:])


def test_evaluate_uses_the_task_reward_without_a_score_key():
    result = evaluate(_CountingEnv(), lambda obs: np.zeros(1, np.float32), 2)
    assert result == {"return": 3.0, "score_return": 3.0, "success": 1.0, "length": 3.0}
