"""AntMaze: the D4RL frame and the Minari frame, their datasets, transform and a short run."""

import numpy as np
import pytest
import recording
from domain_helpers import assert_all_failure_rule, offline_returns, short_train

from calql.data.observations import flatten_observation
from calql.envs import antmaze, binding, tasks
from calql.envs.common import FlatObservation, source_space


def _teleport(env, xy):
    ant = env.unwrapped.ant_env
    qpos = ant.data.qpos.copy()
    qpos[:2] = xy
    ant.set_state(qpos, np.zeros_like(ant.data.qvel))


@pytest.mark.parametrize("maze, goal", [("umaze", (0, 8)), ("medium", (20, 20)), ("large", (32, 24))])
def test_d4rl_frame_goal_and_start_are_d4rls(maze, goal):
    np.testing.assert_allclose(antmaze.goal_xy(maze, "d4rl"), goal)
    env = antmaze.make_env(maze, "d4rl", seed=0)
    obs, info = env.reset()
    assert obs.shape == (29,) and obs.dtype == np.float32 and info["success"] is False
    assert np.linalg.norm(obs[:2]) <= 1.5  # D4RL's start cell is the origin (plus the env's start noise)
    base = env.unwrapped
    # D4RL's layout: qpos[:15] (x, y shifted to D4RL's frame) then qvel[:14].
    np.testing.assert_array_equal(obs[2:15], np.asarray(base.ant_env.data.qpos[2:15], np.float32))
    np.testing.assert_array_equal(obs[15:], np.asarray(base.ant_env.data.qvel[:14], np.float32))
    offset = antmaze.goal_xy(maze, "d4rl") - base.goal
    np.testing.assert_allclose(obs[:2] - base.ant_env.data.qpos[:2], offset, atol=1e-5)
    assert env.spec.max_episode_steps == antmaze.MAZES[maze].max_episode_steps


def test_d4rl_frame_walls_are_d4rls():
    # D4RL's medium maze: row 1 is [1, R, 0, 1, 1, 0, 0, 1] with y = 4 * (row - 1): the cell (x=8, y=0)
    # (row 1, col 3) is a wall and (x=4, y=4) (row 2, col 2) is free.
    env = antmaze.make_env("medium", "d4rl")
    maze = env.unwrapped.maze
    offset = -maze.cell_rowcol_to_xy(np.array([6, 1]))  # the start cell, after reversing the rows
    rows = maze.maze_map

    def cell_at(xy_d4rl):
        return maze.cell_xy_to_rowcol(np.asarray(xy_d4rl, float) - offset)

    assert rows[cell_at((8, 0))[0]][cell_at((8, 0))[1]] == 1
    assert rows[cell_at((4, 4))[0]][cell_at((4, 4))[1]] != 1


@pytest.mark.parametrize("frame, radius", [("d4rl", 0.5), ("minari", 0.45)])
def test_reward_and_termination_only_at_the_goal(frame, radius):
    env = antmaze.make_env("umaze", frame, seed=0)
    env.reset()
    goal = env.unwrapped.goal.copy()  # in the simulator's coordinates, either frame
    _teleport(env, goal + [radius + 0.2, 0])
    _, reward, terminated, truncated, info = env.step(np.zeros(8, np.float32))
    assert reward == 0.0 and not terminated and info["success"] is False
    _teleport(env, goal + [0, radius - 0.1])
    _, reward, terminated, truncated, info = env.step(np.zeros(8, np.float32))
    assert reward == 1.0 and terminated and info["success"] is True


def test_time_outs_are_not_terminal():
    env = antmaze.make_env("umaze", "d4rl", seed=0)
    env.reset()
    for _ in range(antmaze.MAZES["umaze"].max_episode_steps):
        _, _, terminated, truncated, _ = env.step(np.zeros(8, np.float32))
        assert not terminated
    assert truncated


def test_minari_frame_flattens_the_whole_dict_with_the_fixed_goal():
    env = antmaze.make_env("medium", "minari", seed=1)
    obs, _ = env.reset()
    raw = env.unwrapped._get_obs(env.unwrapped.ant_env._get_obs())
    raw["desired_goal"] = antmaze.goal_xy("medium", "minari")
    np.testing.assert_allclose(obs, flatten_observation(source_space(env), raw), atol=1e-6)
    np.testing.assert_allclose(obs[2:4], antmaze.goal_xy("medium", "minari"))  # achieved, desired, observation
    assert isinstance(env, FlatObservation) and obs.shape == (31,)


@pytest.fixture
def minari_umaze(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    env = recording.antmaze_collection_env("umaze")
    recording.record_minari(
        "D4RL/antmaze/umaze-v1", env, recording.random_policy(env.action_space), [40, 25], info_keys=("success",)
    )
    return tasks.get_task("antmaze-umaze")


def test_minari_antmaze_loads_with_terminals_at_the_goal(minari_umaze):
    data = minari_umaze.load_dataset(1, 0)  # the task's default source: the local Minari id
    assert data["observations"].shape == (65, 31) and data["actions"].shape == (65, 8)
    np.testing.assert_array_equal(np.flatnonzero(data["timeouts"]), [39, 64])
    marked = antmaze.minari_terminals_at_goal(
        {"rewards": np.array([0, 1, 1, 0], np.float32), "terminals": np.zeros(4, bool)}, "x"
    )
    np.testing.assert_array_equal(marked["terminals"], [False, True, True, False])
    transitions = assert_all_failure_rule(minari_umaze, data)
    assert set(np.unique(transitions.rewards)) <= {-5.0, 5.0}


def test_d4rl_antmaze_file_loads_and_transforms(tmp_path):
    env = antmaze.make_env("umaze", "d4rl")
    path = str(tmp_path / "antmaze-umaze-v2.hdf5")
    written = recording.record_d4rl(
        path,
        env,
        recording.random_policy(env.action_space),
        [30, 30],
        infos={"goal": lambda info: antmaze.goal_xy("umaze", "d4rl")},
    )
    written["rewards"][[5, 6]] = 1.0  # two goal steps (D4RL: reward 1 and terminal there)
    written["terminals"][[5, 6]] = True
    import h5py

    with h5py.File(path, "a") as file:
        file["rewards"][...] = written["rewards"]
        file["terminals"][...] = written["terminals"]
    task = binding.bind(tasks.get_task("antmaze-umaze"), path)
    data = task.load_dataset(1, 0)
    assert data["observations"].shape == (58, 29)
    np.testing.assert_array_equal(data["observations"][:29], written["observations"][:29])
    transitions = offline_returns(task, data)
    np.testing.assert_array_equal(transitions.rewards[[5, 6]], [5.0, 5.0])
    np.testing.assert_allclose(transitions.reference[6], 5.0)  # terminal: no bootstrap
    np.testing.assert_allclose(transitions.reference[4], -5 + 0.99 * 5, rtol=1e-6)
    np.testing.assert_allclose(transitions.reference[-1], -500.0)  # the second episode never succeeds


def test_short_runs_on_both_frames(minari_umaze, tmp_path, monkeypatch):
    short_train(minari_umaze, tmp_path / "minari_run")
    env = antmaze.make_env("umaze", "d4rl")
    path = str(tmp_path / "antmaze-umaze-v2.hdf5")
    recording.record_d4rl(path, env, recording.random_policy(env.action_space), [30, 30])
    result = short_train(binding.bind(tasks.get_task("antmaze-umaze"), path), tmp_path / "d4rl_run")
    assert result["length"] == antmaze.MAZES["umaze"].max_episode_steps
