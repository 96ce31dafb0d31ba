"""The evaluation protocol's numbers, defined once (used by `calql plot`, `compare`, `sweep
--report` and experiments/summarize.py):

- start score: the evaluation at online step 0, before the first online transition (the
  pre-trained policy); for runs made before calql evaluated there, the last offline evaluation.
- final score: the mean of the last FINAL_EVALUATIONS online evaluations (one evaluation of a
  sparse task is close to a coin flip; three are steadier).
- fine-tuning dip: start score minus the lowest score among the evaluations due in the first
  `start_eval_fraction` (default 20%) of fine-tuning; 0 when it never drops below the start.
- cumulative regret: the mean of (1 - success) over the online training episodes (summary.json).
"""

import math

import numpy as np

from calql.reporting.runs import RunData, online_grid

FINAL_EVALUATIONS = 3
DEFAULT_WINDOW = 0.2
"""The dip's window for runs whose configuration predates --start-eval-fraction."""


def start_score(run: RunData) -> float:
    """The pre-trained policy's normalized score at the switch to fine-tuning (NaN if none)."""
    online = run.evals("online")
    if online and online[0]["step"] == 0:
        return float(online[0]["normalized_score"])
    offline = run.evals("offline")
    return float(offline[-1]["normalized_score"]) if offline else math.nan


def final_score(run: RunData, last: int = FINAL_EVALUATIONS) -> float:
    """Mean normalized score of the last `last` online evaluations past step 0 (NaN if none)."""
    scores = [row["normalized_score"] for row in run.evals("online") if row["step"] > 0][-last:]
    return float(np.mean(scores)) if scores else math.nan


def nominal_step(run: RunData, step: int) -> int:
    """The evaluation step an evaluation taken at `step` was due at: the loop evaluates at the end
    of the first episode past each nominal step, so it is the largest nominal step <= `step`."""
    grid = [s for s in online_grid(run.config) if s <= step]
    return grid[-1] if grid else 0


def finetuning_dip(run: RunData) -> float:
    """Start score minus the lowest score due in the first window of fine-tuning; 0 when it never
    drops, NaN without a start score or any evaluation in the window."""
    window = run.config.get("start_eval_fraction", DEFAULT_WINDOW) * run.config["online_steps"]
    early = [
        row["normalized_score"]
        for row in run.evals("online")
        if row["step"] > 0 and nominal_step(run, row["step"]) <= window
    ]
    start = start_score(run)
    if not early or math.isnan(start):
        return math.nan
    return max(0.0, start - min(early))


def cumulative_regret(run: RunData) -> float:
    """The summary's regret; NaN ("n/a" in reports) for an unfinished run or one without online
    episodes (regret null, or NaN as older runs wrote it)."""
    regret = None if run.summary is None else run.summary.get("regret")
    return math.nan if regret is None else float(regret)
