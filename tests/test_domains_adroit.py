"""Adroit binary: binary env, success flags from both layouts, the authors' filtering, returns."""

import gymnasium as gym
import numpy as np
import pytest
import recording
from domain_helpers import offline_returns, short_train

from calql.data import sources
from calql.envs import adroit, binding, tasks
from calql.envs.common import make_quietly


class ScriptedSuccess(gym.Wrapper):
    """Marks info["success"] at chosen steps of each episode (random actions never succeed)."""

    def __init__(self, env, success_steps):
        super().__init__(env)
        self.episode, self.success_steps = -1, success_steps

    def reset(self, **kwargs):
        self.episode, self.t = self.episode + 1, 0
        obs, info = self.env.reset(**kwargs)
        info["success"] = False
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["success"] = self.t in self.success_steps[self.episode % len(self.success_steps)]
        self.t += 1
        return obs, reward, terminated, truncated, info


SUCCESS_STEPS = [{3, 4, 9}, set(), {0}]  # episode 2 never succeeds: the filter drops it
EPISODES = [15, 12, 10]


@pytest.mark.parametrize(
    "hand, obs_dim, act_dim", [("pen", 45, 24), ("door", 39, 28), ("relocate", 39, 30), ("hammer", 46, 26)]
)
def test_binary_env(hand, obs_dim, act_dim):
    env = adroit.make_env(hand, seed=0)
    obs, info = env.reset()
    assert obs.shape == (obs_dim,) and obs.dtype == np.float32 and env.action_space.shape == (act_dim,)
    _, reward, terminated, _, info = env.step(env.action_space.sample())
    assert reward == -1.0 and not terminated and info["success"] is False and "dense_reward" in info
    assert env.spec.max_episode_steps == adroit.HANDS[hand].max_episode_steps


def test_binary_env_ends_at_success():
    env = adroit.BinaryReward(ScriptedSuccess(make_quietly("AdroitHandDoor-v1"), [{2}]))
    env.reset(seed=0)
    rewards = []
    for _ in range(3):
        _, reward, terminated, _, _ = env.step(np.zeros(28, np.float32))
        rewards.append(reward)
    assert rewards == [-1.0, -1.0, 0.0] and terminated


def test_filter_by_hand():
    # Two trajectories: successes at 1 and 3 in the first (cut after 3), none in the second (dropped).
    n = 8
    data = {
        "observations": np.arange(n, dtype=np.float32)[:, None],
        "actions": np.zeros((n, 1), np.float32),
        "rewards": np.array([-1, 0, -1, 0, -1, -1, -1, -1], np.float32),
        "next_observations": np.arange(1, n + 1, dtype=np.float32)[:, None],
        "terminals": np.zeros(n, bool),
        "timeouts": np.array([0, 0, 0, 0, 1, 0, 0, 1], bool),
    }
    out = adroit.filter_binary(data, "x")
    np.testing.assert_array_equal(out["observations"][:, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(out["terminals"], [False, True, False, True])
    assert not out["timeouts"].any()
    with pytest.raises(sources.DatasetError, match="no trajectory ever succeeds"):
        adroit.filter_binary({**data, "rewards": -np.ones(n, np.float32)}, "x")


def _check_filtered(data, obs_dim):
    # Episode 0 (15 steps, successes 3, 4, 9) -> rows 0..9; episode 1 dropped; episode 2 -> row 0 only.
    assert data["observations"].shape == (11, obs_dim)
    np.testing.assert_array_equal(np.flatnonzero(data["rewards"] == 0), [3, 4, 9, 10])
    np.testing.assert_array_equal(data["terminals"], data["rewards"] == 0)


def test_minari_adroit_binary_filtered(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    env = ScriptedSuccess(make_quietly("AdroitHandPen-v1", max_episode_steps=100), SUCCESS_STEPS)
    recording.record_minari(
        "D4RL/pen/cloned-v2", env, recording.random_policy(env.action_space), EPISODES, info_keys=("success",)
    )
    task = tasks.get_task("pen-binary")
    _check_filtered(task.load_dataset(1, 0), 45)  # the default: Minari D4RL/pen/cloned-v2, filter on
    unfiltered = binding.bind(task, "", filter_dataset=False).load_dataset(1, 0)
    assert len(unfiltered["rewards"]) == sum(EPISODES) and set(np.unique(unfiltered["rewards"])) == {-1.0, 0.0}


def test_d4rl_adroit_binary_filtered_and_returns(tmp_path, monkeypatch):
    env = ScriptedSuccess(make_quietly("AdroitHandDoor-v1"), SUCCESS_STEPS)
    path = str(tmp_path / "door-human-v1.hdf5")
    recording.record_d4rl(
        path,
        env,
        recording.random_policy(env.action_space),
        EPISODES,
        infos={"goal_achieved": lambda info: info["success"]},
        next_observations=True,
    )
    task = binding.bind(tasks.get_task("door-binary"), path)
    data = task.load_dataset(1, 0)
    _check_filtered(data, 39)
    transitions = offline_returns(task, data)
    # {-1, 0} -> {-5, +5}; success steps are terminal, so G = 5 there and -5 + 0.99 G_next before.
    np.testing.assert_array_equal(transitions.rewards[:5], [-5, -5, -5, 5, 5])
    np.testing.assert_allclose(transitions.reference[3:5], [5, 5])
    np.testing.assert_allclose(transitions.reference[2], -5 + 0.99 * 5, rtol=1e-6)
    short_train(task, tmp_path / "run")


def test_missing_success_flag_is_a_one_line_error(tmp_path):
    env = make_quietly("AdroitHandDoor-v1")
    path = str(tmp_path / "door-dense.hdf5")
    recording.record_d4rl(path, env, recording.random_policy(env.action_space), [5])
    with pytest.raises(sources.DatasetError) as err:
        binding.bind(tasks.get_task("door-binary"), path).load_dataset(1, 0)
    assert "field 'infos/goal_achieved' is missing" in str(err.value) and "\n" not in str(err.value)


def test_normalized_score_uses_d4rl_references():
    task = tasks.get_task("pen-binary")
    assert task.normalized_score(96.262799) == pytest.approx(0.0)
    assert task.normalized_score(3076.8331017826877) == pytest.approx(100.0)
    assert task.score_reward_info == "dense_reward" and task.filter_by_default
    assert task.sparse_failure_reward == -5.0
