"""AWAC-layout .npy files (the Cal-QL authors' Adroit data): reading, the authors' truncation, errors."""

import numpy as np
import pytest
from domain_helpers import offline_returns

from calql.data import sources
from calql.data.awac import read_awac
from calql.envs import binding, tasks

OBS, ACT = 45, 24  # AdroitHandPen-v1


def _obs(trajectory_id, steps, dim=OBS):
    """Rows whose first value is 100 * trajectory + step, so kept rows can be named."""
    rows = np.full((steps + 1, dim), 0.01, np.float32)
    rows[:, 0] = 100 * trajectory_id + np.arange(steps + 1)
    return rows


def expert_trajectory(trajectory_id, rewards, dim=OBS):
    """An expert demo as AWAC stores it: per-step observation dicts and one surplus reward."""
    steps = len(rewards)
    rows = _obs(trajectory_id, steps, dim)
    return {
        "observations": [{"state_observation": row, "desired_goal": np.zeros(3)} for row in rows[:-1]],
        "next_observations": [{"state_observation": row, "desired_goal": np.zeros(3)} for row in rows[1:]],
        "actions": [np.full(ACT, 0.1, np.float32) for _ in range(steps)],
        "rewards": np.array([*rewards, -1.0]),
        "terminals": [False] * steps,
        "agent_infos": [{} for _ in range(steps)],
        "env_infos": [{"goal_achieved": r == 0} for r in rewards],
    }


def bc_trajectory(trajectory_id, rewards, dim=OBS):
    """A behaviour-cloned rollout as AWAC stores it: plain arrays, rewards and terminals of shape (N, 1)."""
    steps = len(rewards)
    rows = _obs(trajectory_id, steps, dim)
    return {
        "observations": rows[:-1],
        "next_observations": rows[1:],
        "actions": np.full((steps, ACT), -0.2),
        "rewards": np.asarray(rewards, np.float64)[:, None],
        "terminals": np.zeros((steps, 1), bool),
        "agent_infos": [{} for _ in range(steps)],
        "env_infos": [{} for _ in range(steps)],
    }


def save(path, trajectories):
    array = np.empty(len(trajectories), dtype=object)
    array[:] = trajectories
    np.save(path, array)
    return str(path)


# Trajectory 0: successes at 2, 3, then failures (cut after 3); 1: never succeeds (dropped);
# 2: successes at 1 and 3 (cut after 3); 3: ends in a success (kept whole).
EXPERT = [[-1, -1, 0, 0, -1, -1], [-1, -1, -1, -1]]
BC = [[-1, 0, -1, 0, -1], [-1, -1, 0]]


@pytest.fixture
def awac_files(tmp_path):
    expert = save(tmp_path / "pen2_sparse.npy", [expert_trajectory(i, r) for i, r in enumerate(EXPERT)])
    bc = save(tmp_path / "pen_bc_sparse4.npy", [bc_trajectory(2 + i, r) for i, r in enumerate(BC)])
    return expert, bc


def _load(spec, task="pen-binary", **kwargs):
    return binding.bind(tasks.get_task(task), spec, **kwargs).load_dataset(1, 0)


def _one_line_error(spec, match, task="pen-binary"):
    with pytest.raises(sources.DatasetError, match=match) as err:
        _load(spec, task)
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_parse_source_reads_comma_separated_npy_lists(tmp_path):
    source = sources.parse_source(" data/pen2_sparse.npy , ~/pen_bc_sparse4.npy ")
    assert source.kind == "awac" and source.ref.split(",")[0] == "data/pen2_sparse.npy"
    assert not source.ref.split(",")[1].startswith("~")
    assert sources.parse_source("one.npy").kind == "awac"
    with pytest.raises(sources.DatasetError, match="'b.hdf5' is not a .npy file"):
        sources.parse_source("a.npy,b.hdf5")


def test_awac_files_load_truncated_after_the_last_success(awac_files):
    data = _load(",".join(awac_files))
    assert data["observations"].shape == (11, OBS) and data["next_observations"].shape == (11, OBS)
    assert data["actions"].shape == (11, ACT) and data["observations"].dtype == np.float32
    np.testing.assert_array_equal(data["observations"][:, 0], [0, 1, 2, 3, 200, 201, 202, 203, 300, 301, 302])
    np.testing.assert_array_equal(data["next_observations"][:, 0], data["observations"][:, 0] + 1)
    np.testing.assert_array_equal(data["rewards"], [-1, -1, 0, 0, -1, 0, -1, 0, -1, -1, 0])
    np.testing.assert_array_equal(data["terminals"], data["rewards"] == 0)  # every success is terminal
    assert not data["timeouts"].any()  # the cuts end in a success: no time-out remains there
    np.testing.assert_allclose(data["actions"][:4], 0.1)
    np.testing.assert_allclose(data["actions"][4:], -0.2)
    # calql's transform {-1, 0} -> {-5, +5} applies once, and returns stop at each success.
    transitions = offline_returns(tasks.get_task("pen-binary"), data)
    np.testing.assert_array_equal(transitions.rewards[:4], [-5, -5, 5, 5])
    np.testing.assert_allclose(transitions.reference[:4], [-5 + 0.99 * (-5 + 0.99 * 5), -5 + 0.99 * 5, 5, 5], rtol=1e-6)


def test_without_the_filter_every_trajectory_stays(awac_files):
    data = _load(",".join(awac_files), filter_dataset=False)
    assert len(data["rewards"]) == sum(map(len, EXPERT + BC)) == 18
    assert set(np.unique(data["rewards"])) == {-1.0, 0.0}
    np.testing.assert_array_equal(data["terminals"], data["rewards"] == 0)
    # Trajectories 0-2 end without a success (time-outs); 3 ends at a success (terminal).
    np.testing.assert_array_equal(np.flatnonzero(data["timeouts"]), [5, 9, 14])


def test_one_file_and_dict_of_arrays_observations(tmp_path):
    trajectory = bc_trajectory(0, [-1, 0])
    trajectory["observations"] = {"state_observation": trajectory["observations"]}
    path = save(tmp_path / "one.npy", [trajectory])
    data = read_awac(path)
    np.testing.assert_array_equal(data["infos/success"], [False, True])
    assert data["observations"].shape == (2, OBS) and data["terminals"].tolist() == [False, True]
    assert _load(path)["rewards"].tolist() == [-1.0, 0.0]


def test_missing_file_names_it(awac_files, tmp_path):
    text = _one_line_error(f"{tmp_path / 'nope.npy'},{awac_files[1]}", "no such file")
    assert "nope.npy" in text


def test_trajectory_missing_actions(tmp_path, awac_files):
    trajectory = expert_trajectory(0, [-1, 0])
    del trajectory["actions"]
    path = save(tmp_path / "broken.npy", [trajectory])
    text = _one_line_error(f"{awac_files[0]},{path}", "trajectory 0: key 'actions' is missing")
    assert "broken.npy" in text


def test_wrong_observation_dimension_names_the_file_and_the_env(tmp_path):
    path = save(tmp_path / "door2_sparse.npy", [expert_trajectory(0, [-1, 0], dim=39)])
    text = _one_line_error(path, "has 39 values per step but AdroitHandPen-v1's observations have 45")
    assert "door2_sparse.npy" in text and "check --task" in text


@pytest.mark.parametrize(
    "content, match",
    [
        (lambda p: np.save(p, np.zeros((3, 45))), "holds a float64 array of shape \\(3, 45\\), not a pickled object"),
        (lambda p: p.write_bytes(b"not numpy at all"), "not a readable pickled NumPy object array"),
        (lambda p: save(p, ["a", "b"]), "trajectory 0: is a str, not a dict"),
        (lambda p: save(p, []), "holds no trajectories"),
    ],
)
def test_not_an_object_array_of_dicts(tmp_path, content, match):
    path = tmp_path / "bad.npy"
    content(path)
    assert "bad.npy" in _one_line_error(str(path), match)


@pytest.mark.parametrize(
    "change, match",
    [
        (
            lambda t: t["observations"][1].pop("state_observation"),
            "field 'observations' at step 1 has no 'state_observation'",
        ),
        (
            lambda t: t["next_observations"][0]["state_observation"].__setitem__(3, np.nan),
            "field 'next_observations' has 1 NaN",
        ),
        (lambda t: t["rewards"].__setitem__(1, 50.0), "field 'rewards' holds 50 at step 1"),
        (lambda t: t.__setitem__("actions", t["actions"][:-1]), "field 'actions' has 1 rows for 2 observations"),
        (lambda t: t.__setitem__("rewards", np.zeros(5)), "field 'rewards' has shape \\(5, 1\\) for 2 observations"),
    ],
)
def test_bad_trajectories_are_one_line_errors(tmp_path, change, match):
    trajectory = expert_trajectory(0, [-1, 0])
    trajectory["next_observations"] = [
        {k: np.array(v, copy=True) if k == "state_observation" else v for k, v in step.items()}
        for step in trajectory["next_observations"]
    ]
    change(trajectory)
    path = save(tmp_path / "bad_demo.npy", [trajectory])
    assert "bad_demo.npy, trajectory 0" in _one_line_error(path, match)


def test_other_tasks_refuse_awac_files(awac_files):
    text = _one_line_error(",".join(awac_files), "task antmaze-umaze cannot read AWAC .npy files", "antmaze-umaze")
    assert "Minari datasets" in text
