"""The numbers of docs/results.md from a sweep folder's trials (or any folder of run directories),
with the definitions of calql.reporting.protocol and 95% bootstrap intervals over seeds:

1. per task and method: the score after pre-training (online step 0), the final score (mean of
   the last three evaluations), the fine-tuning dip, cumulative regret and its ratio to CQL's;
2. per task and method, whether pre-training settled and the calibration precondition: the
   spread of the last three offline evaluations, the policy entropy and, at the end of
   pre-training, the mean learned Q on the data and on the policy's actions against the mean
   Monte-Carlo return, the fraction of data Q-values below it, and the learned reference's error;
3. per task, the paper's claims against CQL: dip difference, regret ratio and calibration gap.

    python experiments/summarize.py docs/results/pointmaze-medium-narrow/trials [more folders...]

--against METHOD compares with another method than CQL in 1 and 3 (e.g. --against calql to
compare the no-retention calql-wsrl with standard Cal-QL).
"""

import argparse

import numpy as np

from calql.methods import label
from calql.reporting import stats
from calql.reporting.protocol import cumulative_regret, final_score, finetuning_dip, start_score
from calql.reporting.runs import RunData, find_runs, group_runs


def _fmt(value: tuple[float, float, float], digits: int) -> str:
    mean, low, high = value
    return "n/a" if not np.isfinite(mean) else f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _last(run: RunData, phase: str, key: str) -> float:
    rows = [row for row in run.rows if row["phase"] == phase and key in row]
    return rows[-1][key] if rows else np.nan


def offline_spread(run: RunData, last: int = 3) -> float:
    """Standard deviation of the last `last` offline evaluation scores: 0 when pre-training settled."""
    scores = [row["normalized_score"] for row in run.evals("offline")][-last:]
    return float(np.std(scores)) if len(scores) == last else np.nan


def pretrained_calibration(run: RunData, key: str) -> float:
    """A calibration diagnostic of the pre-trained agent: the step-0 online evaluation's, else the
    last offline one's."""
    online = run.evals("online")
    if online and online[0]["step"] == 0 and key in online[0]:
        return online[0][key]
    return _last(run, "offline/eval", key)


def calibration_gap(run: RunData, key: str = "calibration/q_policy") -> float:
    """Mean learned Q (on the policy's actions by default) minus the mean Monte-Carlo return, after pre-training."""
    return pretrained_calibration(run, key) - pretrained_calibration(run, "calibration/mc_return")


def _finished(runs: list[RunData]) -> list[RunData]:
    return [run for run in runs if run.summary is not None]


def _interval(runs: list[RunData], value, digits: int) -> str:
    return _fmt(stats.mean_interval([value(run) for run in runs]), digits)


def results_table(groups, against: str = "cql") -> list[str]:
    lines = [
        "| task | method | seeds | score after pre-training | final score | dip | cumulative regret | "
        f"regret / {label(against)}'s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (task, method), runs in groups.items():
        done = _finished(runs)
        regrets = [cumulative_regret(run) for run in done]
        baseline = [cumulative_regret(run) for run in _finished(groups.get((task, against), []))]
        ratio = stats.ratio_interval(regrets, baseline) if method != against and baseline else (np.nan,) * 3
        cells = [
            _interval(done, start_score, 1),
            _interval(done, final_score, 1),
            _interval(done, finetuning_dip, 1),
            _fmt(stats.mean_interval(regrets), 3),
            _fmt(ratio, 2),
        ]
        lines.append(f"| {task} | {label(method)} | {len(done)} | " + " | ".join(cells) + " |")
    return lines


def pretraining_table(groups, against: str = "cql") -> list[str]:
    lines = [
        "| task | method | seeds | spread of last 3 offline scores | policy entropy | Q on data - MC | "
        "Q on policy actions - MC | data Q below MC | learned reference: MAE vs MC |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (task, method), runs in groups.items():
        done = _finished(runs)
        mae = [_last(r, "offline/reference", "reference/mae_vs_mc") for r in done]
        cells = [
            _interval(done, offline_spread, 1),
            _interval(done, lambda r: _last(r, "offline/train", "actor/entropy"), 2),
            _interval(done, lambda r: calibration_gap(r, "calibration/q_data"), 0),
            _interval(done, calibration_gap, 0),
            _interval(done, lambda r: pretrained_calibration(r, "calibration/q_below_return"), 2),
            _fmt(stats.mean_interval(mae), 1) if np.isfinite(mae).any() else "-",
        ]
        lines.append(f"| {task} | {label(method)} | {len(done)} | " + " | ".join(cells) + " |")
    return lines


def claims_table(groups, against: str = "cql") -> list[str]:
    """Each other method against CQL (or `against`) on the same task: the three claims of the paper."""
    name = label(against)
    lines = [
        f"| task | method vs {name} | dip: {name} - method (> 0: smaller dip) | regret ratio (< 1: lower regret) | "
        f"Q(s, pi) - MC after pre-training: method - {name} (> 0: less pessimistic) |",
        "|---|---|---|---|---|",
    ]
    for (task, method), runs in groups.items():
        cql = _finished(groups.get((task, against), []))
        done = _finished(runs)
        if method == against or not cql or not done:
            continue
        dip = stats.difference_interval([finetuning_dip(r) for r in cql], [finetuning_dip(r) for r in done])
        ratio = stats.ratio_interval([cumulative_regret(r) for r in done], [cumulative_regret(r) for r in cql])
        gap = stats.difference_interval([calibration_gap(r) for r in done], [calibration_gap(r) for r in cql])
        lines.append(f"| {task} | {label(method)} | {_fmt(dip, 1)} | {_fmt(ratio, 2)} | {_fmt(gap, 0)} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--against", default="cql", help="the method the others are compared with (default cql)")
    args = parser.parse_args()
    groups = group_runs(find_runs(args.folders))
    for title, table in (
        ("Results", results_table),
        ("Pre-training and calibration", pretraining_table),
        (f"Claims against {label(args.against)}", claims_table),
    ):
        print(f"### {title}\n")
        print("\n".join(table(groups, args.against)) + "\n")


if __name__ == "__main__":
    main()
