"""Checkpoints and exact resume: SIGKILL and resume ends bit-identical to an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from calql.cli import main
from calql.options import parse_train_args
from calql.training import checkpoint
from calql.training.loop import train

TINY = [
    "--task",
    "pointmaze-umaze",
    "--offline-steps",
    "300",
    "--online-steps",
    "600",
    "--dataset-size",
    "4000",
    "--eval-episodes",
    "2",
    "--eval-every",
    "200",
    "--offline-eval-every",
    "100",
    "--updates-per-call",
    "25",
    "--batch-size",
    "16",
    "--checkpoint-every",
    "100",
    "--keep-checkpoints",
    "20",
    "--agent.critic-hidden-dims",
    "8",
    "8",
    "--agent.policy-hidden-dims",
    "8",
    "8",
    "--agent.num-sampled-actions",
    "2",
]


def _only_run_dir(folder: Path) -> Path:
    (run_dir,) = [p for p in folder.iterdir() if p.is_dir()]
    return run_dir


def _final_agent(run_dir: Path):
    from calql.agent.state import create_agent
    from calql.config import config_from_dict
    from calql.training.metrics import read_config

    config = config_from_dict(read_config(run_dir))
    template = create_agent(__import__("jax").random.PRNGKey(0), 4, 2, config.agent)
    mgr = checkpoint.manager(run_dir, 20)
    agent, _, meta = checkpoint.restore_latest(mgr, template)
    mgr.close()
    return agent, meta


def _leaves(agent):
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(agent)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uninterrupted")
    result = train(parse_train_args([*TINY, "--run-dir", str(folder)]))
    return Path(result.run_dir)


def test_sigkilled_run_resumes_bit_identical(uninterrupted, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "calql.cli", "train", *TINY, "--run-dir", str(tmp_path)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    # Kill it hard once it is in the online phase with a few checkpoints behind it.
    while time.time() < deadline and process.poll() is None:
        folders = list(tmp_path.glob("*/checkpoints/*"))
        steps = [int(p.name) for p in folders if p.name.isdigit()]
        if steps and max(steps) >= 500:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed; make TINY longer"
    process.send_signal(signal.SIGKILL)
    process.wait()
    run_dir = _only_run_dir(tmp_path)
    assert not (run_dir / "summary.json").exists()
    assert main(["train", "--resume", str(run_dir)]) == 0

    resumed, resumed_meta = _final_agent(run_dir)
    reference, reference_meta = _final_agent(uninterrupted)
    for a, b in zip(_leaves(resumed), _leaves(reference), strict=True):
        np.testing.assert_array_equal(a, b)
    assert resumed_meta["counters"] == reference_meta["counters"]
    assert (run_dir / "metrics.jsonl").read_text() == (uninterrupted / "metrics.jsonl").read_text()


def test_resume_with_a_changed_network_is_refused(uninterrupted, capsys):
    code = main(["train", "--resume", str(uninterrupted), "--agent.critic-hidden-dims", "16", "16"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"calql: error: --resume {uninterrupted}: options differ")
    assert "agent.critic_hidden_dims: (8, 8) -> (16, 16)" in err and len(err.splitlines()) == 1


def test_resume_with_checkpoints_of_another_run_is_refused(uninterrupted, tmp_path, capsys):
    """config.json matches the options, but the checkpoints were copied in from a run with others."""
    import shutil

    other = train(
        parse_train_args(
            [*TINY, "--offline-steps", "50", "--online-steps", "0", "--seed", "1", "--run-dir", str(tmp_path / "other")]
        )
    )
    copy = tmp_path / "copy"
    shutil.copytree(uninterrupted, copy)
    shutil.rmtree(copy / "checkpoints")
    shutil.copytree(Path(other.run_dir) / "checkpoints", copy / "checkpoints")
    (copy / "summary.json").unlink()  # unfinished: a finished run has nothing to resume
    capsys.readouterr()
    assert main(["train", "--resume", str(copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"calql: error: --resume {copy}: checkpoint {copy / 'checkpoints' / '50'} ")
    assert "offline_steps: 50 -> 300" in err and "online_steps: 0 -> 600" in err and "seed: 1 -> 0" in err
    assert err.endswith("start a new run") and len(err.splitlines()) == 1
    assert (copy / "metrics.jsonl").read_text() == (uninterrupted / "metrics.jsonl").read_text()  # untouched


def test_resume_of_a_folder_without_a_run(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "not a calql run directory" in capsys.readouterr().err


def test_a_corrupted_newest_checkpoint_falls_back_to_the_previous_one(uninterrupted, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(uninterrupted, copy)
    steps = sorted(int(p.name) for p in (copy / "checkpoints").iterdir() if p.name.isdigit())
    newest = copy / "checkpoints" / str(steps[-1])
    for file in newest.rglob("*"):
        if file.is_file():
            file.write_bytes(b"garbage")
    agent, meta = _final_agent(copy)
    assert meta["counters"]["gradient_steps"] == steps[-2]
    warning = capsys.readouterr().err.strip()
    assert warning.startswith(f"calql: warning: checkpoint {steps[-1]} ") and "unreadable" in warning
    assert len(warning.splitlines()) == 1


def test_checkpoints_are_kept_and_pruned(tmp_path):
    result = train(parse_train_args([*TINY, "--keep-checkpoints", "2", "--run-dir", str(tmp_path)]))
    kept = [p for p in (Path(result.run_dir) / "checkpoints").iterdir() if p.name.isdigit()]
    assert len(kept) == 2


def test_tensorboard_events_are_readable(uninterrupted):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(uninterrupted / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert "offline/eval/success" in tags and "online/eval/cumulative_regret" in tags
    rows = [json.loads(line) for line in (uninterrupted / "metrics.jsonl").read_text().splitlines()]
    evals = [row for row in rows if row["phase"] == "online/eval"]
    logged = [event.value for event in events.Scalars("online/eval/cumulative_regret")]
    np.testing.assert_allclose(
        logged, [row["cumulative_regret"] for row in evals if "cumulative_regret" in row], rtol=1e-6
    )


def test_eval_reports_intervals_for_a_run_and_a_checkpoint(uninterrupted, capsys):
    assert main(["eval", str(uninterrupted), "--episodes", "3"]) == 0
    out = capsys.readouterr().out
    assert "success" in out and "normalized_score" in out and "[" in out
    steps = sorted(int(p.name) for p in (uninterrupted / "checkpoints").iterdir() if p.name.isdigit())
    assert main(["eval", str(uninterrupted / "checkpoints" / str(steps[0])), "--episodes", "2"]) == 0


def test_eval_of_a_wrong_path_is_one_line(tmp_path, capsys):
    assert main(["eval", str(tmp_path), "--episodes", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("calql: error:") and "neither a run directory" in err and len(err.splitlines()) == 1


def test_eval_estimates_use_the_reports_bootstrap_and_contain_the_mean():
    from calql.evaluation import _estimate

    values = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    mean, low, high = _estimate(values)
    assert low <= mean == values.mean() <= high and 0.0 <= low < high <= 1.0
    assert tuple(_estimate(np.ones(4))) == (1.0, 1.0, 1.0)


def test_eval_video_is_written(uninterrupted, tmp_path):
    """Rendering runs in a subprocess: MUJOCO_GL must be set before MuJoCo is first imported."""
    video = tmp_path / "episodes.gif"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "calql.cli", "eval", str(uninterrupted), "--episodes", "1", "--video", str(video)]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    if completed.returncode != 0 and "EGL" in completed.stderr:
        pytest.skip("no EGL for headless MuJoCo rendering on this machine")
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert video.stat().st_size > 1000


def test_resuming_a_finished_run_changes_nothing(uninterrupted, capsys):
    summary = (uninterrupted / "summary.json").read_text()
    metrics = (uninterrupted / "metrics.jsonl").read_text()
    assert main(["train", "--resume", str(uninterrupted)]) == 0
    out = capsys.readouterr().out.strip()
    assert out == f"{uninterrupted} is finished (it has a summary.json): nothing to resume, nothing changed"
    assert train(parse_train_args(["--resume", str(uninterrupted)])).wall_time == json.loads(summary)["wall_time"]
    assert (uninterrupted / "summary.json").read_text() == summary
    assert (uninterrupted / "metrics.jsonl").read_text() == metrics


def test_a_resumed_run_sums_wall_time_and_timers_over_its_processes(uninterrupted, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(uninterrupted, copy)
    (copy / "summary.json").unlink()
    newest = max(int(p.name) for p in (copy / "checkpoints").iterdir() if p.name.isdigit())
    shutil.rmtree(copy / "checkpoints" / str(newest))  # as if killed before its last checkpoint
    _, meta = _final_agent(copy)
    assert meta["wall_time"] > 0 and meta["timers"]["dataset"] > 0
    started = time.perf_counter()
    result = train(parse_train_args(["--resume", str(copy)]))
    this_process = time.perf_counter() - started
    assert meta["wall_time"] < result.wall_time <= meta["wall_time"] + this_process
    assert result.timers["dataset"] > meta["timers"]["dataset"]  # loaded once in each process
    assert result.timers["update"] > meta["timers"]["update"]
    assert json.loads((copy / "summary.json").read_text())["wall_time"] == result.wall_time
