"""Faults a user hits, each ending in one line and a non-zero exit with nothing lost."""

import errno
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from processes import interruptible

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
    process = subprocess.Popen(interruptible(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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


# ----- file-system faults -----

SHORT = [*RUN[: RUN.index("--offline-steps")], "--offline-steps", "300", *RUN[RUN.index("--online-steps") :]]
SHORT[SHORT.index("--checkpoint-every") + 1] = "100"


def test_a_full_disk_stops_the_run_in_one_line_and_the_run_starts_again_when_resumed(tmp_path):
    assert main(["datasets", "generate", "pointmaze-umaze", "--size", "5000"]) == 0  # before the limit applies
    run_dir = tmp_path / "r"
    command = [sys.executable, "-m", "calql.cli", "train", *SHORT, "--run-dir", str(tmp_path), "--run-name", "r"]
    # RLIMIT_FSIZE of 16 KB (set by the shell: no fork from this multithreaded process): config.json
    # and the first metrics rows fit, the first checkpoint's files do not.
    limited = ["bash", "-c", 'ulimit -f 16 && exec "$@"', "limited", *command]
    done = subprocess.run(limited, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert "cannot write checkpoint 100" in done.stderr and "file-size limit" in done.stderr
    assert f"`calql train --resume {run_dir}` starts it again" in done.stderr
    checkpoints = run_dir / "checkpoints"
    assert not list(checkpoints.glob("*.orbax-checkpoint-tmp*"))  # nothing half-written left behind
    assert (run_dir / "config.json").is_file()
    (checkpoints / "200.orbax-checkpoint-tmp").mkdir()  # as if killed during its first checkpoint write
    assert main(["train", "--resume", str(run_dir)]) == 0  # space back: the run starts again and ends
    assert (run_dir / "summary.json").is_file() and not list(checkpoints.glob("*.orbax-checkpoint-tmp*"))


def test_a_file_where_the_run_folder_should_be_is_refused_and_left_alone(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    assert main(["train", *SHORT, "--run-dir", str(notes)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--run-dir {notes}" in err and "a file stands where a folder is needed" in err
    assert notes.read_text() == "mine"


def test_an_unwritable_run_folder_is_refused_in_one_line_and_removed_again(tmp_path, capsys, monkeypatch):
    # As root (CI) a read-only folder is still writable, so the fault is injected where the run
    # folder is first written.
    from calql.training import opening

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "r" / "config.json"))

    monkeypatch.setattr(opening, "RunLog", read_only)
    assert main(["train", *SHORT, "--run-dir", str(tmp_path), "--run-name", "r"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot set up the run folder" in err and "read-only" in err
    assert not (tmp_path / "r").exists()  # the same command can simply be run again


@pytest.mark.parametrize(
    "error, expected",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "the disk is full"),
        (OSError(errno.EACCES, "Permission denied"), "permission denied"),
        (ValueError("Failed to write 559 bytes to file 8: File too large [os_error_code='27']"), "file-size limit"),
        (ValueError("an unrelated bug"), None),
    ],
)
def test_file_system_faults_are_recognised_by_their_errno(error, expected):
    from calql.errors import storage_error

    fault = storage_error(error, "runs/x: cannot write")
    assert (fault is None) if expected is None else (expected in str(fault) and str(fault).startswith("runs/x"))


# ----- run names -----


def test_several_seeds_with_a_run_name_get_a_folder_each_and_a_rerun_is_refused_before_anything_is_made(
    tmp_path, capsys
):
    tiny = [*SHORT, "--online-steps", "100", "--run-dir", str(tmp_path), "--run-name", "x", "--seeds", "3", "4"]
    assert main(["train", *tiny]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x-s3", "x-s4"]
    assert all((tmp_path / name / "summary.json").is_file() for name in ("x-s3", "x-s4"))
    capsys.readouterr()
    assert main(["train", *tiny]) == 2
    assert "x-s3 already holds a run" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x-s3", "x-s4"]


def test_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path):
    from calql.training.opening import _claim_free_folder

    wanted = tmp_path / "pointmaze-umaze-calql-s0-20261202-083000"
    assert [_claim_free_folder(wanted).name for _ in range(3)] == [wanted.name, f"{wanted.name}-2", f"{wanted.name}-3"]


# ----- options that cannot go together -----


def test_preset_with_resume_says_why_it_is_refused(tmp_path, capsys):
    assert main(["train", "--preset", "pointmaze", "--resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--preset cannot be combined with --resume" in err


def test_a_folder_given_as_dataset_is_named_as_a_folder(tmp_path, capsys):
    assert main(["train", "--dataset", str(tmp_path)]) == 2
    assert f"--dataset {tmp_path}: a folder" in capsys.readouterr().err


@pytest.mark.parametrize("name, message", [("out.avi", "unknown format '.avi'"), ("taken.gif", "the file exists")])
def test_a_video_that_cannot_be_written_is_refused_before_the_evaluation(tmp_path, capsys, name, message):
    (tmp_path / "taken.gif").write_bytes(b"a user's file")
    assert main(["eval", str(tmp_path), "--video", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert (tmp_path / "taken.gif").read_bytes() == b"a user's file"
