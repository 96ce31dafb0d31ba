"""`calql eval RUN_DIR_or_CHECKPOINT --episodes N [--video FILE]`: evaluate a trained policy.

Reports mean return, normalized score and success rate with 95% bootstrap confidence
intervals over episodes; `--video` records the episodes (MuJoCo tasks, MUJOCO_GL=egl).
"""

import argparse
import os
from pathlib import Path


def main(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="calql eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("path", type=Path, help="a run directory (newest checkpoint) or RUN_DIR/checkpoints/STEP")
    parser.add_argument("--episodes", type=int, default=20, help="evaluation episodes (deterministic policy)")
    parser.add_argument("--seed", type=int, default=12345, help="seed of the evaluation environment")
    parser.add_argument("--video", type=Path, default=None, help="record the episodes to this file (.mp4 or .gif)")
    options = parser.parse_args(args)
    if options.video is not None:
        os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; must precede the first mujoco import
    from calql.evaluation import evaluate_run  # after MUJOCO_GL: it imports MuJoCo

    result = evaluate_run(options.path, options.episodes, options.seed, options.video)
    print(f"{result.algo} on {result.task}, {result.episodes} episodes (mean [95% bootstrap CI]):")
    for name, (mean, low, high) in (
        ("return", result.returns),
        ("normalized_score", result.normalized_score),
        ("success", result.success),
    ):
        print(f"  {name:17s} {mean:8.3f}  [{low:.3f}, {high:.3f}]")
    if options.video is not None:
        print(f"  video: {options.video}")
    return 0
