"""The run directory's layout and its metrics rows, named once for every layer that writes or
reads them (training writes; reporting, evaluation and sweeps read).

RUN_DIR/
  config.json        {"calql_version", "config": TrainConfig as a dict}
  metrics.jsonl      one JSON row per record: {"phase", "step", metric: value, ...}
  summary.json       the final numbers, written atomically at the end (a run that has one is finished)
  tensorboard/       the same scalars for TensorBoard
  checkpoints/STEP/  orbax checkpoints of the whole training state
"""

from pathlib import Path

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
TENSORBOARD_FOLDER = "tensorboard"
CHECKPOINT_FOLDER = "checkpoints"

OFFLINE, ONLINE = "offline", "online"
"""The two phases; a row's "phase" is PHASE/KIND: offline/train, offline/eval, offline/reference,
online/train, online/eval. "step" counts offline gradient steps or online environment steps."""


def is_finished(run_dir: str | Path) -> bool:
    """Whether the run in `run_dir` has ended (it has its summary.json)."""
    return (Path(run_dir) / SUMMARY_FILE).is_file()


def row_phase(phase: str, kind: str) -> str:
    """The "phase" field of a metrics row: row_phase("online", "eval") -> "online/eval"."""
    return f"{phase}/{kind}"
