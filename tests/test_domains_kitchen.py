"""FrankaKitchen: nested-dict flattening (Minari layout), D4RL's 60-float layout, a short run."""

import numpy as np
import pytest
import recording
from domain_helpers import offline_returns, short_train

from calql.data.observations import flat_keys, flatten_observation
from calql.envs import binding, kitchen, tasks
from calql.envs.common import source_space


def test_minari_layout_flattens_nested_goal_dicts_in_gymnasium_order():
    env = kitchen.make_env("complete", "minari", seed=0)
    obs, info = env.reset()
    assert obs.shape == (59 + 2 * (1 + 7 + 2 + 1),) and info["success"] is False
    keys = [key for key, _ in flat_keys(source_space(env))]
    assert keys == [
        "achieved_goal/kettle",
        "achieved_goal/light switch",
        "achieved_goal/microwave",
        "achieved_goal/slide cabinet",
        "desired_goal/kettle",
        "desired_goal/light switch",
        "desired_goal/microwave",
        "desired_goal/slide cabinet",
        "observation",
    ]
    import gymnasium as gym

    raw_space = source_space(env)
    sample = raw_space.sample()
    expected = gym.spaces.flatten(raw_space, sample).astype(np.float32)
    np.testing.assert_array_equal(flatten_observation(raw_space, sample), expected)


def test_d4rl_layout_is_qpos_objects_and_goal():
    env = kitchen.make_env("partial", "d4rl", seed=0)
    obs, _ = env.reset()
    assert obs.shape == (60,)
    data = env.unwrapped.data
    np.testing.assert_allclose(obs[:9], data.qpos[:9], atol=0.05)  # the env's observation noise is small
    goal = obs[30:]
    np.testing.assert_allclose(goal[22], -0.75)  # microwave
    np.testing.assert_allclose(goal[11:13], [-0.88, -0.01])  # bottom burner
    assert goal[19] == 0.0  # slide cabinet is not a task of 'partial'


def test_success_when_all_tasks_done():
    env = kitchen.make_env("complete", "minari", seed=0)
    env.reset()
    env.unwrapped.episode_task_completions.extend(kitchen.TASKS["complete"])
    _, _, _, _, info = env.step(np.zeros(9, np.float32))
    assert info["success"] is True


@pytest.mark.parametrize("variant", ["complete", "mixed"])
def test_minari_and_d4rl_kitchen_load(variant, tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    env = kitchen._base_env(variant)
    recording.record_minari(f"D4RL/kitchen/{variant}-v2", env, recording.random_policy(env.action_space), [12, 7])
    task = tasks.get_task(f"kitchen-{variant}")
    data = task.load_dataset(1, 0)
    assert data["observations"].shape == (19, kitchen.make_env(variant).observation_space.shape[0])
    # Random play solves no stage: every reward is 0 and, with no all-failure rule and a tail of
    # r_last / (1 - gamma) = 0, so is every return (the failure rule would have given -500).
    np.testing.assert_array_equal(offline_returns(task, data).reference, 0.0)
    d4rl_env = kitchen.make_env(variant, "d4rl")
    path = str(tmp_path / f"kitchen-{variant}-v0.hdf5")
    recording.record_d4rl(path, d4rl_env, recording.random_policy(d4rl_env.action_space), [10])
    d4rl = binding.bind(task, path).load_dataset(1, 0)
    assert d4rl["observations"].shape == (9, 60)
    goal = np.broadcast_to(kitchen.d4rl_goal(variant), (9, 30)).astype(np.float32)
    np.testing.assert_array_equal(d4rl["observations"][:, 30:], goal)


def test_short_run_and_score(tmp_path, monkeypatch):
    d4rl_env = kitchen.make_env("complete", "d4rl")
    path = str(tmp_path / "kitchen-complete-v0.hdf5")
    recording.record_d4rl(path, d4rl_env, recording.random_policy(d4rl_env.action_space), [10, 10])
    task = binding.bind(tasks.get_task("kitchen-complete"), path)
    assert task.normalized_score(4.0) == 100.0 and task.sparse_failure_reward is None
    short_train(task, tmp_path / "run")
