"""Tests of the built-in PointMaze task: fixed-goal env, scripted stitching dataset, Minari cache."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the cache must never touch the network

import minari
import numpy as np
import pytest

from calql.data.sources import DatasetError
from calql.envs import pointmaze as pm

DATA_MAZE = "medium"
DATA_SIZE = 20_500  # 20 full episodes of 1000 steps, then one of 500


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    return pm.generate_dataset(DATA_MAZE, DATA_SIZE, seed=0)


def _teleport(env, xy: np.ndarray) -> None:
    """Put the ball at `xy` at rest."""
    point_env = env.unwrapped.point_env
    point_env.set_state(np.asarray(xy, dtype=np.float64), np.zeros(2))


def _cells_of(xy: np.ndarray, maze: str) -> np.ndarray:
    return pm._xy_to_cell(xy, pm._free_mask(maze).shape)


# ----- make_env -----


def test_make_env_spaces_and_observation():
    env = pm.make_env("umaze", seed=0)
    obs, info = env.reset()
    assert obs.shape == (4,) and obs.dtype == np.float32
    assert env.observation_space.shape == (4,) and env.observation_space.dtype == np.float32
    assert env.observation_space.contains(obs)
    assert env.action_space.shape == (2,)
    np.testing.assert_array_equal(env.action_space.low, [-1, -1])
    np.testing.assert_array_equal(env.action_space.high, [1, 1])
    assert info["success"] is False
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs.dtype == np.float32 and reward == 0.0 and not terminated and not truncated


def test_make_env_leaves_no_maze_xml_in_the_temp_dir():
    # Gymnasium-Robotics writes a new maze XML to the temp dir per env and never deletes it.
    env = pm.make_env("umaze", seed=0)
    xml_path = env.unwrapped.tmp_xml_file_path
    assert not os.path.exists(xml_path)
    env.reset()
    env.step(env.action_space.sample())  # the simulation does not need the file any more


@pytest.mark.parametrize("maze", sorted(pm.MAZES))
def test_goal_is_exactly_fixed_and_starts_cover_the_start_region(maze):
    env = pm.make_env(maze, seed=1)
    spec = pm.MAZES[maze]
    np.testing.assert_array_equal(pm.goal_xy(maze), env.unwrapped.maze.cell_rowcol_to_xy(np.array(spec.goal_cell)))
    starts = []
    for _ in range(40):
        obs, _ = env.reset()
        np.testing.assert_array_equal(env.unwrapped.goal, pm.goal_xy(maze))
        starts.append(obs[:2])
    centres = np.array([pm.cell_xy(maze, cell) for cell in spec.start_cells])
    offsets = np.abs(np.array(starts)[:, None, :] - centres[None])  # (starts, cells, 2)
    nearest = np.argmin(offsets.max(axis=-1), axis=1)
    assert offsets.max(axis=-1).min(axis=1).max() <= 0.25 + 1e-6  # in a start cell, within the env's noise
    assert set(nearest) == set(range(len(spec.start_cells)))  # every start cell is drawn


def test_the_start_cell_follows_the_reset_seed():
    first = [pm.make_env("medium", seed=7).reset(seed=s)[0][:2] for s in (3, 3, 4)]
    np.testing.assert_array_equal(first[0], first[1])
    assert not np.array_equal(first[0], first[2])


def test_reward_one_and_terminated_at_goal():
    env = pm.make_env("medium", seed=0)
    env.reset()
    _teleport(env, pm.goal_xy("medium") + [pm.SUCCESS_RADIUS + 0.05, 0.0])
    _, reward, terminated, _, info = env.step(np.zeros(2, dtype=np.float32))
    assert reward == 0.0 and not terminated and info["success"] is False
    _teleport(env, pm.goal_xy("medium") + [0.0, pm.SUCCESS_RADIUS - 0.05])
    obs, reward, terminated, truncated, info = env.step(np.zeros(2, dtype=np.float32))
    assert reward == 1.0 and terminated and not truncated and info["success"] is True
    assert pm.success(obs[:2], "medium")


def test_truncated_at_time_limit():
    env = pm.make_env("umaze", seed=0)
    env.reset()
    for step in range(1, pm.MAZES["umaze"].max_episode_steps + 1):
        _, reward, terminated, truncated, _ = env.step(np.zeros(2, dtype=np.float32))
        assert reward == 0.0 and not terminated
        assert truncated == (step == pm.MAZES["umaze"].max_episode_steps)


def test_unknown_maze_is_a_one_line_error_naming_the_mazes():
    for call in (lambda: pm.make_env("huge"), lambda: pm.generate_dataset("huge", 10, 0), lambda: pm.goal_xy("huge")):
        with pytest.raises(ValueError, match="huge") as err:
            call()
        assert "medium" in str(err.value) and "\n" not in str(err.value)


def expert_action(obs: np.ndarray, maze: str) -> np.ndarray:
    """The data generator's scripted controller, noiseless, driving (..., 4) `make_env`
    observations towards the evaluation goal: actions (..., 2)."""
    ctrl = pm._controller(maze)
    goal = np.asarray(pm.maze_spec(maze).goal_cell)
    goal_cell = np.full(np.shape(obs)[:-1], goal[0] * ctrl.shape[1] + goal[1])
    return pm._waypoint_actions(ctrl, np.asarray(obs, dtype=np.float64), goal_cell).astype(np.float32)


@pytest.mark.parametrize("maze", sorted(pm.MAZES))
def test_scripted_controller_reaches_goal_in_half_the_time_limit(maze):
    env = pm.make_env(maze, seed=3)
    obs, _ = env.reset()
    for step in range(1, pm.MAZES[maze].max_episode_steps + 1):  # noqa: B007 (step is read after the loop)
        obs, reward, terminated, truncated, _ = env.step(expert_action(obs, maze))
        if terminated or truncated:
            break
    assert terminated and reward == 1.0
    assert step <= pm.MAZES[maze].max_episode_steps / 2


def test_success_is_vectorised():
    goal = pm.goal_xy("large")
    xy = np.stack([goal, goal + [0.44, 0.0], goal + [0.0, -0.46]])
    np.testing.assert_array_equal(pm.success(xy, "large"), [True, True, False])
    assert pm.success(xy.reshape(3, 1, 2), "large").shape == (3, 1)


# ----- generate_dataset -----


def test_dataset_shapes_and_dtypes(data):
    n = DATA_SIZE
    expected = {"observations": (n, 4), "actions": (n, 2), "next_observations": (n, 4), "rewards": (n,)}
    for key, shape in expected.items():
        assert data[key].shape == shape and data[key].dtype == np.float32, key
    for key in ("terminals", "timeouts"):
        assert data[key].shape == (n,) and data[key].dtype == np.bool_, key
    assert np.abs(data["actions"]).max() <= 1.0


def test_timeouts_mark_episode_ends(data):
    ends = np.flatnonzero(data["timeouts"])
    np.testing.assert_array_equal(ends, [*range(999, 20_000, 1000), DATA_SIZE - 1])


def test_next_observation_is_next_step_within_episodes(data):
    inside = ~data["timeouts"][:-1]
    np.testing.assert_array_equal(data["next_observations"][:-1][inside], data["observations"][1:][inside])
    # Across an episode boundary the next episode restarts elsewhere.
    boundary = np.flatnonzero(data["timeouts"][:-1])
    assert np.all(np.linalg.norm(data["next_observations"][boundary] - data["observations"][boundary + 1], axis=-1) > 0)


def test_rewards_are_the_success_rule_for_the_fixed_goal(data):
    np.testing.assert_array_equal(data["rewards"], pm.success(data["next_observations"][:, :2], DATA_MAZE))
    np.testing.assert_array_equal(data["terminals"], data["rewards"] > 0)
    assert data["rewards"].sum() > 0  # some transitions reach the evaluation goal


def test_controller_reaches_many_goal_cells_from_many_starts(data):
    ctrl = pm._controller(DATA_MAZE)
    xy = data["next_observations"][:, :2]
    cells = _cells_of(xy, DATA_MAZE)
    near_centre = np.linalg.norm(xy - ctrl.centres[cells], axis=-1) <= pm.GOAL_REACHED_RADIUS
    reached = set(cells[near_centre].tolist())
    assert reached <= set(ctrl.free_cells.tolist())
    assert len(reached) >= 0.9 * len(ctrl.free_cells)
    episode_starts = np.concatenate([[0], np.flatnonzero(data["timeouts"])[:-1] + 1])
    assert len(set(_cells_of(data["observations"][episode_starts, :2], DATA_MAZE).tolist())) >= 8


def test_dataset_is_deterministic_for_a_seed():
    first = pm.generate_dataset("umaze", 900, seed=5, episode_length=400)
    again = pm.generate_dataset("umaze", 900, seed=5, episode_length=400)
    other = pm.generate_dataset("umaze", 900, seed=6, episode_length=400)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["observations"], other["observations"])


def test_next_cell_table_follows_shortest_paths():
    free = pm._free_mask("large")
    table = pm._controller("large").next_cell
    for goal in np.flatnonzero(free):
        distance = pm._bfs_distances(free, goal)
        cells = np.flatnonzero(free)
        np.testing.assert_array_equal(distance[table[goal, cells]], np.maximum(distance[cells] - 1, 0))


# ----- load_or_generate -----


def test_load_or_generate_round_trip_through_minari(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    generated = pm.load_or_generate("umaze", 2300, seed=1)
    assert "first run only" in capsys.readouterr().err

    dataset = minari.load_dataset(pm.dataset_id("umaze", 2300, 1))
    assert dataset.total_episodes == 3 and dataset.total_steps == 2300
    assert [len(ep.observations) for ep in dataset.iterate_episodes()] == [1001, 1001, 301]

    def must_not_regenerate(*args, **kwargs):
        raise AssertionError("regenerated a cached dataset")

    monkeypatch.setattr(pm, "generate_dataset", must_not_regenerate)
    loaded = pm.load_or_generate("umaze", 2300, seed=1)
    assert capsys.readouterr().err == ""
    assert generated.keys() == loaded.keys()
    for key in generated:
        assert loaded[key].dtype == generated[key].dtype, key
        np.testing.assert_array_equal(loaded[key], generated[key], err_msg=key)


def test_load_or_generate_matches_generate_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    cached = pm.load_or_generate("umaze", 1200, seed=2)
    direct = pm.generate_dataset("umaze", 1200, seed=2)
    for key in direct:
        np.testing.assert_array_equal(cached[key], direct[key], err_msg=key)


def test_corrupt_cache_is_a_one_line_error_naming_the_path(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    pm.load_or_generate("umaze", 500, seed=0)
    path = minari.storage.get_dataset_path(pm.dataset_id("umaze", 500, 0))
    (path / "data" / "main_data.hdf5").write_bytes(b"not an hdf5 file")
    with pytest.raises(DatasetError, match="delete") as err:
        pm.load_or_generate("umaze", 500, seed=0)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_narrow_data_is_demonstrations_from_the_start_region_to_the_goal_and_failed_attempts():
    data = pm.generate_narrow_dataset("umaze", seed=0, demos=4, failures=2)
    ends = np.flatnonzero(data["terminals"] | data["timeouts"])
    starts = np.concatenate([[0], ends[:-1] + 1])
    assert len(ends) == 6
    centres = np.array([pm.cell_xy("umaze", cell) for cell in pm.MAZES["umaze"].start_cells])
    for start in starts:  # every episode begins in a start cell (within the env's start noise)
        assert np.abs(data["observations"][start, :2] - centres).max(axis=1).min() <= 0.25 + 1e-6
    assert data["terminals"][ends[:4]].all()  # the demonstrations end at the goal
    assert pm.success(data["next_observations"][ends[:4], :2], "umaze").all()
    assert data["rewards"].sum() == data["terminals"].sum()  # reward 1 exactly where an episode reaches the goal
    # Episodes are whole: the next observation continues each episode up to its end.
    inside = np.setdiff1d(np.arange(len(data["rewards"]) - 1), ends)
    np.testing.assert_array_equal(data["next_observations"][inside], data["observations"][inside + 1])
    again = pm.generate_narrow_dataset("umaze", seed=0, demos=4, failures=2)
    assert all(np.array_equal(data[key], again[key]) for key in data)


def test_narrow_task_caches_whole_episodes_and_reads_them_back():
    from calql.envs.tasks import get_task

    task = get_task("pointmaze-umaze-narrow")
    first, cached = task.load_dataset(0, 0), task.load_dataset(0, 0)
    assert all(np.array_equal(first[key], cached[key]) for key in first)
    assert first["terminals"].sum() >= pm.NARROW_DEMOS
