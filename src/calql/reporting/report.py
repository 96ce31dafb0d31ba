"""The Markdown report: figures per task, a table per (task, algo) of offline score,
fine-tuned score and cumulative regret over seeds (also as CSV), the per-seed numbers, and
rliable-style aggregates (IQM, probability of improvement) when several tasks are compared.
Every number comes from the runs' summary.json; runs without one (still going) are plotted
but not tabulated."""

import csv
import math
from pathlib import Path

import numpy as np

from calql.config import PREDATED_OPTIONS, unread_options
from calql.methods import label
from calql.reporting import stats
from calql.reporting.plots import FIGURES, Plot, plot_task
from calql.reporting.protocol import FINAL_EVALUATIONS, cumulative_regret, final_score, finetuning_dip, start_score
from calql.reporting.runs import RunData, group_runs
from calql.version import __version__

RESULTS = {
    "offline_score": "score after pre-training",
    "final_score": "score after fine-tuning",
    "regret": "cumulative regret",
    "dip": "fine-tuning dip",
}
"""Column -> heading; the definitions are calql.reporting.protocol's. Scores are normalized (0-100);
regret is in [0, 1], lower is better; the dip is 0 without unlearning."""
DIGITS = {"offline_score": 1, "final_score": 1, "regret": 3, "dip": 1}
"""Decimals shown in the Markdown tables (the CSV files keep full precision)."""
SETTINGS_IGNORED = {
    "seed",
    "algo",
    "reference",
    "task",
    "run_dir",
    "run_name",
    "resume",
    "checkpoint_every",
    "keep_checkpoints",
    "tensorboard",
    "wandb",
    "wandb_project",
}
"""Options that do not change results (or differ by design): not flagged when runs differ in them."""


def run_results(run: RunData) -> dict[str, float] | None:
    """A finished run's numbers from its summary.json; None if it has none yet."""
    if run.summary is None:
        return None
    return {
        "offline_score": start_score(run),
        "final_score": final_score(run),
        "regret": cumulative_regret(run),
        "dip": finetuning_dip(run),
    }


def _finished(runs: list[RunData]) -> list[RunData]:
    return [run for run in runs if run.summary is not None]


def summary_rows(groups: dict[tuple[str, str], list[RunData]]) -> list[dict]:
    """One row per (task, algo): each result's mean and 95% bootstrap interval over finished seeds."""
    rows = []
    for (task, algo), runs in groups.items():
        finished = [run_results(run) for run in _finished(runs)]
        row = {"task": task, "algo": algo, "seeds": len(finished)}
        for key in RESULTS:
            mean, low, high = stats.mean_interval([result[key] for result in finished])
            row.update({key: mean, f"{key}_low": low, f"{key}_high": high})
        rows.append(row)
    return rows


def seed_rows(groups: dict[tuple[str, str], list[RunData]]) -> list[dict]:
    """One row per run, its summary.json numbers as they are (NaN while it is running)."""
    rows = []
    for (task, algo), runs in groups.items():
        for run in runs:
            results = run_results(run) or dict.fromkeys(RESULTS, math.nan)
            rows.append(
                {
                    "task": task,
                    "algo": algo,
                    "seed": run.seed,
                    **results,
                    "finished": run.summary is not None,
                    "run_dir": str(run.path),
                }
            )
    return rows


REFERENCE_METHOD = "calql"
"""The method every other is compared with in the probability of improvement."""


def aggregate_rows(groups: dict[tuple[str, str], list[RunData]]) -> list[dict]:
    """With several tasks: IQM per method over all tasks and seeds, and P(Cal-QL better than each
    other method), each with a stratified bootstrap interval. Empty with fewer than two tasks."""
    tasks = sorted({task for task, _ in groups})
    algos = [a for a in dict.fromkeys(algo for _, algo in groups) if all((t, a) in groups for t in tasks)]
    if len(tasks) < 2:
        return []

    def per_task(algo, key, sign=1.0):
        return [sign * np.array([run_results(r)[key] for r in _finished(groups[t, algo])]) for t in tasks]

    rows = []
    for algo in algos:
        for key, heading in RESULTS.items():
            if all(scores.size for scores in per_task(algo, key)):
                value = stats.iqm_interval(per_task(algo, key))
                rows.append(
                    {"statistic": f"IQM of {heading}", "algo": _algo(algo), "value": value, "digits": DIGITS[key]}
                )
    for other in [algo for algo in algos if algo != REFERENCE_METHOD] if REFERENCE_METHOD in algos else []:
        rows.extend(_improvement_rows(REFERENCE_METHOD, other, per_task))
    return rows


def _improvement_rows(first: str, second: str, per_task) -> list[dict]:
    """P(first better than second) per result, with its interval; a result some run lacks (the dip
    and the pre-trained score of a method without pre-training, RLPD) is left out."""
    rows = []
    for key, heading in RESULTS.items():
        sign = -1.0 if key in ("regret", "dip") else 1.0  # lower regret and dip are the improvement
        x, y = per_task(first, key, sign), per_task(second, key, sign)
        if all(s.size and np.isfinite(s).all() for s in x + y):
            better = "lower" if key in ("regret", "dip") else "higher"
            rows.append(
                {
                    "statistic": f"P({label(first)} {better} {heading} than {label(second)})",
                    "algo": f"{label(first)} vs {label(second)}",
                    "value": stats.improvement_interval(x, y),
                    "digits": 2,
                }
            )
    return rows


def _fmt(digits: int, mean: float, low: float | None = None, high: float | None = None) -> str:
    """ "mean [low, high]", or "mean" alone; "n/a" for NaN (regret of a run with no online phase)."""
    if not np.isfinite(mean):
        return "n/a"
    interval = f" [{low:.{digits}f}, {high:.{digits}f}]" if low is not None else ""
    return f"{mean:.{digits}f}{interval}"


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)


def _flat(config: dict, prefix: str = "") -> dict[str, str]:
    """{"agent.cql_alpha": "5.0", ...}: nested settings with dotted names, values as text."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        elif key not in SETTINGS_IGNORED:
            flat[prefix + key] = str(value)
    return flat


def _differing_settings(runs: list[RunData]) -> dict[str, list]:
    """Settings (other than SETTINGS_IGNORED) whose values are not the same in every run that reads
    them (IQL's options only count in IQL runs: config.unread_options; a run directory from before
    an option existed counts as its PREDATED_OPTIONS value)."""
    flat = [{**PREDATED_OPTIONS, **_flat(run.config)} for run in runs]
    unread = [unread_options(run.config.get("algo", "calql")) for run in runs]
    differing = {}
    for key in sorted({k for settings in flat for k in settings}):
        values = {settings.get(key, "-") for settings, skip in zip(flat, unread, strict=True) if key not in skip}
        if len(values) > 1:
            differing[key] = sorted(values)
    return differing


def _algo(algo: str) -> str:
    return label(algo)


def _header(runs: list[RunData]) -> list[str]:
    settings = runs[0].config
    lines = [
        f"# calql report ({len(runs)} runs)",
        "",
        f"calql {__version__}. Intervals: 95% bootstrap confidence interval of the mean over seeds "
        f"({stats.RESAMPLES} resamples). Scores are normalized (0-100); cumulative regret is the mean of "
        "(1 - success) over online episodes, lower is better. Score after pre-training: the evaluation at "
        "online step 0 (before the first online transition). Score after fine-tuning: the mean of the last "
        f"{FINAL_EVALUATIONS} evaluations. Fine-tuning dip: the score after pre-training minus the lowest "
        "evaluated score in the first 20% of fine-tuning (0 = no unlearning).",
        "",
        f"Settings: {settings.get('offline_steps')} offline gradient steps, {settings.get('online_steps')} "
        f"online environment steps, {settings.get('eval_episodes')} evaluation episodes, dataset "
        f"{settings.get('dataset') or 'the task default'} (--dataset-size {settings.get('dataset_size')}, used by "
        f"generated datasets of variable size; dataset seed {settings.get('dataset_seed')}).",
        "",
    ]
    if differing := _differing_settings(runs):
        lines += [
            "**Settings differ between runs:** " + "; ".join(f"{k}: {', '.join(v)}" for k, v in differing.items()),
            "",
        ]
    return lines


def _results_table(groups) -> list[str]:
    lines = [
        "## Results",
        "",
        "| task | algorithm | seeds | " + " | ".join(RESULTS.values()) + " |",
        "|---|---|---|" + "---|" * len(RESULTS),
    ]
    for row in summary_rows(groups):
        cells = [_fmt(DIGITS[k], row[k], row[f"{k}_low"], row[f"{k}_high"]) for k in RESULTS]
        lines.append(f"| {row['task']} | {_algo(row['algo'])} | {row['seeds']} | " + " | ".join(cells) + " |")
    return lines + ["", "Also in `results.csv` (full precision); per-seed numbers in `seeds.csv` and below.", ""]


def _aggregates_table(aggregates: list[dict]) -> list[str]:
    if not aggregates:
        return []
    lines = [
        "## Aggregates over tasks",
        "",
        "IQM: interquartile mean over all tasks and seeds; P: probability of "
        "improvement (Agarwal et al., 2021); 95% stratified bootstrap intervals. Also in `aggregates.csv`.",
        "",
        "| statistic | algorithm | value |",
        "|---|---|---|",
    ]
    return lines + [f"| {r['statistic']} | {r['algo']} | {_fmt(r['digits'], *r['value'])} |" for r in aggregates] + [""]


def _figures(figures: dict[str, dict[str, Plot]], out: Path) -> list[str]:
    lines = []
    for task in sorted(figures):
        lines += [f"## {task}", ""]
        for name, plot in figures[task].items():
            lines += [f"![{name}]({plot.path.relative_to(out).as_posix()})", "", FIGURES[name][1], ""]
    return lines


def _runs_table(groups) -> list[str]:
    lines = [
        "## Runs",
        "",
        "| task | algorithm | seed | " + " | ".join(RESULTS.values()) + " | run directory |",
        "|---|---|---|" + "---|" * (len(RESULTS) + 1),
    ]
    for row in seed_rows(groups):
        cells = [_fmt(DIGITS[k], row[k]) for k in RESULTS] if row["finished"] else ["running"] * len(RESULTS)
        lines.append(
            f"| {row['task']} | {_algo(row['algo'])} | {row['seed']} | "
            + " | ".join(cells)
            + f" | `{row['run_dir']}` |"
        )
    return lines


def write_report(runs: list[RunData], out: str | Path) -> Path:
    """Figures, results.csv, seeds.csv (aggregates.csv with several tasks) and report.md into out;
    returns the report's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    groups = group_runs(runs)
    figures = {}
    for task in sorted({task for task, _ in groups}):
        by_algo = {algo: group for (t, algo), group in groups.items() if t == task}
        figures[task] = plot_task(by_algo, task, out / "figures")
    _write_csv(out / "results.csv", summary_rows(groups))
    _write_csv(out / "seeds.csv", seed_rows(groups))
    aggregates = aggregate_rows(groups)
    if aggregates:
        _write_csv(
            out / "aggregates.csv",
            [
                {
                    "statistic": r["statistic"],
                    "algo": r["algo"],
                    "value": r["value"][0],
                    "low": r["value"][1],
                    "high": r["value"][2],
                }
                for r in aggregates
            ],
        )
    runs = [run for group in groups.values() for run in group]
    lines = [
        *_header(runs),
        *_results_table(groups),
        *_aggregates_table(aggregates),
        *_figures(figures, out),
        *_runs_table(groups),
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
