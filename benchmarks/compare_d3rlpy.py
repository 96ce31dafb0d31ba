"""Gradient updates per second of calql against d3rlpy's CalQL, same hyperparameters, same
machine, interleaved in one run, printed as the ratio calql / d3rlpy.

For each setting (AntMaze: obs 29, act 8, critic 4x256, policy 2x256; Adroit: obs 39, act 28,
critic 3x512, policy 2x512; batch 256, K = 10, 2 critics), each round measures calql (the
scanned update of benchmarks/update_throughput.py, in this process) and d3rlpy (a subprocess
running benchmarks/d3rlpy/update_rate.py in d3rlpy's own environment), the order alternating
between rounds, so that the load of a shared machine hits both alike. The medians are over
all timed windows of all rounds; "per-round" ratios pair the two measurements of one round.

Other processes distort the ratio (torch with several threads slows down far more than jax
when a core is taken), so each measurement also records how many cores the *other* processes
of the machine used meanwhile (from /proc/stat minus this run's own CPU time). A round is
"clean" when both of its measurements saw less than --max-other-cores; when some but not all
rounds are clean, the table adds a line with the clean rounds only.

    bash benchmarks/d3rlpy/setup.sh          # once: d3rlpy + torch in a separate environment
    python benchmarks/compare_d3rlpy.py [--rounds 3] [--windows 3] [--json results.json]

The d3rlpy environment is $CALQL_D3RLPY_VENV (default ~/.cache/calql-bench/d3rlpy-venv).
"""

import argparse
import json
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import sys
import time

import jax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from update_throughput import SETTINGS, Setting, measure

from calql.config import PRESETS

HERE = pathlib.Path(__file__).resolve().parent
D3RLPY_SCRIPT = HERE / "d3rlpy" / "update_rate.py"
DEFAULT_VENV = pathlib.Path.home() / ".cache" / "calql-bench" / "d3rlpy-venv"

ADROIT = Setting("adroit (obs 39, act 28, critic 3x512, policy 2x512)", 39, 28, PRESETS["adroit"].agent)
# name -> (calql setting, scanned updates per call, calls per window): windows of ~5-8 s at
# the rates of an idle 2-core machine (AntMaze ~6 updates/s, Adroit ~2.5).
CASES = {
    "antmaze": (SETTINGS[0], 10, 3),
    "adroit": (ADROIT, 10, 2),
}


def d3rlpy_python(venv: pathlib.Path) -> pathlib.Path:
    python = venv / "bin" / "python"
    if not python.exists():
        sys.exit(
            f"error: no d3rlpy environment at {venv} (no {python}).\n"
            f"Create it first:  bash {HERE / 'd3rlpy' / 'setup.sh'}\n"
            "(or point CALQL_D3RLPY_VENV / --d3rlpy-venv at an existing one)."
        )
    return python


def _machine_busy_s() -> float:
    """CPU seconds all processes of the machine have spent (NaN where /proc/stat is missing)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return float("nan")
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    return sum(
        getattr(resource.getrusage(who), f)
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        for f in ("ru_utime", "ru_stime")
    )


def timed(function, *args) -> dict:
    """function(*args) plus the mean number of cores other processes used while it ran."""
    busy, own, start = _machine_busy_s(), _own_cpu_s(), time.perf_counter()
    result = function(*args)
    wall = time.perf_counter() - start
    others = (_machine_busy_s() - busy - (_own_cpu_s() - own)) / wall
    return {**result, "other_cores": max(others, 0.0)}


def measure_d3rlpy(python: pathlib.Path, name: str, args: argparse.Namespace) -> dict:
    command = [
        str(python),
        str(D3RLPY_SCRIPT),
        "--setting",
        name,
        "--path",
        args.d3rlpy_path,
        "--windows",
        str(args.windows),
        "--window-seconds",
        str(args.window_seconds),
        "--threads",
        str(args.d3rlpy_threads),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        sys.exit(
            f"error: d3rlpy measurement failed ({' '.join(command)}), exit {done.returncode}:\n" + done.stderr[-3000:]
        )
    return json.loads(lines[-1])


def measure_calql(name: str, windows: int) -> dict:
    setting, per_call, calls = CASES[name]
    result = measure(setting, windows, per_call, calls)
    return {
        "updates_per_s": result["rate"],
        "windows": result["rates"],
        "compile_s": result["compile_s"],
        "flops": result["flops"],
    }


def summary(calql: list[dict], d3: list[dict]) -> dict:
    if not calql:
        return {}
    calql_windows = [w for m in calql for w in m["windows"]]
    d3_windows = [w for m in d3 for w in m["windows"]]
    median_c, median_d = statistics.median(calql_windows), statistics.median(d3_windows)
    return {
        "calql": median_c,
        "d3rlpy": median_d,
        "ratio": median_c / median_d,
        "calql_windows": calql_windows,
        "d3rlpy_windows": d3_windows,
        "round_ratios": [c["updates_per_s"] / d["updates_per_s"] for c, d in zip(calql, d3)],
    }


def fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", choices=sorted(CASES), default=["antmaze", "adroit"])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved calql/d3rlpy pairs per setting")
    parser.add_argument("--windows", type=int, default=3, help="timed windows per measurement")
    parser.add_argument("--window-seconds", type=float, default=5.0, help="length of a d3rlpy window")
    parser.add_argument(
        "--d3rlpy-venv", type=pathlib.Path, default=pathlib.Path(os.environ.get("CALQL_D3RLPY_VENV", DEFAULT_VENV))
    )
    parser.add_argument("--d3rlpy-threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    parser.add_argument(
        "--d3rlpy-path",
        choices=["impl", "algo"],
        default="impl",
        help="impl: d3rlpy's gradient step on pre-converted batches; algo: algo.update(), "
        "which adds numpy->torch conversion and returns-to-go per step",
    )
    parser.add_argument(
        "--max-other-cores",
        type=float,
        default=0.2,
        help="a round is clean when other processes used fewer cores than this during it",
    )
    parser.add_argument("--json", type=pathlib.Path, help="also write every measurement to this file")
    args = parser.parse_args()

    python = d3rlpy_python(args.d3rlpy_venv)
    start = time.perf_counter()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}; jax {jax.__version__} {jax.devices()}"
    )
    if os.getloadavg()[0] > 1.0:
        print(
            "warning: other processes are using the CPU; both rates drop, torch's with several threads "
            "much more than jax's (its OpenMP threads wait on each other): the ratio is then inflated. "
            "Rerun on an idle machine, or compare with --d3rlpy-threads 1."
        )
    results = {}
    for name in args.settings:
        calql, d3 = [], []
        for r in range(args.rounds):
            order = ("calql", "d3rlpy") if r % 2 == 0 else ("d3rlpy", "calql")
            for which in order:
                if which == "calql":
                    calql.append(timed(measure_calql, name, args.windows))
                else:
                    d3.append(timed(measure_d3rlpy, python, name, args))
            print(
                f"  {name} round {r + 1}/{args.rounds} ({' then '.join(order)}): "
                f"calql {fmt(calql[-1]['windows'])} | d3rlpy {fmt(d3[-1]['windows'])} updates/s; "
                f"other processes used {calql[-1]['other_cores']:.2f} | {d3[-1]['other_cores']:.2f} cores",
                flush=True,
            )
        clean = [max(c["other_cores"], d["other_cores"]) < args.max_other_cores for c, d in zip(calql, d3)]
        results[name] = {
            **summary(calql, d3),
            "clean_rounds": sum(clean),
            "clean": summary([c for c, k in zip(calql, clean) if k], [d for d, k in zip(d3, clean) if k]),
            "other_cores": [[c["other_cores"], d["other_cores"]] for c, d in zip(calql, d3)],
            "calql_gflop_per_update": calql[0]["flops"] / 1e9,
            "torch": d3[0]["torch"],
            "d3rlpy_version": d3[0]["d3rlpy"],
            "d3rlpy_threads": d3[0]["threads"],
            "d3rlpy_path": d3[0]["path"],
        }
    first = next(iter(results.values()))
    print(
        f"\ncalql (jax {jax.__version__}) vs d3rlpy {first['d3rlpy_version']} CalQL (torch {first['torch']}, "
        f"{first['d3rlpy_threads']} threads, path '{first['d3rlpy_path']}'); {args.rounds} interleaved rounds x "
        f"{args.windows} windows; load average now {os.getloadavg()[0]:.2f}; total {time.perf_counter() - start:.0f} s"
    )
    print(f"{'setting':<18} {'calql upd/s':>12} {'d3rlpy upd/s':>13} {'calql/d3rlpy':>13}   per-round ratios")
    for name, res in results.items():
        rows = [(f"{name} (all {args.rounds})", res)]
        if 0 < res["clean_rounds"] < args.rounds:
            rows.append((f"{name} (clean {res['clean_rounds']})", res["clean"]))
        for label, row in rows:
            print(
                f"{label:<18} {row['calql']:>12.2f} {row['d3rlpy']:>13.2f} {row['ratio']:>12.2f}x   "
                f"{fmt(row['round_ratios'])}"
            )
    noisy = [name for name, res in results.items() if res["clean_rounds"] < args.rounds]
    if noisy:
        print(
            f"note: other processes used >= {args.max_other_cores} cores during some rounds of "
            f"{', '.join(noisy)}; trust the clean rounds, or rerun on an idle machine."
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
