"""Faults of `calql sweep`, each ending in one line and a non-zero exit with nothing lost: Ctrl-C
and SIGTERM, a trial killed while writing its first checkpoint (or left with none readable), a
diverging trial, bad numeric options, Ray not installed; and a local Ray that listens on loopback
only. Ray is an optional extra: nothing but `calql sweep` imports it."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from processes import interruptible

import calql
from calql.commands import sweep
from calql.errors import CalqlError
from calql.sweep.runner import RAY_HINT, SweepError, check_reachable, ray_settings, unfit_trial
from calql.sweep.spec import grid_from_spec, read_spec, trials
from calql.sweep.trial import run_trial, trial_paths, trial_state

TINY_OPTIONS = """
[options]
offline-steps = {offline}
online-steps = {online}
dataset-size = 3000
eval-episodes = 1
eval-every = 300
offline-eval-every = 100
updates-per-call = 25
batch-size = 16
checkpoint-every = 100
keep-checkpoints = 20
tensorboard = false
agent.critic-hidden-dims = [8, 8]
agent.policy-hidden-dims = [8, 8]
agent.num-sampled-actions = 2
"""
ONE_TRIAL = 'tasks = ["pointmaze-umaze"]\nmethods = ["calql"]\nseeds = [0]\n'
NAME = "pointmaze-umaze-calql-s0"
SRC = str(Path(calql.__file__).resolve().parents[1])
"""The calql being tested, for subprocesses."""


def _spec(tmp_path: Path, offline: int, online: int, extra: str = "") -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(ONE_TRIAL + TINY_OPTIONS.format(offline=offline, online=online) + extra)
    return path


def _wait_for(condition, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _has_a_finished_checkpoint(folder: Path) -> bool:
    return folder.is_dir() and any(path.name.isdigit() for path in folder.iterdir())


def _processes_of_session(driver_pid: int) -> list[str]:
    """Command lines of the live processes of the Ray session a driver started (its folder name
    ends with the driver's pid)."""
    ray_tmp = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray"
    sessions = [path.name for path in ray_tmp.glob(f"session_*_{driver_pid}")]
    assert sessions, f"no Ray session of pid {driver_pid} under {ray_tmp}"
    found = []
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # gone meanwhile, or not a process
            continue
        if sessions[0] in command:
            found.append(command)
    return found


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_sweep_says_in_one_line_what_is_saved_and_how_to_continue(signum, tmp_path):
    pytest.importorskip("ray")
    spec, out = _spec(tmp_path, offline=600, online=900), tmp_path / "sweep"
    command = [sys.executable, "-m", "calql.cli", "sweep", str(spec), "--out", str(out)]
    driver = subprocess.Popen(interruptible(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: _has_a_finished_checkpoint(out / "trials" / NAME / "checkpoints"), 240, "a checkpoint")
        driver.send_signal(signum)
        _, err = driver.communicate(timeout=180)
    finally:
        driver.kill()
    assert driver.returncode == 130  # as `calql train` (tests/test_faults.py), SIGTERM included
    errors = [line for line in err.splitlines() if not line.startswith("generating ")]  # the dataset's first build
    assert len(errors) == 1 and "Traceback" not in err, err  # no stack dump, no Ray notice
    assert errors[0].startswith("calql: error: interrupted: 0 of 1 trials finished, 1 saved at a checkpoint")
    assert errors[0].endswith(f"continue with `calql sweep {spec} --out {out}`")
    _wait_for(lambda: not _processes_of_session(driver.pid), 30, "Ray's processes to exit")
    assert trial_state(out / "trials", _plan(spec)[0]) == "resume"
    if signum == signal.SIGTERM:  # the sweep continues where it stopped (once: a rerun costs a Ray start)
        assert sweep.main([str(spec), "--out", str(out)]) == 0
        assert (out / "trials" / NAME / "summary.json").is_file()


def _plan(spec: Path):
    return trials(grid_from_spec(read_spec(spec), str(spec)), str(spec))


def test_a_trial_without_a_readable_finished_checkpoint_starts_again(tmp_path, capsys):
    trial = _plan(_spec(tmp_path, offline=200, online=0))[0]
    trials_dir = tmp_path / "trials"
    run_dir, log = trial_paths(trials_dir, trial)
    # Killed during its first checkpoint write: orbax's temporary folder, never renamed to its step.
    (run_dir / "checkpoints" / "100.orbax-checkpoint-tmp" / "agent").mkdir(parents=True)
    (run_dir / "config.json").write_text("{}")
    assert trial_state(trials_dir, trial) == "new"
    assert run_trial(str(trials_dir), trial)["status"] == "done"
    assert "no finished checkpoint to resume from (checkpoints/ holds 100.orbax-checkpoint-tmp)" in log.read_text()
    assert not list((run_dir / "checkpoints").glob("*tmp*"))

    # Every finished checkpoint unreadable (a disk filled up, a copy gone wrong): restart, not fail forever.
    (run_dir / "summary.json").unlink()
    for step in (run_dir / "checkpoints").iterdir():
        shutil.rmtree(step)
        step.mkdir()
        (step / "garbage").write_text("not a checkpoint")
    assert trial_state(trials_dir, trial) == "resume"
    outcome = run_trial(str(trials_dir), trial)
    assert "unreadable" in capsys.readouterr().err  # each checkpoint tried says so, in one line
    assert outcome["status"] == "done" and not outcome["resumed"]
    text = log.read_text()
    assert "no readable checkpoint in" in text and text.count("restarting the trial from scratch") == 2
    assert (run_dir / "summary.json").is_file()


def test_a_local_ray_listens_on_loopback_only_and_a_cluster_is_joined_as_configured():
    environment, arguments = ray_settings(None)
    assert environment["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0" and environment["RAY_USAGE_STATS_ENABLED"] == "0"
    assert arguments["address"] is None and arguments["num_cpus"] == os.cpu_count()
    assert arguments["include_dashboard"] is False and arguments["log_to_driver"] is False
    environment, arguments = ray_settings("auto")
    assert arguments["address"] == "auto" and "num_cpus" not in arguments
    # `ray start` clusters authenticate with a token: the driver must say it has one (benchmarks/local_cluster.sh)
    assert environment == {"RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
    with pytest.raises(CalqlError, match="RAY_ADDRESS is set .10.0.0.1:6379. but --address is not: pass --address"):
        ray_settings(None, "10.0.0.1:6379")  # ray.init would join that cluster without being asked


def test_an_address_where_nothing_answers_is_one_line_before_ray_tries_for_minutes():
    import socket

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        check_reachable(f"127.0.0.1:{port}")  # a head answers: no error
    refused = f"--address 127.0.0.1:{port}: nothing answers there .*ray start --head --port"
    with pytest.raises(SweepError, match=refused):
        check_reachable(f"127.0.0.1:{port}")
    check_reachable("auto")  # Ray's own forms are Ray's to resolve


def test_the_installed_ray_takes_loopback_from_that_variable():
    """The variable is Ray's, not ours: a Ray that stopped reading it would bind the network again."""
    pytest.importorskip("ray")
    code = "import ray._private.services as s; print(s.get_node_ip_address())"
    env = {**os.environ, **ray_settings(None)[0]}
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout == "127.0.0.1\n"


def test_a_trial_no_local_machine_can_hold_is_refused():
    assert unfit_trial(1.0, 0.0, {"CPU": 2.0}) is None
    assert unfit_trial(4.0, 0.0, {"CPU": 2.0}).startswith("--cpus-per-trial 4: this machine's Ray has 2 CPUs")
    assert "--gpus-per-trial 1: this machine's Ray has 0 GPUs" in unfit_trial(1.0, 1.0, {"CPU": 2.0})


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--cpus-per-trial", "0", "argument --cpus-per-trial: must be a number > 0"),
        ("--cpus-per-trial", "-1", "argument --cpus-per-trial: must be a number > 0"),
        ("--cpus-per-trial", "nan", "argument --cpus-per-trial: must be a number > 0"),
        ("--gpus-per-trial", "-0.5", "argument --gpus-per-trial: must be a number >= 0"),
        ("--max-retries", "-1", "argument --max-retries: must be an integer >= 0"),
        ("--max-retries", "two", "argument --max-retries: must be an integer >= 0"),
        ("--seeds", "-1", "seeds[0] = -1 is negative; seeds must be >= 0"),
    ],
)
def test_invalid_numeric_options_are_refused_in_one_line(option, value, message, tmp_path, capsys):
    args = ["--tasks", "pointmaze-umaze", "--methods", "calql", "--out", str(tmp_path / "s"), "--dry-run"]
    args += [option, value] if option == "--seeds" else ["--seeds", "0", option, value]
    assert sweep.main(args) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("calql: error: ") and message in err, err
    assert not (tmp_path / "s").exists()


def _fake_ray(tmp_path: Path) -> dict:
    """An environment where `import ray` fails, as where Ray is not installed."""
    package = tmp_path / "no_ray" / "ray"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('raise ImportError("No module named ray (a test stand-in)")\n')
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(package.parent), SRC])}


def test_commands_other_than_sweep_never_import_ray(tmp_path):
    code = (
        "import sys, calql, calql.cli, calql.api, calql.evaluation, calql.training.loop, calql.sweep.trial\n"
        "from calql.commands import compare, datasets, evaluate, plot, sweep, train\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=_fake_ray(tmp_path), capture_output=True, text=True)
    assert done.stdout == "[]\n", done.stderr


def test_a_sweep_without_ray_says_how_to_install_it(tmp_path):
    spec, env = _spec(tmp_path, offline=100, online=0), _fake_ray(tmp_path)
    command = [sys.executable, "-m", "calql.cli", "sweep", str(spec), "--out", str(tmp_path / "s")]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (2, f"calql: error: {RAY_HINT}\n")
    assert RAY_HINT == 'calql sweep needs Ray: pip install "calql[sweep]"'
    dry_run = subprocess.run([*command, "--dry-run"], env=env, capture_output=True, text=True)
    assert dry_run.returncode == 0, dry_run.stderr  # planning needs no Ray


def test_a_diverging_trial_is_reported_failed_with_its_line_once_per_run(tmp_path, capsys):
    pytest.importorskip("ray")
    spec = _spec(tmp_path, offline=400, online=0, extra="agent.critic-lr = 1e6\n")
    out = tmp_path / "sweep"
    log = out / "trials" / f"{NAME}.log"
    for attempts in (1, 2):  # the rerun resumes at the last good checkpoint and diverges again
        assert sweep.main([str(spec), "--out", str(out)]) == 1
        captured = capsys.readouterr()
        failed = [line for line in captured.out.splitlines() if line.startswith("FAILED: ")]
        assert len(failed) == 1, captured.out
        assert failed[0].startswith(f"FAILED: {NAME}: TrainingDiverged: training diverged at offline gradient step ")
        assert "1 trial(s) failed" in captured.err
        assert [line.startswith("--- ") for line in log.read_text().splitlines()].count(True) == attempts
        assert log.read_text().splitlines()[-1].startswith("TrainingDiverged: training diverged")
        assert not (out / "trials" / NAME / "summary.json").exists()


def test_an_interrupted_comparison_names_its_dated_folder_in_the_command_that_continues_it(
    tmp_path, monkeypatch, capsys
):
    from calql import api
    from calql.commands import compare

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # as Ctrl-C while a run loads its data, before training catches it

    monkeypatch.setattr(api, "train", interrupted)
    monkeypatch.chdir(tmp_path)
    args = ["--task", "pointmaze-umaze", "--seeds", "2", "--offline-steps", "100"]
    assert compare.main(args) == 130
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("calql: error: interrupted: 0 of 4 trials finished"), err
    assert (
        "continue with `calql compare --task pointmaze-umaze --seeds 2 --offline-steps 100 --out runs/compare-" in err
    )
