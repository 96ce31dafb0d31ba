"""Statistics over seeds: bootstrap confidence intervals of the mean, and the aggregate
metrics of rliable (Agarwal et al., 2021) -- interquartile mean and probability of
improvement with stratified bootstrap intervals -- written in numpy.

rliable itself is not a dependency: rliable 1.2.0 imports `arch`, which fails to import
with pandas 3 (TypeError in arch.univariate.base). The definitions below follow its
documentation: IQM = 25%-trimmed mean of all runs of all tasks; P(X > Y) = mean over
tasks of the Mann-Whitney statistic U / (m n), ties counting one half.
"""

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 5000
SEED = 0
"""Fixed bootstrap seed: the same runs always give the same report."""


def _percentiles(samples: np.ndarray) -> tuple[float, float]:
    tail = 100 * (1 - CONFIDENCE) / 2
    lo, hi = np.percentile(samples, [tail, 100 - tail])
    return float(lo), float(hi)


def mean_interval(values) -> tuple[float, float, float]:
    """(mean, low, high): the mean of the finite values and its 95% percentile-bootstrap
    interval; low = high = mean for one value, all NaN for none."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (np.nan, np.nan, np.nan)
    mean = float(values.mean())
    if values.size == 1:
        return (mean, mean, mean)
    rng = np.random.default_rng(SEED)
    means = values[rng.integers(0, values.size, (RESAMPLES, values.size))].mean(axis=1)
    return (mean, *_percentiles(means))


def _two_sample_means(x, y) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The finite values of x and y and RESAMPLES bootstrap means of each, resampled independently."""
    x, y = (np.asarray(v, dtype=float) for v in (x, y))
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    rng = np.random.default_rng(SEED)
    xs = x[rng.integers(0, x.size, (RESAMPLES, x.size))].mean(axis=1)
    ys = y[rng.integers(0, y.size, (RESAMPLES, y.size))].mean(axis=1)
    return x, y, xs, ys


_UNBOUNDED = 1e300
"""Stands for an infinite ratio inside the percentiles (an inf would make their interpolation NaN)."""


def ratio_interval(x, y) -> tuple[float, float, float]:
    """mean(x) / mean(y) and its 95% percentile-bootstrap interval (x and y resampled
    independently, e.g. the regret of two methods over their seeds); NaN if mean(y) is 0.

    A resample whose mean(y) is 0 has an unbounded ratio: it counts as +inf (0 / 0 as well), so
    when more than the upper tail's share of resamples hit it the interval is open above, rather
    than silently narrowed by dropping them."""
    x, y, xs, ys = _two_sample_means(x, y)
    if x.size == 0 or y.size == 0 or y.mean() == 0:
        return (np.nan, np.nan, np.nan)
    ratios = np.where(ys > 0, xs / np.where(ys > 0, ys, 1.0), _UNBOUNDED)
    low, high = (bound if bound < _UNBOUNDED / 1e6 else np.inf for bound in _percentiles(ratios))
    return (float(x.mean() / y.mean()), low, high)


def difference_interval(x, y) -> tuple[float, float, float]:
    """mean(x) - mean(y) and its 95% percentile-bootstrap interval (independent resampling)."""
    x, y, xs, ys = _two_sample_means(x, y)
    if x.size == 0 or y.size == 0:
        return (np.nan, np.nan, np.nan)
    return (float(x.mean() - y.mean()), *_percentiles(xs - ys))


def curve_interval(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column-wise mean_interval of a (seeds, points) array with NaN for missing points."""
    columns = [mean_interval(column) for column in np.asarray(values, dtype=float).T]
    mean, lo, hi = (np.array(c, dtype=float) for c in zip(*columns)) if columns else (np.zeros(0),) * 3
    return mean, lo, hi


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle half of all values (25% cut each side)."""
    flat = np.sort(np.asarray(scores, dtype=float).ravel())
    cut = int(0.25 * flat.size)
    return float(flat[cut : flat.size - cut].mean())


def probability_of_improvement(x: list[np.ndarray], y: list[np.ndarray]) -> float:
    """P(X > Y): per task, the fraction of (run of x, run of y) pairs where x wins (ties 1/2),
    averaged over tasks. x[i], y[i]: the per-seed scores of task i."""
    per_task = []
    for xs, ys in zip(x, y, strict=True):
        diff = np.asarray(xs, dtype=float)[:, None] - np.asarray(ys, dtype=float)[None, :]
        per_task.append(np.mean((diff > 0) + 0.5 * (diff == 0)))
    return float(np.mean(per_task))


def _resample(rng: np.random.Generator, per_task: list[np.ndarray]) -> list[np.ndarray]:
    """Stratified bootstrap: runs resampled with replacement within each task."""
    return [scores[rng.integers(0, len(scores), len(scores))] for scores in per_task]


def iqm_interval(per_task: list[np.ndarray]) -> tuple[float, float, float]:
    """(IQM, low, high) over tasks' per-seed scores, with a stratified bootstrap interval."""
    rng = np.random.default_rng(SEED)
    per_task = [np.asarray(s, dtype=float) for s in per_task]
    samples = [iqm(np.concatenate(_resample(rng, per_task))) for _ in range(RESAMPLES // 5)]
    return (iqm(np.concatenate(per_task)), *_percentiles(np.array(samples)))


def improvement_interval(x: list[np.ndarray], y: list[np.ndarray]) -> tuple[float, float, float]:
    """(P(X > Y), low, high) with a stratified bootstrap interval (x and y resampled independently)."""
    rng = np.random.default_rng(SEED)
    x = [np.asarray(s, dtype=float) for s in x]
    y = [np.asarray(s, dtype=float) for s in y]
    samples = [probability_of_improvement(_resample(rng, x), _resample(rng, y)) for _ in range(RESAMPLES // 5)]
    return (probability_of_improvement(x, y), *_percentiles(np.array(samples)))
