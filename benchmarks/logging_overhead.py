"""Overhead of logging (JSON lines + TensorBoard) and checkpointing on the update rate.

Runs the same offline pre-training twice per repeat, interleaved: with TensorBoard and a
checkpoint every --checkpoint-every steps, and with TensorBoard off and checkpoints only at
the end; prints the median updates per second of each and their ratio.

    python benchmarks/logging_overhead.py [--steps 4000] [--repeats 3]
"""

import argparse
import tempfile
import time

import numpy as np

from calql.options import parse_train_args
from calql.training.loop import train


def updates_per_second(extra: list[str], steps: int, run_dir: str) -> float:
    args = [
        "--task",
        "pointmaze-umaze",
        "--offline-steps",
        str(steps),
        "--online-steps",
        "0",
        "--dataset-size",
        "50000",
        "--eval-episodes",
        "1",
        "--run-dir",
        run_dir,
        *extra,
    ]
    config = parse_train_args(args)
    start = time.perf_counter()
    result = train(config)
    elapsed = time.perf_counter() - start - result.timers.get("dataset", 0.0) - result.timers.get("evaluate", 0.0)
    return steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkpoint-every", type=int, default=1000)
    args = parser.parse_args()
    on = ["--tensorboard", "--checkpoint-every", str(args.checkpoint_every)]
    off = ["--no-tensorboard", "--checkpoint-every", "0"]
    rates: dict[str, list[float]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory() as folder:
        updates_per_second(off, 200, folder)  # warm-up: dataset generation and compilation caches
        for _ in range(args.repeats):
            rates["on"].append(updates_per_second(on, args.steps, folder))
            rates["off"].append(updates_per_second(off, args.steps, folder))
    on_rate, off_rate = np.median(rates["on"]), np.median(rates["off"])
    print(
        f"logging + checkpoint every {args.checkpoint_every} steps: {on_rate:.1f} updates/s "
        f"(runs: {', '.join(f'{r:.1f}' for r in rates['on'])})"
    )
    print(
        f"JSON lines only, checkpoint at the end: {off_rate:.1f} updates/s "
        f"(runs: {', '.join(f'{r:.1f}' for r in rates['off'])})"
    )
    print(f"ratio on/off: {on_rate / off_rate:.3f}")


if __name__ == "__main__":
    main()
