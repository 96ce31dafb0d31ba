"""Dataset sources: Minari and D4RL-layout readers, alignment, flattening, and one-line errors."""

import gymnasium as gym
import h5py
import numpy as np
import pytest
import recording

from calql.data.observations import flat_keys, flatten_observation
from calql.data.sources import DatasetError, Source, check_transitions, parse_source, read_d4rl, read_minari
from calql.envs import antmaze, binding, tasks
from calql.envs.common import FlatObservation


@pytest.fixture(scope="module")
def minari_antmaze(tmp_path_factory):
    """A Minari dataset recorded by minari.DataCollector on Gymnasium-Robotics' AntMaze (random actions),
    episodes of different lengths, plus the raw episodes read back through minari itself."""
    import minari

    root = tmp_path_factory.getbasetemp() / "minari"  # the folder tests/conftest.py points Minari at
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINARI_DATASETS_PATH", str(root))
        env = recording.antmaze_collection_env("umaze")
        recording.record_minari(
            "test/antmaze-v0",
            env,
            recording.random_policy(env.action_space),
            [23, 9, 31],
            seed=3,
            info_keys=("success",),
        )
        episodes = list(minari.load_dataset("test/antmaze-v0").iterate_episodes())
    return root, env.observation_space, episodes


def _one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text
    return text


# ----- parse_source -----


@pytest.mark.parametrize(
    "spec, kind",
    [
        ("", "builtin"),
        ("builtin", "builtin"),
        ("D4RL/antmaze/umaze-v1", "minari"),
        ("calql/x-v0", "minari"),
        ("antmaze-umaze-v2.hdf5", "d4rl"),
        ("/data/file", "d4rl"),
        ("./x.h5", "d4rl"),
        ("~/d.hdf5", "d4rl"),
    ],
)
def test_parse_source_tells_the_kinds_apart(spec, kind):
    assert parse_source(spec).kind == kind


# ----- flattening -----


def test_flatten_order_is_gymnasiums_for_nested_dicts():
    space = gym.spaces.Dict(
        {
            "observation": gym.spaces.Box(-1, 1, (3,)),
            "desired_goal": gym.spaces.Dict({"b": gym.spaces.Box(-1, 1, (2,)), "a": gym.spaces.Box(-1, 1, (1,))}),
            "achieved_goal": gym.spaces.Box(-1, 1, (2, 2)),
        }
    )
    rng = np.random.default_rng(0)
    samples = [space.sample() for _ in range(5)]
    for sample in samples:
        expected = gym.spaces.flatten(space, sample).astype(np.float32)
        np.testing.assert_array_equal(flatten_observation(space, sample), expected)
    batch = {
        "observation": np.stack([s["observation"] for s in samples]),
        "achieved_goal": np.stack([s["achieved_goal"] for s in samples]),
        "desired_goal": {k: np.stack([s["desired_goal"][k] for s in samples]) for k in ("a", "b")},
    }
    np.testing.assert_array_equal(
        flatten_observation(space, batch), np.stack([gym.spaces.flatten(space, s) for s in samples]).astype(np.float32)
    )
    assert [k for k, _ in flat_keys(space)] == ["achieved_goal", "desired_goal/a", "desired_goal/b", "observation"]
    del rng


def test_minari_observations_flatten_like_the_env_wrapper(minari_antmaze):
    _, space, episodes = minari_antmaze
    wrapper = FlatObservation(recording.antmaze_collection_env("umaze"))
    for episode in episodes:
        for t in (0, len(episode.actions)):
            one = {key: episode.observations[key][t] for key in episode.observations}
            np.testing.assert_array_equal(wrapper.observation(one), flatten_observation(space, episode.observations)[t])


# ----- Minari reader -----


def test_minari_every_episode_is_aligned(minari_antmaze):
    root, space, episodes = minari_antmaze
    data = read_minari("test/antmaze-v0", space, ("success",))
    assert len(data["rewards"]) == sum(len(ep.actions) for ep in episodes) == 23 + 9 + 31
    start = 0
    for episode in episodes:  # every episode, not only the first
        n = len(episode.actions)
        obs = flatten_observation(space, episode.observations)
        np.testing.assert_array_equal(data["observations"][start : start + n], obs[:-1])
        np.testing.assert_array_equal(data["next_observations"][start : start + n], obs[1:])
        np.testing.assert_array_equal(data["actions"][start : start + n], episode.actions)
        np.testing.assert_array_equal(data["rewards"][start : start + n], episode.rewards)
        np.testing.assert_array_equal(data["infos/success"][start : start + n], episode.infos["success"][1:])
        assert data["timeouts"][start + n - 1] and not data["timeouts"][start : start + n - 1].any()
        start += n
    # The reset observation of episode k+1 is never the next observation of episode k.
    boundary = np.flatnonzero(data["timeouts"][:-1])
    assert np.all(np.any(data["next_observations"][boundary] != data["observations"][boundary + 1], axis=1))


def test_missing_minari_id_names_the_id_and_the_download_command(minari_antmaze):
    with pytest.raises(DatasetError) as err:
        read_minari("D4RL/antmaze/large-diverse-v1")
    text = _one_line(err)
    assert "'D4RL/antmaze/large-diverse-v1'" in text and "minari download D4RL/antmaze/large-diverse-v1" in text


def test_corrupt_minari_dataset_is_a_one_line_error(minari_antmaze, tmp_path, monkeypatch):
    import shutil
    from pathlib import Path

    root = Path(minari_antmaze[0])
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    shutil.copytree(root / "test" / "antmaze-v0", tmp_path / "test" / "broken-v0")
    (tmp_path / "test" / "broken-v0" / "data" / "main_data.hdf5").write_bytes(b"garbage")
    with pytest.raises(DatasetError) as err:
        read_minari("test/broken-v0")
    assert "broken-v0" in _one_line(err) and "again" in str(err.value)


# ----- D4RL reader -----


def _write(path, **arrays):
    with h5py.File(path, "w") as file:
        for key, values in arrays.items():
            file.create_dataset(key, data=values)
    return str(path)


def _toy(n=10, obs_dim=3, act_dim=2, timeouts=(4,), terminals=(7,)):
    observations = np.arange(n * obs_dim, dtype=np.float32).reshape(n, obs_dim)
    t = np.zeros(n, bool)
    t[list(timeouts)] = True
    d = np.zeros(n, bool)
    d[list(terminals)] = True
    return dict(
        observations=observations,
        actions=np.zeros((n, act_dim), np.float32),
        rewards=np.arange(n, dtype=np.float32),
        terminals=d,
        timeouts=t,
    )


def test_d4rl_without_next_observations_drops_rows_with_no_successor(tmp_path):
    data = read_d4rl(_write(tmp_path / "toy.hdf5", **_toy()))
    # Row 4 (time-out) and row 9 (last) have no next observation and are dropped; row 7 is terminal, kept.
    np.testing.assert_array_equal(data["rewards"], [0, 1, 2, 3, 5, 6, 7, 8])
    toy = _toy()
    kept = [0, 1, 2, 3, 5, 6, 7, 8]
    np.testing.assert_array_equal(data["next_observations"], toy["observations"][np.array(kept) + 1])
    np.testing.assert_array_equal(np.flatnonzero(data["timeouts"]), [3, 7])  # rows before the dropped ones
    np.testing.assert_array_equal(np.flatnonzero(data["terminals"]), [6])


def test_d4rl_with_next_observations_keeps_every_row(tmp_path):
    toy = _toy()
    toy["next_observations"] = toy["observations"] + 100
    data = read_d4rl(_write(tmp_path / "toy.hdf5", **toy))
    np.testing.assert_array_equal(data["next_observations"], toy["next_observations"])
    np.testing.assert_array_equal(data["timeouts"], toy["timeouts"])


def test_d4rl_reads_requested_infos(tmp_path):
    toy = _toy()
    data = read_d4rl(
        _write(tmp_path / "toy.hdf5", **toy, **{"infos/goal_achieved": np.arange(10) % 2 == 0}),
        info_keys=("goal_achieved", "absent"),
    )
    np.testing.assert_array_equal(data["infos/goal_achieved"], [True, False, True, False, False, True, False, True])
    assert "infos/absent" not in data


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing", "no such file"),
        ("not_hdf5", "not a readable HDF5 file"),
        ("truncated", "not a readable HDF5 file"),
        ("missing_key", "field 'timeouts' is missing"),
        ("empty", "empty"),
        ("ragged", "field 'actions' has 9 rows but rewards has 10"),
    ],
)
def test_bad_d4rl_files_are_one_line_errors_naming_the_file(case, expected, tmp_path):
    path = tmp_path / "bad.hdf5"
    toy = _toy()
    if case == "not_hdf5":
        path.write_text("observations,actions\n1,2\n")
    elif case == "truncated":
        _write(path, **_toy(n=20_000))
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    elif case == "missing_key":
        del toy["timeouts"]
        _write(path, **toy)
    elif case == "empty":
        _write(path, **{k: v[:0] for k, v in toy.items()})
    elif case == "ragged":
        toy["actions"] = toy["actions"][:9]
        _write(path, **toy)
    with pytest.raises(DatasetError) as err:
        read_d4rl(path)
    text = _one_line(err)
    assert str(path) in text and expected in text


# ----- checks against the environment -----


@pytest.fixture(scope="module")
def point_env():
    return tasks.get_task("pointmaze-umaze").make_env(0)


def _valid(n=6):
    rng = np.random.default_rng(0)
    return dict(
        observations=rng.normal(size=(n, 4)).astype(np.float32),
        actions=rng.uniform(-1, 1, (n, 2)),
        rewards=np.zeros(n),
        next_observations=rng.normal(size=(n, 4)),
        terminals=np.zeros(n, bool),
        timeouts=np.eye(n, dtype=bool)[-1],
    )


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("observations", np.nan, "field 'observations' has 1 NaN or infinite values (first at row 2)"),
        ("rewards", np.inf, "field 'rewards' has 1 NaN or infinite values"),
        ("next_observations", -np.inf, "field 'next_observations' has 1 NaN or infinite values"),
        (
            "actions",
            1.5,
            "field 'actions' has 1 rows outside the action bounds [-1, 1] (first: row 2, dimension 0, value 1.5)",
        ),
    ],
)
def test_bad_values_are_one_line_errors(field, value, expected, point_env):
    data = _valid()
    data[field] = np.array(data[field], np.float64)
    data[field][(2, 0) if data[field].ndim == 2 else 2] = value
    with pytest.raises(DatasetError) as err:
        check_transitions(data, point_env, "my.hdf5")
    assert _one_line(err).startswith("my.hdf5: " + expected)


def test_shape_mismatch_names_field_and_environment(point_env):
    data = _valid()
    data["observations"] = np.zeros((6, 29), np.float32)
    with pytest.raises(DatasetError) as err:
        check_transitions(data, point_env, "ant.hdf5")
    text = _one_line(err)
    assert "field 'observations' has shape (6, 29)" in text and "PointMaze_UMaze-v3 needs (6, 4)" in text
    data = _valid()
    data["actions"] = np.zeros((6, 8), np.float32)
    with pytest.raises(DatasetError, match="field 'actions' has shape"):
        check_transitions(data, point_env, "ant.hdf5")


def test_empty_and_float_noise_outside_bounds(point_env):
    empty = {k: v[:0] for k, v in _valid().items()}
    with pytest.raises(DatasetError, match="empty"):
        check_transitions(empty, point_env, "x")
    data = _valid()
    data["actions"][0, 0] = 1.0 + 1e-6  # float noise: clipped, not rejected
    out = check_transitions(data, point_env, "x")
    assert out["actions"].max() <= 1.0 and out["actions"].dtype == np.float32


def test_shape_mismatch_through_bind(tmp_path):
    path = _write(tmp_path / "pen.hdf5", **_toy(n=12, obs_dim=45, act_dim=24))
    task = binding.bind(tasks.get_task("antmaze-umaze"), path)
    with pytest.raises(DatasetError, match=r"field 'observations' has shape \(10, 45\)"):
        task.load_dataset(1, 0)


def test_unsupported_source_kinds_are_one_line_errors():
    with pytest.raises(DatasetError, match="task antmaze-umaze has no built-in dataset"):
        binding.bind(tasks.get_task("antmaze-umaze"), "builtin")
    with pytest.raises(DatasetError, match="cannot read a D4RL HDF5 file"):
        binding.bind(tasks.get_task("pointmaze-umaze"), "x.hdf5")
    assert binding.bind(tasks.get_task("pointmaze-umaze"), "") is tasks.get_task("pointmaze-umaze")
    assert Source("minari", "a/b-v0").ref == "a/b-v0"


# ----- size -----


def test_a_large_d4rl_file_loads_whole_with_its_timeouts_dropped(tmp_path):
    """A file of 100k transitions in 1000-step episodes (the 1M-transition speed is measured by
    benchmarks/scale.py, never timed here)."""
    n = 100_000
    rng = np.random.default_rng(0)
    timeouts = np.zeros(n, bool)
    timeouts[999::1000] = True
    path = _write(
        tmp_path / "big.hdf5",
        observations=rng.normal(size=(n, 29)).astype(np.float32),
        actions=rng.uniform(-1, 1, (n, 8)).astype(np.float32),
        rewards=np.zeros(n, np.float32),
        terminals=np.zeros(n, bool),
        timeouts=timeouts,
    )
    env = antmaze.make_env("umaze", "d4rl")
    data = check_transitions(read_d4rl(path), env, path)
    assert len(data["rewards"]) == n - n // 1000
