"""The sweep driver: every unfinished trial becomes a Ray task; Ray schedules them on the local
machine or a cluster and retries a task whose worker died, and the retry resumes the trial from
its checkpoints (sweep.trial). The driver reports progress and collects the outcomes.

Ctrl-C or SIGTERM cancels the trials (each finishes the checkpoint it is writing, as `calql train`
does) and shuts Ray down; the caller says what is saved (commands/sweep.py). Ray is optional
(`pip install "calql[sweep]"`): it is imported here, when a sweep runs, and nowhere else."""

import contextlib
import json
import os
import shlex
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
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
LOCAL_RAY_ENV = {
    # Ray's local-only mode (its default on macOS and Windows): the node's address is 127.0.0.1, so
    # every Ray server listens on loopback only, and Ray does not probe a route to 8.8.8.8 to find the
    # host's address. Read when ray is imported.
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    # Token authentication is already Ray's default for a new local cluster; saying so keeps Ray from
    # printing a notice about it on the user's terminal.
    "RAY_AUTH_MODE": "token",
}
"""Environment of a local Ray (no --address), set before ray is first imported; a variable the user
set wins."""
CLUSTER_RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    # `ray start` makes clusters with token authentication (the token in ~/.ray/auth_token); a driver
    # without this setting is refused by them (benchmarks/local_cluster.sh). RAY_AUTH_MODE=disabled,
    # set by the user, joins a cluster started without it.
    "RAY_AUTH_MODE": "token",
}
"""Environment of a driver joining a cluster (--address), set before ray is first imported; a
variable the user set wins."""
STOP_GRACE_S = 60.0
"""How long Ctrl-C waits for the cancelled trials to finish the checkpoint they are writing."""
RAY_HINT = 'calql sweep needs Ray: pip install "calql[sweep]"'


class SweepError(CalqlError):
    """A sweep that cannot start as asked (Ray missing, a trial no machine can hold)."""


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


def ray_settings(address: str | None, ray_address_variable: str = "") -> tuple[dict[str, str], dict]:
    """(environment variables, ray.init arguments): join the cluster at `address` as it is
    configured, or start a local Ray sized to this machine, on loopback only, without dashboard,
    usage statistics or messages on the terminal. Worker output goes to the trials' logs.
    A cluster is joined only when asked with --address: SweepError if RAY_ADDRESS
    (`ray_address_variable`) would make ray.init join one instead of starting a local Ray."""
    quiet = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address:
        return dict(CLUSTER_RAY_ENV), {"address": address, **quiet}
    if ray_address_variable:
        raise SweepError(
            f"RAY_ADDRESS is set ({ray_address_variable}) but --address is not: pass --address "
            f"{ray_address_variable} to run the sweep on that cluster, or unset RAY_ADDRESS to run it on this machine"
        )
    return dict(LOCAL_RAY_ENV), {"address": None, "num_cpus": os.cpu_count(), **quiet}


def import_ray(environment: dict[str, str]):
    """The ray module, with `environment` set first (unless ray is already imported, where setting
    it would leave this process and the Ray it starts disagreeing); SweepError with the install
    hint if Ray is not installed."""
    if "ray" not in sys.modules:
        for name, value in environment.items():
            os.environ.setdefault(name, value)
    try:
        import ray
    except ImportError:
        raise SweepError(RAY_HINT) from None
    return ray


def run_interruptible_trial(trials_dir: str, trial: Trial) -> dict:
    """run_trial in a Ray worker that a cancel can interrupt. A driver launched in the background
    (`calql sweep ... &`) starts with SIGINT ignored, and its workers inherit that; Ray's cancel
    interrupts a task through SIGINT's handler, so without one the trial would run on to its end."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return run_trial(trials_dir, trial)


def _interrupt_on_sigterm(signum, frame) -> None:
    """SIGTERM stops a sweep like Ctrl-C, as it stops `calql train` (commands/train.py)."""
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_ctrl_c() -> Iterator[Callable[[], None]]:
    """Within: SIGTERM raises KeyboardInterrupt; after, the handler before is back. Yields the
    function that installs it again (ray.init replaces it with its own)."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread handles signals
        yield lambda: None
        return
    previous = signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    try:
        yield lambda: signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    finally:
        signal.signal(signal.SIGTERM, previous)


def unfit_trial(cpus_per_trial: float, gpus_per_trial: float, resources: dict) -> str | None:
    """Why no trial could ever start on a Ray with these total `resources` (ray.cluster_resources()),
    or None: Ray would queue such trials forever without a word."""
    needs = (("--cpus-per-trial", cpus_per_trial, "CPU"), ("--gpus-per-trial", gpus_per_trial, "GPU"))
    for option, need, name in needs:
        have = resources.get(name, 0.0)
        if need > have:
            return (
                f"{option} {need:g}: this machine's Ray has {have:g} {name}s, so no trial could start; "
                f"ask for at most {have:g}, or join a cluster with --address"
            )
    return None


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """SweepError in one line if nothing answers at a HOST:PORT --address (Ray itself would retry for
    minutes, printing its own warnings); "auto" and other forms are left to Ray."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise SweepError(
            f"--address {address}: nothing answers there ({error.strerror or error}): start the cluster's head "
            f"(`ray start --head --port {port}`) or give the address `ray start --head` printed"
        ) from None


def _start_ray(ray, address: str | None, init_arguments: dict, cpus_per_trial: float, gpus_per_trial: float) -> bool:
    """Join or start Ray; False if it was already up (the caller's to shut down). A local Ray that
    cannot hold one trial is shut down again with a SweepError."""
    if ray.is_initialized():
        return False
    if address:
        check_reachable(address)
    try:
        ray.init(**init_arguments)
    except (ConnectionError, ray.exceptions.AuthenticationError) as error:
        if not address:
            raise
        raise SweepError(
            f"--address {address}: cannot join the Ray cluster ({str(error).splitlines()[0]}): check the address "
            f"(`ray status --address {address}` on this machine) and that this machine has the cluster's token "
            "(~/.ray/auth_token, or RAY_AUTH_TOKEN; RAY_AUTH_MODE=disabled for a cluster started without one)"
        ) from None
    problem = None if address else unfit_trial(cpus_per_trial, gpus_per_trial, ray.cluster_resources())
    if problem:
        ray.shutdown()
        raise SweepError(problem)
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
    that were already finished are reported as skipped, not re-run). KeyboardInterrupt (Ctrl-C, or
    SIGTERM while it runs) stops the trials at their checkpoints and Ray, then propagates."""
    sweep_dir = Path(sweep_dir).resolve()
    environment, init_arguments = ray_settings(address, os.environ.get("RAY_ADDRESS", ""))
    trials_dir = sweep_dir / TRIALS_FOLDER
    todo = [trial for trial in trials if trial_state(trials_dir, trial) != "done"]
    ray = import_ray(environment) if todo else None
    write_manifest(sweep_dir, trials)
    skipped = len(trials) - len(todo)
    if skipped:
        print_line(f"[sweep] {skipped} of {len(trials)} trials already finished: skipped")
    if not todo:
        return []
    pregenerate_datasets(todo)
    with sigterm_as_ctrl_c() as reinstall:
        started_ray = _start_ray(ray, address, init_arguments, cpus_per_trial, gpus_per_trial)
        reinstall()
        pending: dict = {}
        try:
            task = ray.remote(
                num_cpus=cpus_per_trial,
                num_gpus=gpus_per_trial,
                max_retries=max_retries,
                runtime_env={"env_vars": worker_env(cpus_per_trial)},
            )(run_interruptible_trial)
            pending.update({task.remote(str(trials_dir), trial): trial for trial in todo})
            return _collect(ray, pending, Progress(sweep_dir, trials, print_line), trials_dir, skipped)
        except KeyboardInterrupt:
            _stop_trials(ray, list(pending))
            raise
        finally:
            if started_ray:
                ray.shutdown()


def _collect(ray, pending: dict, progress: Progress, trials_dir: Path, skipped: int) -> list[dict]:
    """Wait for every pending trial (removing each from `pending` as it ends); their outcomes."""
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


def _stop_trials(ray, refs: list) -> None:
    """Cancel the trials: a running one gets KeyboardInterrupt and, like `calql train`, finishes the
    checkpoint it is writing (training/loop.py); wait for that, unless Ctrl-C is pressed again."""
    for ref in refs:
        ray.cancel(ref)
    with contextlib.suppress(KeyboardInterrupt):
        if refs:
            ray.wait(refs, num_returns=len(refs), timeout=STOP_GRACE_S)
