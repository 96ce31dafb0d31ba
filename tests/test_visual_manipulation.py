"""Visual manipulation (OGBench's visual single-task environments): OGBench's .npz layout read and
relabelled with its frames kept uint8, one-line errors for bad files, the generated frames, the
rendering default and its one-line failure, and a tiny `calql train --task visual-cube-single`.

Every rendered frame costs a fraction of a second on CPUs: sizes here are a few dozen frames."""

import dataclasses
import functools
import json
import math
import os

import numpy as np
import pytest

pytest.importorskip("ogbench")

from calql import cli  # noqa: E402
from calql.data.sources import DatasetError, parse_source, read_ogbench  # noqa: E402
from calql.envs import binding, tasks, visual_manipulation  # noqa: E402

TARGET = np.array([0.5, 0.0, 0.02])
"""Where cube-single's default task wants the cube (its env's mocap target)."""
CUBE = slice(14, 17)
"""The cube's xyz in OGBench's qpos (relabel_dataset's layout)."""
TINY = [
    "--dataset-size", "20", "--offline-steps", "20", "--online-steps", "20", "--eval-episodes", "1",
    "--eval-every", "20", "--start-evals", "0",
    "--updates-per-call", "10", "--batch-size", "8", "--checkpoint-every", "0", "--no-tensorboard",
    "--agent.critic-hidden-dims", "8", "--agent.policy-hidden-dims", "8", "--agent.num-sampled-actions", "2",
    "--agent.encoder-channels", "4", "4", "--agent.encoder-strides", "2", "2", "--agent.encoder-features", "8",
]  # fmt: skip


@pytest.fixture
def rendering():
    problem = visual_manipulation.rendering_problem()
    if problem is not None:
        pytest.skip(f"offscreen rendering unavailable here: {problem}")


def ogbench_arrays(size: int = 64, dtype=np.uint8, states: int = 8) -> dict[str, np.ndarray]:
    """OGBench's layout: two trajectories of 4 states (the last of each marked terminal), each frame
    filled with its row number; the cube on the target at rows 2 and 5 (successes), elsewhere away."""
    rows = np.arange(states)
    qpos = np.zeros((states, 21))
    qpos[:, CUBE] = [0.3, 0.2, 0.02]
    qpos[[2, 5], CUBE] = TARGET
    return {
        "observations": np.broadcast_to(rows[:, None, None, None], (states, size, size, 3)).astype(dtype),
        "actions": np.linspace(-0.5, 0.5, states * 5).reshape(states, 5).astype(np.float32),
        "terminals": (rows % 4 == 3).astype(np.float32),
        "qpos": qpos,
        "qvel": np.zeros((states, 20)),
        "button_states": np.zeros((states, 0), np.int64),
    }


def write_npz(path, arrays: dict[str, np.ndarray]) -> str:
    np.savez(path, **arrays)
    return str(path)


def test_npz_files_are_ogbench_sources_and_name_their_task():
    assert parse_source("data/visual-cube-single-play-v0.npz").kind == "ogbench"
    assert tasks.guess_task("data/visual-cube-single-play-v0.npz") == "visual-cube-single"
    assert tasks.guess_task("puzzle-3x3-play-v0.npz") == "puzzle-3x3"
    assert tasks.get_task("visual-cube-single").preset == "visual-manipulation"


def test_the_ogbench_visual_layout_loads_relabelled_with_uint8_frames(rendering, tmp_path):
    path = write_npz(tmp_path / "visual-cube-single-play-v0.npz", ogbench_arrays())
    data = binding.bind(tasks.get_task("visual-cube-single"), path).load_dataset(1, 0)
    steps = np.array([0, 1, 2, 4, 5, 6])  # rows that are not a trajectory's final state
    assert data["observations"].dtype == np.uint8 and data["observations"].shape == (6, 64, 64, 3)
    np.testing.assert_array_equal(data["observations"][:, 0, 0, 0], steps)
    np.testing.assert_array_equal(data["next_observations"][:, 0, 0, 0], steps + 1)
    assert not any(np.asarray(v).ndim == 4 and np.asarray(v).dtype != np.uint8 for v in data.values())
    np.testing.assert_array_equal(data["rewards"], [-1, -1, 0, -1, 0, -1])  # success where the cube is on target
    np.testing.assert_array_equal(data["terminals"], data["rewards"] == 0)
    np.testing.assert_array_equal(np.flatnonzero(data["timeouts"]), [2, 5])  # the steps into final states
    np.testing.assert_allclose(data["actions"], ogbench_arrays()["actions"][steps])


def test_a_vector_ogbench_file_loads_for_the_state_task(tmp_path):
    arrays = ogbench_arrays()
    arrays["observations"] = np.random.default_rng(0).normal(size=(8, 28)).astype(np.float32)
    data = binding.bind(tasks.get_task("cube-single"), write_npz(tmp_path / "cube.npz", arrays)).load_dataset(1, 0)
    np.testing.assert_array_equal(data["next_observations"][0], arrays["observations"][1])
    np.testing.assert_array_equal(data["rewards"], [-1, -1, 0, -1, 0, -1])


def _without(key):
    return lambda arrays: {k: v for k, v in arrays.items() if k != key}


@pytest.mark.parametrize(
    "damage, words",
    [
        (None, "no such file"),
        (_without("actions"), "field 'actions' is missing"),
        (_without("qpos"), "field 'qpos' is missing"),
        (lambda arrays: {**arrays, "terminals": arrays["terminals"][:5]}, "field 'terminals' has 5 rows"),
        (lambda arrays: {**arrays, "observations": arrays["observations"] / 255.0}, "float64 images"),
    ],
)
def test_bad_ogbench_files_fail_in_one_line_naming_the_file_and_field(tmp_path, damage, words):
    path = tmp_path / "visual-cube-single-play-v0.npz"
    if damage is not None:
        write_npz(path, damage(ogbench_arrays(size=8)))
    with pytest.raises(DatasetError) as error:
        read_ogbench(path, ("qpos",))
    message = str(error.value)
    assert words in message and str(path) in message and len(message.splitlines()) == 1


def test_frames_of_another_size_than_the_environments_fail_in_one_line(rendering, tmp_path):
    path = write_npz(tmp_path / "small.npz", ogbench_arrays(size=32))
    with pytest.raises(DatasetError) as error:
        binding.bind(tasks.get_task("visual-cube-single"), path).load_dataset(1, 0)
    message = str(error.value)
    assert "small.npz" in message and "'observations'" in message and "64, 64, 3" in message
    assert len(message.splitlines()) == 1


def test_generated_play_data_holds_the_rendered_frames(rendering):
    data = visual_manipulation.generate_dataset("cube-single", 10, seed=0, episode_length=5)
    assert data["observations"].shape == (10, 64, 64, 3) and data["observations"].dtype == np.uint8
    np.testing.assert_array_equal(data["next_observations"][:4], data["observations"][1:5])
    np.testing.assert_array_equal(np.flatnonzero(data["timeouts"]), [4, 9])
    assert data["observations"].std() > 10  # a scene, not a blank frame
    assert set(np.unique(data["rewards"])) <= {-1.0, 0.0}


def test_a_rendering_failure_is_one_line_naming_mujoco_gl(monkeypatch, capsys):
    monkeypatch.setattr(visual_manipulation, "rendering_problem", lambda: "MuJoCo cannot render offscreen (test)")
    with pytest.raises(visual_manipulation.RenderingError, match="set MUJOCO_GL=egl"):
        visual_manipulation.make_env("cube-single")
    assert cli.main(["datasets", "generate", "visual-cube-single", "--size", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("calql: error:") and "MUJOCO_GL=egl" in err and len(err.splitlines()) == 1


def test_the_command_line_picks_egl_for_visual_tasks_only_when_unset(monkeypatch):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    cli.default_rendering_backend(["train", "--task", "pointmaze-umaze"])
    assert "MUJOCO_GL" not in os.environ
    cli.default_rendering_backend(["train", "--task", "visual-cube-single"])
    assert os.environ.get("MUJOCO_GL") == ("egl" if cli.ctypes.util.find_library("EGL") else None)
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    cli.default_rendering_backend(["eval", "runs/visual-cube-single-calql-s0"])
    assert os.environ["MUJOCO_GL"] == "osmesa"


def test_a_tiny_visual_cube_single_run_finishes(rendering, tmp_path, monkeypatch):
    """`calql train --task visual-cube-single` with tiny networks, the task's time limit cut to 10
    steps so that its episodes (online and evaluation) render a few frames, not 200."""
    task = tasks.get_task("visual-cube-single")
    short = functools.partial(visual_manipulation.make_env, "cube-single", max_episode_steps=10)
    monkeypatch.setitem(tasks.TASKS, task.name, dataclasses.replace(task, make_env=short))
    assert cli.main(["train", "--task", task.name, *TINY, "--run-dir", str(tmp_path)]) == 0
    (run_dir,) = tmp_path.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["offline"]["step"] == 20 and summary["regret"] is not None  # both phases ran
    assert math.isfinite(summary["final"]["normalized_score"])
