"""Manipulation (OGBench single-task): environments, oracle play data, relabelling, a short run."""

import numpy as np
import pytest

pytest.importorskip("ogbench")

from domain_helpers import offline_returns, short_train  # noqa: E402

from calql.envs import binding, manipulation, tasks  # noqa: E402

SHAPES = {"cube-single": 28, "scene": 40, "puzzle-3x3": 55}


@pytest.mark.parametrize("name", sorted(manipulation.DOMAINS))
def test_env_and_task_constants_match_ogbench(name):
    env = manipulation.make_env(name, seed=0)
    obs, _ = env.reset()
    assert obs.shape == (SHAPES[name],) and obs.dtype == np.float32 and env.action_space.shape == (5,)
    spec = manipulation.DOMAINS[name]
    assert env.spec.max_episode_steps == spec.max_episode_steps
    _, reward, terminated, _, info = env.step(np.zeros(5, np.float32))
    assert -spec.subgoals <= reward <= 0 and "success" in info
    base = env.unwrapped
    assert getattr(base, "_num_cubes", 0) + getattr(base, "_num_buttons", 0) + 2 * (name == "scene") == spec.subgoals
    task = tasks.get_task(name)
    assert task.failure_reward == -spec.subgoals and task.builtin


def test_generated_play_data_is_reproducible_and_relabelled():
    first = manipulation.generate_dataset("scene", 160, seed=3, episode_length=80)
    again = manipulation.generate_dataset("scene", 160, seed=3, episode_length=80)
    other = manipulation.generate_dataset("scene", 30, seed=4, episode_length=30)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key], err_msg=key)
    assert not np.array_equal(first["actions"][:30], other["actions"])
    assert first["observations"].shape == (160, 40) and np.abs(first["actions"]).max() <= 1.0
    np.testing.assert_array_equal(np.flatnonzero(first["timeouts"]), [79, 159])
    np.testing.assert_array_equal(first["next_observations"][:79], first["observations"][1:80])
    assert set(np.unique(first["rewards"])) <= set(range(-5, 1))
    np.testing.assert_array_equal(first["terminals"], first["rewards"] == 0)
    assert len(np.unique(first["rewards"])) > 1  # the oracle changes the scene, so the reward moves


def test_builtin_cache_round_trip_and_short_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    task = tasks.get_task("cube-single")
    generated = task.load_dataset(150, 0)
    assert "first run only" in capsys.readouterr().err
    cached = binding.bind(task, manipulation.dataset_id("cube-single", 150, 0)).load_dataset(1, 0)
    for key in generated:
        np.testing.assert_array_equal(cached[key], generated[key], err_msg=key)
    transitions = offline_returns(task, generated)
    if not (generated["rewards"] == 0).any():  # no success: the all-failure rule
        np.testing.assert_allclose(transitions.reference, -1 / (1 - 0.99), rtol=1e-6)
    short_train(task, tmp_path / "run", dataset_size=150)
