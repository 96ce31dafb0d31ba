"""`calql datasets list | generate | info` (calql.commands.datasets.main)."""

import pytest
import recording

from calql.commands.datasets import main
from calql.envs import antmaze


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("calql: error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


def test_generate_then_list_then_info(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    assert main(["generate", "pointmaze-umaze", "--size", "2500", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "2,500 transitions (seed 1)" in out and "transitions/s" in out
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "pointmaze-large" in out and "cube-single" in out
    assert "calql/pointmaze-umaze-stitch-n2500-s1-v0" in out and "2,500 transitions" in out
    assert main(["info", "pointmaze-umaze", "--size", "2500", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    for expected in (
        "transitions",
        "2,500",
        "episodes",
        "success fraction",
        "return mean",
        "matches PointMaze_UMaze-v3",
        "4 / 2 floats",
    ):
        assert expected in out, expected
    assert main(["info", "calql/pointmaze-umaze-stitch-n2500-s1-v0"]) == 0  # the cache, read as a Minari id
    assert "task pointmaze-umaze" in capsys.readouterr().out


def test_info_on_a_d4rl_file_guesses_the_task(tmp_path, capsys):
    env = antmaze.make_env("umaze", "d4rl")
    path = str(tmp_path / "antmaze-umaze-diverse-v2.hdf5")
    recording.record_d4rl(path, env, recording.random_policy(env.action_space), [20, 15])
    assert main(["info", path]) == 0
    out = capsys.readouterr().out
    assert "task antmaze-umaze-diverse" in out and "33" in out and "29 / 8 floats" in out
    assert "success fraction (episodes)        0" in out


@pytest.mark.parametrize(
    "args, expected",
    [
        (["info", "D4RL/antmaze/medium-play-v1"], "minari download D4RL/antmaze/medium-play-v1"),
        (["info", "/no/such/antmaze-umaze-v2.hdf5"], "no such file"),
        (["info", "mystery"], "add --task NAME"),
        (["info", "mystery", "--task", "nope"], "unknown task 'nope'"),
        (["generate", "antmaze-umaze"], "antmaze-umaze has no built-in dataset"),
        (["generate", "pointmaze-umaze", "--size", "0"], "--size must be >= 1"),
    ],
)
def test_bad_input_is_one_line(args, expected, capsys):
    assert main(args) == 2
    assert expected in _one_error_line(capsys)


def test_info_reports_a_mismatch_with_the_environment(tmp_path, capsys):
    env = antmaze.make_env("umaze", "d4rl")
    path = str(tmp_path / "antmaze-umaze-v2.hdf5")
    recording.record_d4rl(path, env, recording.random_policy(env.action_space), [10])
    assert main(["info", path, "--task", "pen-binary"]) == 2
    assert "field 'observations' has shape (9, 29)" in _one_error_line(capsys)


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert "usage: calql datasets" in capsys.readouterr().err
