"""Copy a sweep folder's small files (per finished trial: config.json, metrics.jsonl, summary.json;
and the spec manifest) to a destination, leaving checkpoints, TensorBoard events, logs and
unfinished trials behind; then rebuild the report there from the copies.

    python experiments/keep_results.py SWEEP_DIR DEST
"""

import shutil
import sys
from pathlib import Path

from calql.commands.sweep import write_sweep_report

KEPT = ("config.json", "metrics.jsonl", "summary.json")


def main(source: str, dest: str) -> None:
    source_dir, dest_dir = Path(source), Path(dest)
    for run in sorted((source_dir / "trials").iterdir()):
        if run.is_dir() and (run / "summary.json").is_file():
            (dest_dir / "trials" / run.name).mkdir(parents=True, exist_ok=True)
            for name in KEPT:
                if (run / name).is_file():
                    shutil.copy2(run / name, dest_dir / "trials" / run.name / name)
    shutil.copy2(source_dir / "sweep.json", dest_dir / "sweep.json")
    print(f"report: {write_sweep_report(dest_dir)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
