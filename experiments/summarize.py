"""The numbers of docs/results.md from a sweep folder's trials (or any folder of run directories):
per task and method, the fine-tuning dip, cumulative regret, the regret ratio against CQL, the
calibration diagnostic at the end of each phase, and the learned reference's error against the
Monte-Carlo returns; 95% bootstrap intervals over seeds.

    python experiments/summarize.py docs/results/pointmaze-medium/trials [more folders...]
"""

import argparse

import numpy as np

from calql.reporting import stats
from calql.methods import label
from calql.reporting.runs import finetuning_dip, find_runs, group_runs

RESAMPLES = 5000


def ratio_interval(x: list[float], y: list[float]) -> tuple[float, float, float]:
    """mean(x) / mean(y) with a percentile bootstrap interval (x and y resampled independently)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if y.mean() == 0:
        return (np.nan, np.nan, np.nan)
    rng = np.random.default_rng(stats.SEED)
    xs = x[rng.integers(0, x.size, (RESAMPLES, x.size))].mean(axis=1)
    ys = y[rng.integers(0, y.size, (RESAMPLES, y.size))].mean(axis=1)
    ratios = xs[ys > 0] / ys[ys > 0]
    low, high = np.percentile(ratios, [2.5, 97.5])
    return (float(x.mean() / y.mean()), float(low), float(high))


def _fmt(value: tuple[float, float, float], digits: int) -> str:
    mean, low, high = value
    return "n/a" if not np.isfinite(mean) else f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _last(run, phase: str, key: str) -> float:
    rows = [row for row in run.rows if row["phase"] == phase and key in row]
    return rows[-1][key] if rows else np.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+")
    groups = group_runs(find_runs(parser.parse_args().folders))
    print("| task | method | seeds | score after pre-training | after fine-tuning | dip | cumulative regret | "
          "regret / CQL's | Q on data vs MC, end of pre-training | end of fine-tuning | learned reference: MAE vs MC |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (task, method), runs in groups.items():
        done = [run for run in runs if run.summary is not None]
        regrets = [run.summary["regret"] for run in done]
        cql = [run.summary["regret"] for run in groups.get((task, "cql"), []) if run.summary is not None]
        ratio = ratio_interval(regrets, cql) if method != "cql" and cql else (np.nan,) * 3
        q_offline = np.mean([_last(r, "offline/eval", "calibration/q_data") for r in done])
        q_online = np.mean([_last(r, "online/eval", "calibration/q_data") for r in done])
        mc = np.mean([_last(r, "offline/eval", "calibration/mc_return") for r in done])
        mae = [_last(r, "offline/reference", "reference/mae_vs_mc") for r in done]
        cells = [
            _fmt(stats.mean_interval([r.summary["offline"]["normalized_score"] for r in done]), 1),
            _fmt(stats.mean_interval([r.summary["final"]["normalized_score"] for r in done]), 1),
            _fmt(stats.mean_interval([finetuning_dip(r) for r in done]), 1),
            _fmt(stats.mean_interval(regrets), 3),
            _fmt(ratio, 2),
            f"{q_offline:.0f} vs {mc:.0f}",
            f"{q_online:.0f} vs {mc:.0f}",
            _fmt(stats.mean_interval(mae), 1) if np.isfinite(mae).any() else "-",
        ]
        print(f"| {task} | {label(method)} | {len(done)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
