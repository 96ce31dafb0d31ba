"""The run directory: resolved configuration, metrics as JSON lines and TensorBoard events
(and optionally Weights & Biases), and a summary."""

import dataclasses
import json
import time
import warnings
from pathlib import Path

import numpy as np

from calql.config import TrainConfig
from calql.rundir import CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, TENSORBOARD_FOLDER
from calql.version import __version__

UPDATE_LANES = "update_lanes"
"""config.json's record of the seeds in the run's vmapped update (see training.run.Run.update_lanes)."""


def _plain(value):
    """JSON-friendly scalars from numpy / jax values."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "item"):
        return value.item()
    return value


def new_run_dir(config: TrainConfig) -> Path:
    """RUN_DIR/RUN_NAME, by default named after task, algorithm, seed and time."""
    name = config.run_name or f"{config.task}-{config.algo}-s{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    return Path(config.run_dir) / name


def write_text_atomically(path: Path, text: str) -> None:
    """Write then rename: a reader sees the old file or the whole new one, never half of it."""
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(text)
        partial.replace(path)
    except OSError:
        partial.unlink(missing_ok=True)  # a full disk leaves no half-written copy behind
        raise


def read_config(run_dir: Path) -> dict:
    """The saved configuration of a run directory (as a dict)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: not a calql run directory (no {CONFIG_FILE}); pass the folder `calql train` printed"
        )
    return json.loads(path.read_text())["config"]


def read_update_lanes(run_dir: Path) -> int:
    """The number of seeds the run's vmapped update was started with (1 for a single-seed run;
    config.json files from before this was recorded count as 1)."""
    return int(json.loads((Path(run_dir) / CONFIG_FILE).read_text()).get(UPDATE_LANES, 1))


def _truncate_lines(path: Path, keep: int) -> None:
    """Drop every line after the first `keep` (records written after the checkpoint resumed from)."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:keep]))


class RunLog:
    """Append-only metrics of one run. On resume, the lines and TensorBoard events written after
    the checkpoint are discarded so the log continues exactly where the checkpoint left it."""

    def __init__(
        self,
        path: Path,
        config: TrainConfig,
        resume_lines: int | None = None,
        resume_step: int | None = None,
        update_lanes: int = 1,
    ):
        self.path, self.config = Path(path), config
        self.path.mkdir(parents=True, exist_ok=True)
        if resume_lines is None:
            meta = {"calql_version": __version__, "config": dataclasses.asdict(config), UPDATE_LANES: update_lanes}
            (self.path / CONFIG_FILE).write_text(json.dumps(meta, indent=2, default=str))
            (self.path / METRICS_FILE).write_text("")
            self.lines = 0
        else:
            _truncate_lines(self.path / METRICS_FILE, resume_lines)
            self.lines = resume_lines
        self._file = open(self.path / METRICS_FILE, "a")
        self._tensorboard = self._open_tensorboard(resume_step) if config.tensorboard else None
        self._wandb = self._open_wandb() if config.wandb else None

    def _open_tensorboard(self, resume_step: int | None):
        from tensorboardX import SummaryWriter

        # purge_step makes TensorBoard drop events at or after it that an interrupted run wrote.
        purge = None if resume_step is None else resume_step + 1
        return SummaryWriter(str(self.path / TENSORBOARD_FOLDER), purge_step=purge)

    def _open_wandb(self):
        try:
            import wandb

            return wandb.init(
                project=self.config.wandb_project,
                name=self.path.name,
                dir=str(self.path),
                config=dataclasses.asdict(self.config),
                settings=wandb.Settings(init_timeout=30),
            )
        except Exception as error:  # W&B is optional: a missing package or no network never stops a run
            warnings.warn(f"Weights & Biases disabled: {type(error).__name__}: {error}", stacklevel=2)
            return None

    def timeline(self, phase: str, step: int) -> int:
        """One increasing axis for TensorBoard / W&B: offline gradient steps, then offline_steps + env steps."""
        return step if phase.startswith("offline") else self.config.offline_steps + step

    def record(self, phase: str, step: int, metrics: dict) -> dict:
        row = {"phase": phase, "step": step, **_plain(metrics)}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        self.lines += 1
        position = self.timeline(phase, step)
        scalars = {f"{phase}/{k}": v for k, v in row.items() if k not in ("phase", "step") and np.isscalar(v)}
        if self._tensorboard is not None:
            for tag, value in scalars.items():
                self._tensorboard.add_scalar(tag, value, position)
        if self._wandb is not None:
            try:
                self._wandb.log(scalars, step=position)
            except Exception as error:
                warnings.warn(f"Weights & Biases logging stopped: {error}", stacklevel=2)
                self._wandb = None
        return row

    def write_summary(self, summary: dict) -> None:
        """Atomically: a summary.json that exists is complete (sweeps skip runs that have one)."""
        write_text_atomically(self.path / SUMMARY_FILE, json.dumps(_plain(summary), indent=2))

    def close(self) -> None:
        self._file.close()
        if self._tensorboard is not None:
            self._tensorboard.close()
        if self._wandb is not None:
            self._wandb.finish()


def mean_metrics(metrics: dict) -> dict[str, float]:
    return {k: float(np.asarray(v)) for k, v in metrics.items()}
