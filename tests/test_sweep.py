"""`calql sweep` on a local Ray: a tiny grid completes and its report equals the trials' own
numbers, a second invocation runs nothing, a killed worker's trial resumes, bad specs are refused."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

from calql.commands import sweep  # noqa: E402
from calql.sweep.spec import SpecError, grid_from_spec, read_spec, trials  # noqa: E402

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


def _spec(tmp_path: Path, body: str, offline: int = 100, online: int = 300) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(body + TINY_OPTIONS.format(offline=offline, online=online))
    return path


def _plan(spec: Path):
    return trials(grid_from_spec(read_spec(spec), str(spec)), str(spec))


def test_a_tiny_sweep_reports_its_trials_numbers_and_a_rerun_runs_nothing(tmp_path, capsys):
    spec = _spec(tmp_path, 'tasks = ["pointmaze-umaze"]\nmethods = ["calql", "cql"]\nseeds = [0]\n')
    out = tmp_path / "sweep"
    assert sweep.main([str(spec), "--out", str(out)]) == 0
    summaries = {path.parent.name: json.loads(path.read_text()) for path in out.glob("trials/*/summary.json")}
    assert set(summaries) == {"pointmaze-umaze-calql-s0", "pointmaze-umaze-cql-s0"}
    with open(out / "report" / "results.csv") as file:
        rows = {row["algo"]: row for row in csv.DictReader(file)}
    for method in ("calql", "cql"):
        summary = summaries[f"pointmaze-umaze-{method}-s0"]
        assert float(rows[method]["final_score"]) == summary["final"]["normalized_score"]
        assert float(rows[method]["offline_score"]) == summary["offline"]["normalized_score"]
        assert float(rows[method]["regret"]) == pytest.approx(summary["regret"])
    assert (out / "report" / "report.md").is_file()

    stamps = {name: (out / "trials" / name / "summary.json").stat().st_mtime_ns for name in summaries}
    capsys.readouterr()
    assert sweep.main([str(spec), "--out", str(out)]) == 0
    assert "2 of 2 trials already finished" in capsys.readouterr().out
    assert stamps == {name: (out / "trials" / name / "summary.json").stat().st_mtime_ns for name in summaries}


def _wait_for(condition, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _first_pid(log: Path) -> int | None:
    if not log.is_file():
        return None
    for line in log.read_text().splitlines():
        if line.startswith("--- ") and " pid " in line:
            return int(line.split(" pid ")[1].split()[0])
    return None


def test_a_killed_worker_resumes_its_trial_and_the_sweep_completes(tmp_path):
    spec = _spec(tmp_path, 'tasks = ["pointmaze-umaze"]\nmethods = ["calql"]\nseeds = [0]\n', offline=600, online=900)
    out = tmp_path / "sweep"
    driver = subprocess.Popen(
        [sys.executable, "-m", "calql.cli", "sweep", str(spec), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        log = out / "trials" / "pointmaze-umaze-calql-s0.log"
        pid = _wait_for(lambda: _first_pid(log), 240, "the trial to start")
        checkpoints = out / "trials" / "pointmaze-umaze-calql-s0" / "checkpoints"
        _wait_for(
            lambda: checkpoints.is_dir() and any(p.name.isdigit() for p in checkpoints.iterdir()),
            240,
            "the first checkpoint",
        )
        os.kill(pid, signal.SIGKILL)
        output, _ = driver.communicate(timeout=600)
    finally:
        driver.kill()
    assert driver.returncode == 0, output
    assert "done (resumed): pointmaze-umaze-calql-s0" in output
    attempts = [line for line in log.read_text().splitlines() if line.startswith("--- ")]
    assert attempts[0].endswith(": new") and attempts[1].endswith(": resume")
    run_dir = out / "trials" / "pointmaze-umaze-calql-s0"
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    keys = [(row["phase"], row["step"]) for row in rows]
    assert len(keys) == len(set(keys)), "a resumed trial must not duplicate metrics rows"
    assert json.loads((run_dir / "summary.json").read_text())["final"] is not None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            'tasks = ["pointmaze-umaze", "antmaze-hard"]\nmethods = ["calql"]\nseeds = [0]\n',
            r"tasks\[1\] = 'antmaze-hard'",
        ),
        ('tasks = ["pointmaze-umaze"]\nmethods = ["calql"]\nseeds = "0, 1"\n', r"field 'seeds' must be a list of ints"),
        ('tasks = ["pointmaze-umaze"]\nmethods = []\nseeds = [0]\n', r"field 'methods' is empty"),
        ('tasks = ["pointmaze-umaze"]\nmethods = ["sac"]\nseeds = [0]\n', r"methods\[0\] = 'sac'"),
        ('tasks = ["pointmaze-umaze"]\nmethods = ["calql"]\nseeds = [0]\nalgos = ["cql"]\n', r"unknown field 'algos'"),
        ('tasks = ["pointmaze-umaze"\nmethods = ["calql"]\n', r"not valid TOML: .*line 2"),
    ],
)
def test_malformed_specs_name_the_field(tmp_path, body, message):
    with pytest.raises(SpecError, match=message):
        _plan(_spec(tmp_path, body))


def test_a_bad_option_value_is_named(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        'tasks = ["pointmaze-umaze"]\nmethods = ["calql"]\nseeds = [0]\n[options]\noffline-steps = "many"\n'
    )
    with pytest.raises(SpecError, match="option 'offline-steps' = many"):
        _plan(spec)
    spec.write_text('tasks = ["pointmaze-umaze"]\nmethods = ["calql"]\nseeds = [0]\n[options]\nseed = 3\n')
    with pytest.raises(SpecError, match="option 'seed' is set by the sweep"):
        _plan(spec)


def test_dry_run_lists_trials_and_their_state(tmp_path, capsys):
    spec = _spec(tmp_path, 'tasks = ["pointmaze-umaze"]\nmethods = ["calql", "calql-learned"]\nseeds = [0, 1]\n')
    assert sweep.main([str(spec), "--out", str(tmp_path / "s"), "--dry-run", "--batch-size", "32"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and all(line.strip().startswith("new") for line in lines[1:])
    assert "--reference learned" in lines[2] and lines[2].count("--batch-size") == 2  # the command line's wins
    assert not (tmp_path / "s").exists()


def test_command_line_grid_without_a_file(tmp_path, capsys):
    code = sweep.main(
        [
            "--tasks",
            "pointmaze-umaze",
            "pointmaze-medium",
            "--methods",
            "cql",
            "--seeds",
            "4",
            "--out",
            str(tmp_path / "s"),
            "--dry-run",
        ]
    )
    assert code == 0
    assert "pointmaze-medium-cql-s4" in capsys.readouterr().out


def test_the_manifest_keeps_earlier_invocations_trials(tmp_path):
    from calql.api import config_for
    from calql.errors import CalqlError
    from calql.sweep.runner import MANIFEST, write_manifest
    from calql.sweep.spec import Trial

    def trial(method, seed):
        return Trial("pointmaze-umaze", method, seed, config_for("pointmaze-umaze", algo=method, seed=seed))

    first = [trial(method, 0) for method in ("calql", "cql")]
    more_seeds = [trial(method, 1) for method in ("calql", "cql")]
    write_manifest(tmp_path / "s", first)
    write_manifest(tmp_path / "s", more_seeds)  # a second invocation adding seed 1
    names = [entry["name"] for entry in json.loads((tmp_path / "s" / MANIFEST).read_text())["trials"]]
    assert names == [t.name for t in first + more_seeds]
    (tmp_path / "s" / MANIFEST).write_text("{not json")
    with pytest.raises(CalqlError, match="sweep.json: not a sweep manifest.*delete it"):
        write_manifest(tmp_path / "s", first)


def test_one_cpu_trials_get_single_threaded_xla(monkeypatch):
    from calql.sweep.runner import worker_env

    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    monkeypatch.setenv("MINARI_DATASETS_PATH", "/data/minari")
    env = worker_env(1.0)
    assert env["XLA_FLAGS"] == "--xla_force_host_platform_device_count=1 --xla_cpu_multi_thread_eigen=false"
    assert env["MINARI_DATASETS_PATH"] == "/data/minari"
    assert worker_env(4.0)["XLA_FLAGS"] == "--xla_force_host_platform_device_count=1"


def test_train_options_with_values_on_the_command_line(tmp_path, capsys):
    code = sweep.main(
        [
            "--tasks",
            "pointmaze-umaze",
            "--methods",
            "calql",
            "--seeds",
            "0",
            "--offline-steps",
            "2000",
            "--out",
            str(tmp_path / "s"),
            "--dry-run",
        ]
    )
    assert code == 0
    assert "--offline-steps 2000" in capsys.readouterr().out
