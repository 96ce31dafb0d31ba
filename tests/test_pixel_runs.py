"""The built-in pixel task end to end: its dataset in `calql datasets`, a run that SIGKILLed mid
fine-tuning resumes to the same metrics and parameters, checkpoints keep the uint8 frame buffer,
and `calql eval --video` records the observation frames."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from calql.agent.state import new_agent
from calql.cli import main
from calql.commands import datasets
from calql.config import config_from_dict
from calql.envs import pixelmaze
from calql.options import parse_train_args
from calql.training import checkpoint
from calql.training.loop import train
from calql.training.metrics import read_config

TASK = "pointmaze-umaze-narrow-pixels"
TINY = [
    "--task", TASK, "--offline-steps", "40", "--online-steps", "700", "--eval-episodes", "1",
    "--eval-every", "350", "--offline-eval-every", "40", "--start-evals", "0", "--updates-per-call", "10",
    "--batch-size", "16", "--checkpoint-every", "100", "--keep-checkpoints", "20", "--no-tensorboard",
    "--agent.critic-hidden-dims", "8", "--agent.policy-hidden-dims", "8", "--agent.num-sampled-actions", "2",
    "--agent.encoder-channels", "4", "4", "--agent.encoder-strides", "2", "2", "--agent.encoder-features", "8",
]  # fmt: skip


def test_the_pixel_dataset_is_listed_and_described_with_its_image_shape(capsys):
    assert datasets.main(["generate", TASK]) == 0
    assert "transitions (seed 0)" in capsys.readouterr().out
    assert datasets.main(["list"]) == 0
    out = capsys.readouterr().out
    assert TASK in out and pixelmaze.narrow_dataset_id("umaze", 0) in out
    assert datasets.main(["info", TASK]) == 0
    out = capsys.readouterr().out
    size = pixelmaze.IMAGE_SIZE
    assert f"{size}x{size}x3 uint8 images / 2 floats" in out and f"observations ({size}, {size}, 3)" in out


def test_the_cached_pixel_dataset_holds_exactly_the_generated_frames():
    generated = pixelmaze.load_or_generate_narrow("umaze", seed=3)  # generated (and cached) now
    cached = pixelmaze.load_or_generate_narrow("umaze", seed=3)  # read back
    for field in ("observations", "next_observations", "actions", "rewards"):
        np.testing.assert_array_equal(generated[field], cached[field])  # lossless (no JPEG)


def test_the_renderer_draws_the_ball_where_it_is():
    frames = pixelmaze.render("umaze", np.array([[0.0, -1.0, 0.0, 0.0], [1.0, -1.0, 0.0, 0.0]]))
    assert frames.shape == (2, 32, 32, 3) and frames.dtype == np.uint8
    columns = [np.unravel_index(np.argmax(frame[..., 1]), frame.shape[:2])[1] for frame in frames]
    assert columns[1] - columns[0] == pytest.approx(32 / 5, abs=1)  # one cell (1 m) to the right


def _final(run_dir: Path, channels: int = 3):
    config = config_from_dict(read_config(run_dir))
    template = new_agent("calql", jax.random.PRNGKey(0), (32, 32, channels), 2, config.agent)
    mgr = checkpoint.manager(run_dir, 20)
    agent, arrays, meta = checkpoint.restore_latest(mgr, template)
    mgr.close()
    return agent, arrays, meta


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uninterrupted")
    return Path(train(parse_train_args([*TINY, "--run-dir", str(folder)])).run_dir)


def test_checkpoints_keep_the_frame_buffer_as_uint8_frames(uninterrupted):
    _, arrays, meta = _final(uninterrupted)
    size = int(arrays["size"])
    assert size >= 700 and arrays["frames"].dtype == np.uint8 and arrays["frames"].shape[1:] == (32, 32, 3)
    episodes = len(meta["counters"]["online_successes"])
    assert len(arrays["frames"]) == size + episodes  # one frame per step plus one per episode
    assert "observations" not in arrays  # no float copy of the frames


def test_a_sigkilled_pixel_run_resumes_to_the_same_metrics_and_parameters(uninterrupted, tmp_path):
    command = [sys.executable, "-m", "calql.cli", "train", *TINY, "--run-dir", str(tmp_path)]
    process = subprocess.Popen(command, env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and process.poll() is None:  # kill it mid fine-tuning
        steps = [int(p.name) for p in tmp_path.glob("*/checkpoints/*") if p.name.isdigit()]
        if steps and max(steps) >= 300:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed; make TINY longer"
    process.send_signal(signal.SIGKILL)
    process.wait()
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert not (run_dir / "summary.json").exists()
    assert main(["train", "--resume", str(run_dir)]) == 0
    resumed, resumed_arrays, _ = _final(run_dir)
    reference, reference_arrays, _ = _final(uninterrupted)
    for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(reference), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(resumed_arrays["frames"], reference_arrays["frames"])
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in (uninterrupted / "metrics.jsonl").read_text().splitlines()]
    assert rows == expected


def test_eval_video_records_the_observed_frames(uninterrupted, tmp_path):
    video = tmp_path / "episodes.gif"
    command = [sys.executable, "-m", "calql.cli", "eval", str(uninterrupted), "--episodes", "1", "--video", str(video)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    import imageio.v2 as imageio

    frames = imageio.mimread(video)
    assert len(frames) >= 2 and frames[0].shape[:2] == (256, 256)  # 32x32 observations, enlarged 8x


def test_learners_without_an_encoder_are_refused_on_pixels_in_one_line(tmp_path, capsys):
    assert main(["train", *TINY, "--algo", "iql", "--run-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--algo iql" in err and "image observations" in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_the_stacked_pixel_task_stores_single_frames_and_trains_on_stacks_of_three(tmp_path):
    options = [*TINY, "--offline-steps", "20", "--online-steps", "300", "--eval-every", "300"]
    options[options.index(TASK)] = f"{TASK}-stacked"
    run_dir = Path(train(parse_train_args([*options, "--checkpoint-every", "0", "--run-dir", str(tmp_path)])).run_dir)
    _, arrays, _ = _final(run_dir, channels=9)
    assert arrays["frames"].shape[1:] == (32, 32, 3) and arrays["observation_rows"].shape[1] == 3
    np.testing.assert_array_equal(arrays["observation_rows"][0], [0, 0, 0])  # the first frame, repeated
