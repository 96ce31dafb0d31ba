"""Overhead of running trials through `calql sweep` (Ray) against running them directly.

The same trials (Cal-QL and CQL x seeds on the built-in task, small budget) are run three ways,
in fresh folders, and the wall times printed:

  direct      `calql train` once per trial, one after another (what a user would script);
  ray-serial  `calql sweep --cpus-per-trial N_CPUS`: Ray runs one trial at a time, so the
              difference with `direct` is Ray's own cost (start-up, scheduling, workers);
  ray         `calql sweep` with 1 CPU per trial: trials side by side on this machine.

    python benchmarks/sweep_overhead.py [--seeds 2] [--offline-steps 2000] [--online-steps 2000]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CALQL = [sys.executable, "-m", "calql.cli"]


def _options(args) -> list[str]:
    return [
        "--offline-steps",
        str(args.offline_steps),
        "--online-steps",
        str(args.online_steps),
        "--eval-every",
        "1000",
        "--eval-episodes",
        "5",
        "--no-tensorboard",
    ]


def _timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--offline-steps", type=int, default=2000)
    parser.add_argument("--online-steps", type=int, default=2000)
    args = parser.parse_args()
    seeds = [str(seed) for seed in range(args.seeds)]
    methods = ("calql", "cql")
    cpus = os.cpu_count()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        subprocess.run(
            [*CALQL, "datasets", "generate", "pointmaze-umaze", "--size", "200000"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        direct = sum(
            _timed(
                [*CALQL, "train", *_options(args), "--algo", method, "--seed", seed, "--run-dir", str(root / "direct")],
                root,
            )
            for seed in seeds
            for method in methods
        )
        sweep = [
            *CALQL,
            "sweep",
            "--tasks",
            "pointmaze-umaze",
            "--methods",
            *methods,
            "--seeds",
            *seeds,
            *_options(args),
        ]
        serial = _timed([*sweep, "--out", str(root / "serial"), "--cpus-per-trial", str(cpus)], root)
        parallel = _timed([*sweep, "--out", str(root / "parallel"), "--cpus-per-trial", "1"], root)
    trials = len(seeds) * len(methods)
    print(f"{trials} trials ({args.offline_steps} offline + {args.online_steps} online steps each), {cpus} CPUs")
    print(f"direct (calql train, one after another): {direct:.1f} s")
    print(
        f"calql sweep, one trial at a time:        {serial:.1f} s  (ratio {serial / direct:.3f}; "
        f"{(serial - direct) / trials:+.1f} s per trial)"
    )
    print(f"calql sweep, 1 CPU per trial:            {parallel:.1f} s  (ratio {parallel / direct:.3f})")


if __name__ == "__main__":
    main()
