"""The figures of one task, across seeds: mean with a shaded 95% bootstrap confidence
interval of the mean. Drawn on matplotlib Figures without pyplot (no global backend, Agg
canvas). Each function saves a PNG and returns a Plot (path, figure, the series drawn), so what is
drawn can be checked against the metrics."""

import dataclasses
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from calql.methods import label
from calql.reporting.runs import Curve, RunData, offline_curve, online_curve

BAND = "mean over seeds, shaded: 95% bootstrap CI of the mean"
ZOOM_FRACTION = 0.25
ZOOM_MIN_POINTS = 5
COLORS = {"calql": "C0", "cql": "C1", "calql-learned": "C2"}


@dataclasses.dataclass(frozen=True)
class Plot:
    """A saved figure and the series drawn on it."""

    path: Path
    figure: Figure
    series: dict[str, "Series"]


@dataclasses.dataclass(frozen=True)
class Series:
    """One drawn line and its band."""

    steps: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    seeds: int
    running: int = 0
    """Seeds whose run has not finished (no summary.json): their curve stops early."""


def _series(curve: Curve, runs: list[RunData]) -> Series:
    mean, low, high = curve.interval()
    return Series(curve.steps, mean, low, high, len(runs), sum(run.summary is None for run in runs))


def _color(algo: str, index: int) -> str:
    return COLORS.get(algo, f"C{index + 2}")


def _label(algo: str, series: "Series") -> str:
    running = f", {series.running} running" if series.running else ""
    return f"{label(algo)} ({series.seeds} seed{'s' if series.seeds != 1 else ''}{running})"


def _draw(ax, series: Series, color: str, label: str | None, style: str = "-") -> None:
    ax.plot(series.steps, series.mean, style, color=color, marker="o", markersize=3, label=label)
    ax.fill_between(series.steps, series.low, series.high, color=color, alpha=0.2, linewidth=0)


def _phase_axes(title: str, ylabel: str):
    """Two panels sharing y: offline gradient steps | online environment steps."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    offline_ax, online_ax = fig.subplots(1, 2, sharey=True)
    offline_ax.set(xlabel="offline gradient steps", ylabel=ylabel, title="offline pre-training")
    online_ax.set(xlabel="online environment steps", title="online fine-tuning (dotted line: offline \u2192 online)")
    online_ax.axvline(0, color="0.4", linestyle=":", linewidth=1.2)
    fig.suptitle(f"{title}\n({BAND})", fontsize=10)
    for ax in (offline_ax, online_ax):
        ax.grid(alpha=0.3)
    return fig, offline_ax, online_ax


def _score_range(ax) -> None:
    """Show at least the whole 0-100 range of normalized scores, so flat curves are not magnified."""
    low, high = ax.get_ylim()
    ax.set_ylim(min(low, -3.0), max(high, 103.0))


def _save(fig: Figure, path: Path, series: dict[str, Series]) -> Plot:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return Plot(path, fig, series)


def learning_curve(groups: dict[str, list[RunData]], task: str, path: Path) -> Plot:
    """Normalized score through pre-training and fine-tuning, the switch marked.
    groups: {algo: runs of this task}. Series: {"<algo>/offline" | "<algo>/online"}."""
    fig, offline_ax, online_ax = _phase_axes(f"{task}: normalized score", "normalized score")
    drawn = {}
    for index, (algo, runs) in enumerate(groups.items()):
        color = _color(algo, index)
        drawn[f"{algo}/offline"] = offline = _series(offline_curve(runs, "normalized_score"), runs)
        drawn[f"{algo}/online"] = online = _series(online_curve(runs, "normalized_score"), runs)
        _draw(offline_ax, offline, color, _label(algo, offline))
        _draw(online_ax, online, color, None)
    _score_range(offline_ax)
    offline_ax.legend(loc="best", fontsize=8)
    return _save(fig, path, drawn)


def _zoom_limit(series: Series) -> float:
    """The first ZOOM_FRACTION of fine-tuning, but at least ZOOM_MIN_POINTS evaluations."""
    if series.steps.size == 0:
        return 0.0
    return max(ZOOM_FRACTION * series.steps[-1], series.steps[min(ZOOM_MIN_POINTS, series.steps.size - 1)])


def finetuning_zoom(groups: dict[str, list[RunData]], task: str, path: Path) -> Plot:
    """The start of fine-tuning (step 0 = end of pre-training), with each algorithm's
    pre-trained score as a dotted level: a dip below it is "unlearning". Series: {algo}."""
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    drawn = {}
    for index, (algo, runs) in enumerate(groups.items()):
        full = _series(online_curve(runs, "normalized_score"), runs)
        keep = full.steps <= _zoom_limit(full)
        drawn[algo] = series = dataclasses.replace(
            full, steps=full.steps[keep], mean=full.mean[keep], low=full.low[keep], high=full.high[keep]
        )
        color = _color(algo, index)
        _draw(ax, series, color, _label(algo, series))
        if series.steps.size:
            ax.axhline(series.mean[0], color=color, linestyle=":", linewidth=1)
    ax.set(xlabel="online environment steps", ylabel="normalized score")
    _score_range(ax)
    ax.set_title(f"{task}: start of fine-tuning (dotted: score after pre-training)\n({BAND})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path, drawn)


def calibration(groups: dict[str, list[RunData]], task: str, path: Path) -> Plot:
    """Mean learned Q(s, a) on a fixed offline batch (solid) against that batch's mean
    Monte-Carlo return (dashed). Series: {"<algo>/<q_data|mc_return>/<phase>"}."""
    fig, offline_ax, online_ax = _phase_axes(
        f"{task}: calibration, mean Q(s, a) on the data (solid) vs its Monte-Carlo return (dashed)", "value"
    )
    drawn = {}
    for index, (algo, runs) in enumerate(groups.items()):
        color = _color(algo, index)
        for key, style in (("q_data", "-"), ("mc_return", "--")):
            offline = _series(offline_curve(runs, f"calibration/{key}"), runs)
            online = _series(online_curve(runs, f"calibration/{key}"), runs)
            drawn[f"{algo}/{key}/offline"], drawn[f"{algo}/{key}/online"] = offline, online
            name = "Q(s, a) on data" if key == "q_data" else "MC return"
            _draw(offline_ax, offline, color, f"{_label(algo, offline)}: {name}", style)
            _draw(online_ax, online, color, None, style)
    offline_ax.legend(loc="best", fontsize=8)
    return _save(fig, path, drawn)


def regret(groups: dict[str, list[RunData]], task: str, path: Path) -> Plot:
    """Cumulative regret (mean over online episodes so far of 1 - success) against online
    environment steps, as logged at each evaluation. Series: {algo}."""
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    drawn = {}
    for index, (algo, runs) in enumerate(groups.items()):
        drawn[algo] = series = _series(online_curve(runs, "cumulative_regret", start=False), runs)
        _draw(ax, series, _color(algo, index), _label(algo, series))
    ax.set(xlabel="online environment steps", ylabel="cumulative regret (lower is better)", ylim=(-0.02, 1.02))
    ax.set_title(f"{task}: cumulative regret\n({BAND})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path, drawn)


FIGURES = {
    "learning_curve": (
        learning_curve,
        "Normalized score through offline pre-training (left, x: gradient steps) "
        "and online fine-tuning (right, x: environment steps); fine-tuning starts from the last "
        "offline evaluation.",
    ),
    "finetuning_zoom": (
        finetuning_zoom,
        "The first part of fine-tuning; dotted lines: each algorithm's score at "
        'the end of pre-training. A dip below it is the "unlearning" Cal-QL is meant to avoid.',
    ),
    "calibration": (
        calibration,
        "Mean learned Q(s, a) on a fixed batch of offline data (solid) against the "
        "mean Monte-Carlo return of the same batch (dashed). Q below the return is under-estimation.",
    ),
    "regret": (
        regret,
        "Cumulative regret: mean of (1 - success) over the online training episodes so far, lower is better.",
    ),
}
"""name -> (function, caption) of every figure drawn per task."""


def plot_task(groups: dict[str, list[RunData]], task: str, out: Path) -> dict[str, Plot]:
    """Every figure of one task into out/<name>-<task>.png."""
    return {name: draw(groups, task, Path(out) / f"{name}-{task}.png") for name, (draw, _) in FIGURES.items()}
