"""Wall time of the same whole job in calql and in d3rlpy's CalQL, interleaved in one run:
offline pre-training, then online fine-tuning with offline and online data mixed 50/50, with
evaluations and checkpoints, on the same generated data, environment, networks, batch, K,
UTD, budgets and evaluation schedule. Prints each job's wall time, its split into parts (as
far as each library lets them be measured) and the ratio calql / d3rlpy.

Cases (both on the default task, pointmaze-umaze-narrow, preset pointmaze-narrow: alpha 50
fixed, tau 0.05, batch 256, K = 10, UTD 1, mixing ratio 0.5):
  default  the default networks, critic and policy 2x64; the preset's budgets (10k offline
           steps, 10k online steps, 20 episodes per evaluation, 5 offline and up to 19 online
           evaluations: one per episode end that passes a nominal step)
  paper    the paper's network sizes, critic 4x256 and policy 2x256; smaller budgets (2k + 2k
           steps, 10 episodes per evaluation), since such an update runs at ~5-10/s on 2 cores
--quick: 1k offline + 1k online steps (paper: 500 + 500), 5 episodes per evaluation, two
evaluations per phase plus two dense ones at the start of fine-tuning (a few minutes per round
on an idle 2-core machine).

Each round runs both jobs of a case, each in a fresh process, the order alternating between
rounds: calql through its Python API (`calql.config_for`, `calql.train`; the split comes from
summary.json's timers) in a spawned process, d3rlpy through benchmarks/d3rlpy/end_to_end.py in
its own environment (its docstring lists how the job maps onto d3rlpy's API and every
difference that remains). calql's generated dataset is exported once to an .npz that the d3rlpy
job reads; the d3rlpy job checks every row and return-to-go against calql's after it ends.

"job" is the time inside the library's job (from before loading the data to the end; imports
excluded); "process" adds the interpreter, the imports and the process's exit (the time a user
waits). As in compare_d3rlpy.py, each measurement records the cores other processes used
meanwhile; a round is clean when both saw fewer than --max-other-cores.

    bash benchmarks/d3rlpy/setup.sh          # once: d3rlpy, torch and the environment packages
    python benchmarks/end_to_end.py [--quick] [--cases default paper] [--rounds 2] [--json out.json]
"""

import argparse
import dataclasses
import json
import multiprocessing
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from compare_d3rlpy import DEFAULT_VENV, d3rlpy_python, timed

import calql
from calql.config import TrainConfig
from calql.envs.binding import bind
from calql.envs.tasks import get_task
from calql.rundir import METRICS_FILE
from calql.training.run import load_offline_data

HERE = pathlib.Path(__file__).resolve().parent
SOURCE = HERE.parent / "src"
D3RLPY_SCRIPT = HERE / "d3rlpy" / "end_to_end.py"
TASK = "pointmaze-umaze-narrow"


@dataclasses.dataclass(frozen=True)
class Case:
    description: str
    agent: dict
    budgets: dict
    """TrainConfig overrides of the full form ({} = the preset's budgets)."""
    quick: dict
    """TrainConfig overrides of --quick."""


def budgets(steps: int, episodes: int) -> dict:
    """`steps` offline and online steps, evaluated twice per phase with `episodes` episodes
    (and the preset's dense start evaluations scaled down to two)."""
    return {
        "offline_steps": steps,
        "online_steps": steps,
        "offline_eval_every": steps // 2,
        "eval_every": steps // 2,
        "start_evals": 2,
        "eval_episodes": episodes,
    }


CASES = {
    "default": Case("default task and networks (critic/policy 2x64)", {}, {}, budgets(1_000, 5)),
    "paper": Case(
        "paper-size networks (critic 4x256, policy 2x256)",
        {"critic_hidden_dims": (256, 256, 256, 256), "policy_hidden_dims": (256, 256)},
        budgets(2_000, 10),
        budgets(500, 5),
    ),
}


def case_config(name: str, quick: bool, run_dir: pathlib.Path, run_name: str) -> TrainConfig:
    case = CASES[name]
    overrides = case.quick if quick else case.budgets
    return calql.config_for(TASK, agent=case.agent, run_dir=str(run_dir), run_name=run_name, **overrides)


# The data both jobs train on


def export_dataset(config: TrainConfig, path: pathlib.Path) -> None:
    """calql's offline rows as its loader prepares them, with the raw rewards (d3rlpy applies
    the task's transform itself), the trajectory ends and calql's Monte-Carlo returns."""
    task = bind(get_task(config.task), config.dataset, config.filter_dataset)
    offline, ends = load_offline_data(task, config)
    raw = task.load_dataset(config.dataset_size, config.dataset_seed)
    np.savez(
        path,
        observations=offline.observations,
        actions=offline.actions,
        rewards=np.asarray(raw["rewards"], np.float32),
        next_observations=offline.next_observations,
        terminals=offline.dones,
        ends=ends,
        returns=offline.reference,
    )


# One job each


def run_calql(config: TrainConfig) -> dict:
    """calql's job through its API (in a spawned process): its timers and what it did."""
    from rich.console import Console

    result = calql.train(config, console=Console(quiet=True))
    rows = [json.loads(line) for line in (pathlib.Path(result.run_dir) / METRICS_FILE).read_text().splitlines()]
    trained = [row for row in rows if row["phase"].endswith("/train")]
    online = [row for row in trained if row["phase"].startswith("online")]
    return {
        "job_s": result.wall_time,
        "seconds": result.timers,
        "counts": {
            "updates": trained[-1]["gradient_steps"],
            "env_steps": online[-1]["step"] if online else 0,
            "online_episodes": len(online),
            "evaluations": sum(row["phase"].endswith("/eval") for row in rows),
        },
    }


def single_threaded_xla() -> None:
    """XLA reads its flags when its CPU backend starts, at the job's first compiled call."""
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_multi_thread_eigen=false".strip()


def measure_calql(config: TrainConfig, single_thread: bool) -> dict:
    start = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context, initializer=single_threaded_xla if single_thread else None) as pool:
        result = pool.submit(run_calql, config).result()
    return {**result, "process_s": time.perf_counter() - start}


def measure_d3rlpy(python: pathlib.Path, job: dict, job_file: pathlib.Path) -> dict:
    job_file.write_text(json.dumps(job))
    command = [str(python), str(D3RLPY_SCRIPT), str(job_file)]
    start = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": str(SOURCE)}
    )
    process_s = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"job_s"')]
    if done.returncode != 0 or not lines:
        sys.exit(f"error: the d3rlpy job failed ({' '.join(command)}), exit {done.returncode}:\n" + done.stderr[-3000:])
    result = json.loads(lines[-1])
    # the data check runs after the job, inside the process: not part of either job
    return {**result, "process_s": process_s - result["check_s"]}


def d3rlpy_job(config: TrainConfig, dataset: pathlib.Path, out_dir: pathlib.Path, args) -> dict:
    return {
        "config": dataclasses.asdict(config),
        "dataset": str(dataset),
        "out_dir": str(out_dir),
        "threads": args.d3rlpy_threads,
        "update_interval": args.d3rlpy_update_interval or min(1_000, config.online_steps),
    }


# The table

# (label, calql timer names, d3rlpy timer names); None: the library does not measure that part
PARTS = [
    ("dataset (load, returns, buffers)", ["dataset"], ["dataset"]),
    ("updates (calql: with compilation)", ["update"], ["update"]),
    ("  of which the gradient step", None, ["gradient_step"]),
    ("batch sampling", ["sample"], ["sample"]),
    ("acting (exploration)", None, ["acting"]),
    ("environment steps", None, ["environment"]),
    ("acting + environment", ["environment"], ["acting", "environment"]),
    ("evaluation", ["evaluate"], ["evaluate"]),
    ("checkpoints", ["checkpoint"], ["checkpoint"]),
    ("logging", None, ["logging"]),
]
TOP_LEVEL = {"dataset", "update", "sample", "environment", "acting", "evaluate", "checkpoint", "logging", "reference"}


def part_seconds(result: dict, names: list[str] | None) -> float | None:
    return None if names is None else sum(result["seconds"].get(name, 0.0) for name in names)


def other_seconds(result: dict) -> float:
    """The job's time outside every measured part (loop, set-up, and calql's logging)."""
    return result["job_s"] - sum(s for name, s in result["seconds"].items() if name in TOP_LEVEL)


def median_of(results: list[dict], value) -> float | None:
    values = [value(result) for result in results]
    return None if values[0] is None else statistics.median(values)


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def print_case(name: str, calql_runs: list[dict], d3_runs: list[dict], clean: list[bool]) -> None:
    print(f"\n{name}: {CASES[name].description}; medians over {len(calql_runs)} rounds ({sum(clean)} clean)")
    print(f"{'part (seconds)':<36} {'calql':>8} {'d3rlpy':>8}")
    for label, calql_names, d3_names in PARTS:
        calql_s = median_of(calql_runs, lambda r, names=calql_names: part_seconds(r, names))
        d3_s = median_of(d3_runs, lambda r, names=d3_names: part_seconds(r, names))
        print(f"{label:<36} {fmt_s(calql_s):>8} {fmt_s(d3_s):>8}")
    print(
        f"{'other (loop, set-up; calql: logging)':<36} {median_of(calql_runs, other_seconds):>8.1f} "
        f"{median_of(d3_runs, other_seconds):>8.1f}"
    )
    for label, key in (("job wall time", "job_s"), ("process wall time (+ imports)", "process_s")):
        calql_s = statistics.median(r[key] for r in calql_runs)
        d3_s = statistics.median(r[key] for r in d3_runs)
        print(
            f"{label:<36} {calql_s:>8.1f} {d3_s:>8.1f}   calql / d3rlpy {calql_s / d3_s:.3f} "
            f"(calql {d3_s / calql_s:.2f}x as fast)"
        )
    for count in ("updates", "env_steps", "online_episodes", "evaluations"):
        print(f"{count:<36} {calql_runs[-1]['counts'][count]:>8} {d3_runs[-1]['counts'][count]:>8}")


def summary(calql_runs: list[dict], d3_runs: list[dict]) -> dict:
    pairs = list(zip(calql_runs, d3_runs))
    return {
        key: {
            "calql": statistics.median(c[key] for c, _ in pairs),
            "d3rlpy": statistics.median(d[key] for _, d in pairs),
            "round_speedups": [d[key] / c[key] for c, d in pairs],
        }
        for key in ("job_s", "process_s")
    }


# The run


def run_case(name: str, args, python: pathlib.Path, work: pathlib.Path) -> dict:
    dataset = work / f"{TASK}.npz"
    if not dataset.exists():
        export_dataset(case_config(name, args.quick, work, "export"), dataset)
    calql_runs, d3_runs = [], []
    for r in range(args.rounds):
        config = case_config(name, args.quick, work, f"{name}-round{r}")
        job = d3rlpy_job(config, dataset, work / f"d3rlpy-{name}-round{r}", args)
        order = ("calql", "d3rlpy") if r % 2 == 0 else ("d3rlpy", "calql")
        for which in order:
            if which == "calql":
                calql_runs.append(timed(measure_calql, config, args.calql_single_thread))
            else:
                d3_runs.append(timed(measure_d3rlpy, python, job, work / f"job-{name}-{r}.json"))
        c, d = calql_runs[-1], d3_runs[-1]
        print(
            f"  {name} round {r + 1}/{args.rounds} ({' then '.join(order)}): job calql {c['job_s']:.1f} s | "
            f"d3rlpy {d['job_s']:.1f} s; process {c['process_s']:.1f} | {d['process_s']:.1f} s; "
            f"other processes used {c['other_cores']:.2f} | {d['other_cores']:.2f} cores",
            flush=True,
        )
    clean = [max(c["other_cores"], d["other_cores"]) < args.max_other_cores for c, d in zip(calql_runs, d3_runs)]
    print_case(name, calql_runs, d3_runs, clean)
    print(f"d3rlpy data check (largest differences from calql's rows): {d3_runs[-1]['data_check']}")
    return {
        **summary(calql_runs, d3_runs),
        "clean_rounds": sum(clean),
        "calql": calql_runs,
        "d3rlpy": d3_runs,
        "config": dataclasses.asdict(case_config(name, args.quick, work, "")),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=["default", "paper"])
    parser.add_argument(
        "--quick", action="store_true", help="1k (paper: 500) offline and online steps, 5 episodes per evaluation"
    )
    parser.add_argument("--rounds", type=int, default=2, help="interleaved calql/d3rlpy pairs per case")
    parser.add_argument(
        "--d3rlpy-venv", type=pathlib.Path, default=pathlib.Path(os.environ.get("CALQL_D3RLPY_VENV", DEFAULT_VENV))
    )
    parser.add_argument("--d3rlpy-threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    parser.add_argument(
        "--calql-single-thread",
        action="store_true",
        help="single-threaded XLA in calql's job (--xla_cpu_multi_thread_eigen=false), "
        "the counterpart of --d3rlpy-threads 1",
    )
    parser.add_argument(
        "--d3rlpy-update-interval",
        type=int,
        help="fit_online's update_interval (n_updates = it x UTD): at least the episode limit (300), dividing "
        "the online steps; default 1000 (d3rlpy's Cal-QL reproduction), or the online steps if fewer",
    )
    parser.add_argument(
        "--max-other-cores",
        type=float,
        default=0.2,
        help="a round is clean when other processes used fewer cores than this during it",
    )
    parser.add_argument("--keep", action="store_true", help="keep the run folders (printed) instead of deleting them")
    parser.add_argument("--json", type=pathlib.Path, help="also write every measurement to this file")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    python = d3rlpy_python(args.d3rlpy_venv)
    start = time.perf_counter()
    xla = "single" if args.calql_single_thread else "multi"
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}; calql XLA {xla}-threaded, "
        f"d3rlpy {args.d3rlpy_threads} torch threads; "
        f"{'quick' if args.quick else 'full'} form, {args.rounds} rounds",
        flush=True,
    )
    work = pathlib.Path(tempfile.mkdtemp(prefix="calql-end-to-end-"))
    try:
        results = {name: run_case(name, args, python, work) for name in args.cases}
    finally:
        if args.keep:
            print(f"run folders kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\ntotal {time.perf_counter() - start:.0f} s; load average now {os.getloadavg()[0]:.2f}")
    if any(res["clean_rounds"] < args.rounds for res in results.values()):
        print(
            f"note: other processes used >= {args.max_other_cores} cores during some rounds; torch with several "
            "threads slows down more than jax on a busy machine: compare --d3rlpy-threads 1, or rerun on an idle one."
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
