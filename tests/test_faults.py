"""Faults a user hits, each ending in one line and a non-zero exit with nothing lost."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from calql.cli import main

RUN = [
    "--task", "pointmaze-umaze", "--offline-steps", "3000", "--online-steps", "300", "--dataset-size", "5000",
    "--eval-episodes", "2", "--updates-per-call", "50", "--batch-size", "32", "--checkpoint-every", "500",
    "--agent.critic-hidden-dims", "16", "16", "--agent.policy-hidden-dims", "16", "16", "--no-tensorboard",
]  # fmt: skip


def _wait_for_a_checkpoint(folder: Path, timeout: float = 240.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if folder.is_dir() and any(p.name.isdigit() for p in folder.iterdir()):
            return
        time.sleep(0.2)
    raise AssertionError(f"no checkpoint in {folder} after {timeout} s")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_says_in_one_line_what_is_saved_and_how_to_continue(signum, tmp_path):
    run_dir = tmp_path / "r"
    command = [sys.executable, "-m", "calql.cli", "train", *RUN, "--run-dir", str(tmp_path), "--run-name", "r"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_a_checkpoint(run_dir / "checkpoints")
        process.send_signal(signum)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130
    errors = [line for line in err.splitlines() if not line.startswith("generating ")]  # the dataset's first build
    assert len(errors) == 1 and "Traceback" not in err, err
    assert f"continue with `calql train --resume {run_dir}`" in err and "saved up to checkpoint" in err
    assert not list((run_dir / "checkpoints").glob("*.orbax-checkpoint-tmp*"))  # nothing half-written
    assert main(["train", "--resume", str(run_dir)]) == 0  # and the run continues to its end
    assert (run_dir / "summary.json").is_file()
