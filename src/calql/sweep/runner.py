"""The sweep driver: every unfinished trial becomes a Ray task; Ray schedules them on the local
machine or a cluster and retries a task whose worker died, and the retry resumes the trial from
its checkpoints (sweep.trial). The driver reports progress and collects the outcomes."""

import json
import os
import shlex
import time
from collections.abc import Callable
from pathlib import Path

from calql.console import regret_text
from calql.envs.binding import bind
from calql.envs.tasks import get_task
from calql.errors import CalqlError
from calql.options import command_line
from calql.sweep.spec import Trial
from calql.sweep.trial import outcome_of, run_trial, trial_paths, trial_state
from calql.training.metrics import write_text_atomically

FORWARDED_ENV = ("MINARI_DATASETS_PATH", "HF_HUB_OFFLINE", "JAX_PLATFORMS", "XLA_FLAGS", "MUJOCO_GL")
"""Driver environment variables the workers get too (where datasets live, staying offline)."""
MANIFEST = "sweep.json"
TRIALS_FOLDER = "trials"
"""SWEEP_DIR/trials holds each trial's run directory and log."""


def earlier_manifest_entries(sweep_dir: Path) -> list[dict]:
    """The trials an earlier invocation recorded in SWEEP_DIR/sweep.json (none if there is none)."""
    path = sweep_dir / MANIFEST
    if not path.is_file():
        return []
    try:
        return list(json.loads(path.read_text())["trials"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise CalqlError(f"{path}: not a sweep manifest ({error!r}); delete it and run the sweep again") from None


def write_manifest(sweep_dir: Path, trials: list[Trial]) -> None:
    """Record the trials and their commands in SWEEP_DIR/sweep.json, keeping the entries of earlier
    invocations on the same folder (a sweep extended with more seeds lists all of them)."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    entries = {entry["name"]: entry for entry in earlier_manifest_entries(sweep_dir)}
    for t in trials:
        entries[t.name] = {
            "name": t.name,
            "task": t.task,
            "method": t.method,
            "seed": t.seed,
            "command": "calql train " + shlex.join(command_line(t.config)),
        }
    write_text_atomically(sweep_dir / MANIFEST, json.dumps({"trials": list(entries.values())}, indent=2))


def pregenerate_datasets(trials: list[Trial]) -> None:
    """Generate each built-in dataset once here, so parallel trials never race to write its cache."""
    seen = set()
    for trial in trials:
        config = trial.config
        key = (config.task, config.dataset, config.dataset_size, config.dataset_seed)
        task = get_task(config.task)
        if key in seen or not task.builtin or config.dataset not in ("", "builtin"):
            continue
        seen.add(key)
        bind(task, config.dataset, config.filter_dataset).load_dataset(config.dataset_size, config.dataset_seed)


def _init_ray(address: str | None) -> bool:
    """Join `address` or start a local Ray sized to this machine; False if Ray was already up."""
    import ray

    if ray.is_initialized():
        return False
    ray.init(
        address=address,
        num_cpus=None if address else os.cpu_count(),
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    return True


def worker_env(cpus_per_trial: float) -> dict[str, str]:
    """The forwarded variables, and for trials of one CPU or less single-threaded XLA matrix
    products: Ray reserves CPUs but does not pin threads, and XLA would otherwise start one thread
    per core in every trial (measured on 2 cores, two pointmaze-medium trials side by side:
    43 -> 60 updates/s each)."""
    env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    flags = env.get("XLA_FLAGS", "")
    if cpus_per_trial <= 1 and "xla_cpu_multi_thread_eigen" not in flags:
        env["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()
    return env


class Progress:
    """Counts of done / running / failed / queued trials, printed when they change."""

    def __init__(self, sweep_dir: Path, trials: list[Trial], print_line: Callable[[str], None]):
        self.sweep_dir, self.print_line = sweep_dir, print_line
        self.total, self.started = len(trials), time.time()
        self.done: list[dict] = []
        self.failed: list[dict] = []
        self.last = ""

    def running(self, pending: list[Trial]) -> int:
        """Pending trials whose log this sweep has written to (the others wait for resources)."""
        logs = [trial_paths(self.sweep_dir / TRIALS_FOLDER, trial)[1] for trial in pending]
        return sum(log.is_file() and log.stat().st_mtime >= self.started - 1 for log in logs)

    def finished(self, outcome: dict) -> None:
        if outcome["status"] == "done":
            self.done.append(outcome)
            summary = outcome["summary"]
            how = " (resumed)" if outcome.get("resumed") else ""
            self.print_line(
                f"done{how}: {outcome['name']}: score {summary['offline']['normalized_score']:.1f} -> "
                f"{summary['final']['normalized_score']:.1f}, regret {regret_text(summary['regret'])}"
            )
        else:
            self.failed.append(outcome)
            self.print_line(f"FAILED: {outcome['name']}: {outcome['reason']} (log: {outcome['log']})")

    def show(self, pending: list[Trial], skipped: int) -> None:
        running = self.running(pending)
        line = (
            f"[sweep] {len(self.done) + skipped}/{self.total} done, {running} running, "
            f"{len(pending) - running} queued, {len(self.failed)} failed"
        )
        if line != self.last:
            self.print_line(line)
            self.last = line


def run_sweep(
    sweep_dir: Path,
    trials: list[Trial],
    address: str | None = None,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    max_retries: int = 3,
    print_line: Callable[[str], None] = print,
) -> list[dict]:
    """Run every trial not yet done; returns the outcomes of this invocation's trials (done ones
    that were already finished are reported as skipped, not re-run)."""
    import ray

    sweep_dir = Path(sweep_dir).resolve()
    write_manifest(sweep_dir, trials)
    trials_dir = sweep_dir / TRIALS_FOLDER
    todo = [trial for trial in trials if trial_state(trials_dir, trial) != "done"]
    skipped = len(trials) - len(todo)
    if skipped:
        print_line(f"[sweep] {skipped} of {len(trials)} trials already finished: skipped")
    if not todo:
        return []
    pregenerate_datasets(todo)
    started_ray = _init_ray(address)
    try:
        task = ray.remote(
            num_cpus=cpus_per_trial,
            num_gpus=gpus_per_trial,
            max_retries=max_retries,
            runtime_env={"env_vars": worker_env(cpus_per_trial)},
        )(run_trial)
        pending = {task.remote(str(trials_dir), trial): trial for trial in todo}
        progress = Progress(sweep_dir, trials, print_line)
        outcomes = []
        while pending:
            progress.show(list(pending.values()), skipped)
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=5.0)
            for ref in ready:
                trial = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as error:  # the worker died more than max_retries times
                    reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0]}"
                    outcome = outcome_of(trial, "failed", *trial_paths(trials_dir, trial), reason=reason)
                outcomes.append(outcome)
                progress.finished(outcome)
        progress.show([], skipped)
        return outcomes
    finally:
        if started_ray:
            ray.shutdown()
