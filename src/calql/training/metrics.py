"""The run directory: resolved configuration, metrics as JSON lines, and a summary."""

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

import calql
from calql.config import TrainConfig


def _plain(value):
    """JSON-friendly scalars from numpy / jax values."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "item"):
        return value.item()
    return value


class RunLog:
    """Writes config.json once, appends one metrics.jsonl line per record, keeps history."""

    def __init__(self, config: TrainConfig):
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.path = Path(config.run_dir) / f"{config.task}-{config.algo}-s{config.seed}-{stamp}"
        self.path.mkdir(parents=True, exist_ok=True)
        self.history: list[dict] = []
        meta = {"calql_version": calql.__version__, "config": dataclasses.asdict(config)}
        (self.path / "config.json").write_text(json.dumps(meta, indent=2, default=str))
        self._file = open(self.path / "metrics.jsonl", "a")

    def record(self, phase: str, step: int, metrics: dict) -> dict:
        row = {"phase": phase, "step": step, **_plain(metrics)}
        self.history.append(row)
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        return row

    def write_summary(self, summary: dict) -> None:
        (self.path / "summary.json").write_text(json.dumps(_plain(summary), indent=2))

    def close(self) -> None:
        self._file.close()


def mean_metrics(metrics: dict) -> dict[str, float]:
    return {k: float(np.asarray(v)) for k, v in metrics.items()}
