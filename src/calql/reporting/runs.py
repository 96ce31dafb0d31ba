"""Run directories (config.json, metrics.jsonl, summary.json) -> per-seed curves.

Evaluations of different seeds happen at different online steps: the loop evaluates at the
end of the first episode past each multiple of `eval_every`. Curves are therefore put on the
grid of nominal steps (k * eval_every, and online_steps), each seed contributing the
evaluation it took when it passed that step -- a value copied from its metrics, never
interpolated. Offline evaluations happen at the same gradient steps for every seed.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np

from calql.config import online_eval_steps
from calql.errors import CalqlError
from calql.methods import METHODS, method_of
from calql.reporting.stats import curve_interval
from calql.rundir import CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, row_phase

REQUIRED_SETTINGS = ("task", "algo", "seed", "online_steps", "eval_every")


class RunDirError(CalqlError):
    """A path that is not a readable run directory."""


@dataclasses.dataclass(frozen=True)
class RunData:
    """One run directory, read."""

    path: Path
    config: dict
    """TrainConfig as a dict (config.json's "config")."""
    rows: list[dict]
    """metrics.jsonl, one dict per line."""
    summary: dict | None
    """summary.json; None while the run has not finished."""

    @property
    def task(self) -> str:
        return self.config["task"]

    @property
    def algo(self) -> str:
        """The method: "calql", "cql", or "calql-learned" (Cal-QL with --reference learned)."""
        return method_of(self.config)

    @property
    def seed(self) -> int:
        return self.config["seed"]

    def evals(self, phase: str) -> list[dict]:
        """The evaluation rows of phase "offline" or "online", in order."""
        return [row for row in self.rows if row["phase"] == row_phase(phase, "eval")]


@dataclasses.dataclass(frozen=True)
class Curve:
    """A metric of several seeds on a common step grid."""

    steps: np.ndarray
    """(points,) offline gradient steps or online environment steps."""
    values: np.ndarray
    """(seeds, points), NaN where a seed has no value (a run still going)."""

    def interval(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, low, high) per point: mean over seeds and its 95% bootstrap interval."""
        return curve_interval(self.values)


def _read_metrics(path: Path) -> list[dict]:
    text = path.read_text()
    lines = text.splitlines()
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines) and not text.endswith("\n"):
                break  # a line cut short by a killed run
            raise RunDirError(f"{path}: line {number} is not valid JSON") from None
    return rows


def load_run(path: str | Path) -> RunData:
    """Read one run directory; RunDirError naming the path if it is not one."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"{path}: no such run directory")
    for name in (METRICS_FILE, CONFIG_FILE):
        if not (path / name).is_file():
            raise RunDirError(f"{path}: not a run directory (no {name})")
    try:
        config = json.loads((path / CONFIG_FILE).read_text())["config"]
        missing = [key for key in REQUIRED_SETTINGS if key not in config]
    except (json.JSONDecodeError, KeyError, TypeError):
        missing = ["config"]
    if missing:
        raise RunDirError(f"{path / CONFIG_FILE}: not a calql run configuration (no {', '.join(missing)})")
    summary_path = path / SUMMARY_FILE
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    return RunData(path, config, _read_metrics(path / METRICS_FILE), summary)


def find_runs(paths: list[str | Path]) -> list[RunData]:
    """Run directories, or folders whose subfolders are run directories (e.g. `runs/`)."""
    runs = []
    for path in map(Path, paths):
        children = sorted(p for p in path.iterdir() if (p / METRICS_FILE).is_file()) if path.is_dir() else []
        if (path / METRICS_FILE).is_file() or not children:
            runs.append(load_run(path))
        else:
            runs.extend(load_run(child) for child in children)
    return runs


def group_runs(runs: list[RunData]) -> dict[tuple[str, str], list[RunData]]:
    """{(task, algo): runs sorted by seed}, tasks sorted, methods in calql.methods' order."""
    order = list(METHODS)

    def algo_rank(algo):
        return order.index(algo) if algo in order else len(order)

    groups: dict[tuple[str, str], list[RunData]] = {}
    for run in sorted(runs, key=lambda r: (r.task, algo_rank(r.algo), r.algo, r.seed, str(r.path))):
        groups.setdefault((run.task, run.algo), []).append(run)
    return groups


def _at_or_after(rows: list[dict], key: str, grid: np.ndarray) -> np.ndarray:
    """For each grid step, `key` of the first row whose step is >= it (NaN if none)."""
    steps = np.array([row["step"] for row in rows])
    index = np.searchsorted(steps, grid, side="left")
    return np.array([rows[i].get(key, np.nan) if i < len(rows) else np.nan for i in index], dtype=float)


def offline_curve(runs: list[RunData], key: str) -> Curve:
    """`key` of the offline evaluations, on the union of their gradient steps."""
    grid = np.array(sorted({row["step"] for run in runs for row in run.evals("offline")}), dtype=int)
    return Curve(grid, np.array([_at_or_after(run.evals("offline"), key, grid) for run in runs]).reshape(len(runs), -1))


def online_grid(config: dict) -> list[int]:
    """The nominal online evaluation steps of a run (config.online_eval_steps). Runs made before
    calql evaluated at online step 0 (no "start_evals" option) have no 0 on their grid."""
    every, total = config["eval_every"], config["online_steps"]
    if "start_evals" not in config:
        return [*range(every, total, every), total] if total > 0 else []
    return online_eval_steps(total, every, config["start_evals"], config["start_eval_fraction"])


def online_curve(runs: list[RunData], key: str, start: bool = True) -> Curve:
    """`key` of the online evaluations on the nominal grid (see the module docstring). With
    start and runs that have no evaluation at online step 0, step 0 holds the last offline
    evaluation (the same pre-trained policy); without start, step 0 is left out."""
    grid = np.array(sorted({step for run in runs for step in online_grid(run.config)}), dtype=int)
    if not start:
        grid = grid[grid > 0]
    values = np.array([_at_or_after(run.evals("online"), key, grid) for run in runs]).reshape(len(runs), -1)
    if start and (not grid.size or grid[0] != 0):
        first = [run.evals("offline")[-1].get(key, np.nan) if run.evals("offline") else np.nan for run in runs]
        grid, values = np.concatenate([[0], grid]), np.column_stack([first, values])
    return Curve(grid, values)
