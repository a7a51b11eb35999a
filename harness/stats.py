"""Statistics for the report, as plain functions over numpy arrays (rliable style).

Conventions
-----------
* Score matrices follow rliable: shape ``(..., n_runs, n_tasks)``.  Tasks (games) may have different
  numbers of runs; such "ragged" matrices are padded with NaN at the bottom of a task's column, and
  every function here ignores NaN padding.  With equal run counts the aggregates equal rliable's
  ``metrics.aggregate_*`` exactly (``tests/test_report_stats.py`` checks this).
* Leading axes are batch axes: a bootstrap passes ``(reps, n_runs, n_tasks)`` and gets ``(reps,)``
  back, so no function loops over bootstrap repetitions in Python.
* Stratified bootstrap (Agarwal et al. 2021): runs are resampled with replacement *within* each task
  (stratum), so every resample keeps each task's run count.

Everything is deterministic given a ``numpy.random.Generator``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

__all__ = [
    "AGGREGATE_METRICS",
    "aggregate_iqm",
    "aggregate_mean",
    "aggregate_median",
    "aggregate_metrics",
    "aggregate_optimality_gap",
    "centred_window_mean",
    "first_crossing",
    "interpolate_to_grid",
    "mean_with_coverage",
    "normalise",
    "pad_ragged",
    "percentile_interval",
    "resample_weights",
    "resampled_means",
    "single_run_tasks",
    "performance_profile",
    "probability_of_improvement",
    "stratified_bootstrap",
    "stratified_indices",
    "stratified_task_indices",
]


# ----------------------------------------------------------------------------------------------
# Curves
# ----------------------------------------------------------------------------------------------
def centred_window_mean(x: np.ndarray, y: np.ndarray, width: float) -> np.ndarray:
    """Mean of ``y`` over the points whose ``x`` lies in ``[x_i - width/2, x_i + width/2]``.

    ``x`` must be sorted ascending.  A centred window does not lag behind a trend, so the time at
    which a smoothed curve reaches a score is not biased by how densely episodes arrive.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.size == 0 or width <= 0:
        return y.copy()
    csum = np.concatenate([[0.0], np.cumsum(y)])
    lo = np.searchsorted(x, x - width / 2.0, side="left")
    hi = np.searchsorted(x, x + width / 2.0, side="right")
    return (csum[hi] - csum[lo]) / (hi - lo)


def interpolate_to_grid(curves: Sequence[tuple[np.ndarray, np.ndarray]], grid: np.ndarray) -> np.ndarray:
    """Put curves of unequal length on a common grid.

    Each curve ``(x, y)`` (``x`` ascending) is linearly interpolated at the ``grid`` points inside its
    own range ``[x[0], x[-1]]`` and is NaN outside it (no extrapolation).  Returns ``(n_curves, G)``.
    """
    grid = np.asarray(grid, dtype=float)
    out = np.full((len(curves), grid.size), np.nan)
    for i, (x, y) in enumerate(curves):
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        if x.size == 0:
            continue
        inside = (grid >= x[0]) & (grid <= x[-1])
        out[i, inside] = np.interp(grid[inside], x, y)
    return out


def hold_last(values: np.ndarray) -> np.ndarray:
    """A copy of ``values`` (..., G) in which each row's last value is carried to the end of the grid
    (trailing NaNs only; leading ones stay): the score of a run that has *finished*, at wall-clock
    times after it ended. Without it, the mean over runs of unequal duration changes which runs it
    averages as the faster ones end, and drops or jumps where no run's score changed."""
    out = np.array(values, dtype=float, copy=True)
    rows = out.reshape(-1, out.shape[-1])  # a view of the copy
    for row in rows:
        ok = np.flatnonzero(~np.isnan(row))
        if ok.size:
            row[ok[-1] + 1:] = row[ok[-1]]
    return out


def mean_with_coverage(values: np.ndarray, min_coverage: float = 0.5, axis: int = -2) -> tuple[np.ndarray, np.ndarray]:
    """NaN-aware mean over ``axis`` (the runs) that is NaN where too few runs have data.

    A grid point is kept when *more than* ``min_coverage`` of the runs cover it, so the average is not
    taken over a small, unrepresentative subset where the shorter curves have already ended.
    Returns ``(mean, count)``.
    """
    values = np.asarray(values, dtype=float)
    valid = ~np.isnan(values)
    count = valid.sum(axis=axis)
    total = np.where(valid, values, 0.0).sum(axis=axis)
    n = values.shape[axis]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    mean = np.where(count > min_coverage * n, mean, np.nan)
    return mean, count


def resample_weights(idx: np.ndarray, n: int) -> np.ndarray:
    """How often each of ``n`` items appears in each resample: ``(reps, n)`` counts from ``(reps, n)``
    bootstrap indices.  Means over resamples then become one matrix product."""
    reps = idx.shape[0]
    weights = np.zeros((reps, n))
    np.add.at(weights, (np.repeat(np.arange(reps), idx.shape[1]), idx.ravel()), 1.0)
    return weights


def resampled_means(values: np.ndarray, weights: np.ndarray, min_coverage: float = 0.5) -> np.ndarray:
    """``mean_with_coverage`` of every bootstrap resample of the rows of ``values`` (``(n, G)``, NaN
    where a run has no data), given resample ``weights`` ``(reps, n)``.  Returns ``(reps, G)``."""
    values = np.asarray(values, dtype=float)
    valid = ~np.isnan(values)
    # einsum's own loops, not BLAS: a multi-threaded BLAS is ~20x slower on a busy 2-core machine.
    total = np.einsum("rn,ng->rg", weights, np.where(valid, values, 0.0))
    count = np.einsum("rn,ng->rg", weights, valid.astype(float))  # resampled runs (with repeats) per point
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    return np.where(count > min_coverage * weights.sum(axis=1, keepdims=True), mean, np.nan)


def first_crossing(grid: np.ndarray, values: np.ndarray, threshold: float) -> np.ndarray:
    """First ``grid`` coordinate where ``values`` reaches ``threshold`` (``>=``), per leading index.

    Linear interpolation between the last grid point below and the first at or above the threshold;
    NaN values count as "below".  Returns ``inf`` where the threshold is never reached.
    ``values`` has shape ``(..., G)``; the result has shape ``(...)``.
    """
    grid = np.asarray(grid, dtype=float)
    values = np.asarray(values, dtype=float)
    hit = np.nan_to_num(values, nan=-np.inf) >= threshold
    any_hit = hit.any(axis=-1)
    j = np.argmax(hit, axis=-1)
    yj = np.take_along_axis(values, j[..., None], axis=-1)[..., 0]
    jp = np.maximum(j - 1, 0)
    yp = np.take_along_axis(values, jp[..., None], axis=-1)[..., 0]
    xj, xp = grid[j], grid[jp]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = (threshold - yp) / (yj - yp)
    interpolate = (j > 0) & np.isfinite(yp) & (yj > yp)
    t = np.where(interpolate, xp + np.clip(frac, 0.0, 1.0) * (xj - xp), xj)
    return np.where(any_hit, t, np.inf)


# ----------------------------------------------------------------------------------------------
# Normalisation
# ----------------------------------------------------------------------------------------------
def normalise(score: np.ndarray | float, low: float, high: float) -> np.ndarray:
    """``(score - low) / |high - low|``: 0 at ``low`` (random), 1 at ``high`` (human or maximum).

    For Atari with ``low = random`` and ``high = human`` this is the human-normalised score of the
    paper as a fraction (multiply by 100 for percent).
    """
    span = abs(float(high) - float(low))
    if span == 0:
        raise ValueError(f"normalisation bounds are equal ({low})")
    return (np.asarray(score, dtype=float) - float(low)) / span


# ----------------------------------------------------------------------------------------------
# Aggregates over (..., runs, tasks) matrices, NaN-padded
# ----------------------------------------------------------------------------------------------
def pad_ragged(per_task: Sequence[Sequence[float]]) -> np.ndarray:
    """Stack per-task score lists of different lengths into a NaN-padded ``(n_max, n_tasks)`` matrix."""
    n_max = max((len(v) for v in per_task), default=0)
    out = np.full((n_max, len(per_task)), np.nan)
    for t, v in enumerate(per_task):
        out[: len(v), t] = np.asarray(v, dtype=float)
    return out


def _task_means(scores: np.ndarray) -> np.ndarray:
    valid = ~np.isnan(scores)
    return np.where(valid, scores, 0.0).sum(axis=-2) / valid.sum(axis=-2)


def aggregate_mean(scores: np.ndarray) -> np.ndarray:
    """Mean over tasks of the per-task mean score (rliable ``aggregate_mean``)."""
    return _task_means(scores).mean(axis=-1)


def aggregate_median(scores: np.ndarray) -> np.ndarray:
    """Median over tasks of the per-task mean score (rliable ``aggregate_median``)."""
    return np.median(_task_means(scores), axis=-1)


def aggregate_iqm(scores: np.ndarray) -> np.ndarray:
    """Interquartile mean of all runs of all tasks pooled (25% trimmed mean, as scipy ``trim_mean``)."""
    scores = np.asarray(scores, dtype=float)
    flat = scores.reshape(*scores.shape[:-2], -1)
    first = flat.reshape(-1, flat.shape[-1])[0]
    m = int((~np.isnan(first)).sum())  # every batch element has the same number of valid scores
    cut = int(0.25 * m)
    ordered = np.sort(flat, axis=-1)  # NaN padding sorts last; every batch has the same count m
    return ordered[..., cut : m - cut].mean(axis=-1)


def aggregate_optimality_gap(scores: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """``gamma`` minus the mean of the scores clipped at ``gamma``, all runs of all tasks pooled."""
    scores = np.asarray(scores, dtype=float)
    flat = scores.reshape(*scores.shape[:-2], -1)
    return gamma - np.nanmean(np.minimum(flat, gamma), axis=-1)


AGGREGATE_METRICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "IQM": aggregate_iqm,
    "median": aggregate_median,
    "mean": aggregate_mean,
    "optimality_gap": aggregate_optimality_gap,
}


def aggregate_metrics(scores: np.ndarray) -> np.ndarray:
    """The four rliable aggregates, stacked on a last axis in the order of ``AGGREGATE_METRICS``."""
    return np.stack([f(scores) for f in AGGREGATE_METRICS.values()], axis=-1)


def performance_profile(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Score distribution: the fraction of runs (all tasks pooled) with a score above each ``tau``.

    ``scores`` ``(..., runs, tasks)`` NaN-padded; returns ``(..., len(taus))``.
    """
    scores = np.asarray(scores, dtype=float)
    flat = scores.reshape(*scores.shape[:-2], -1)
    valid = ~np.isnan(flat)
    above = (flat[..., None] > np.asarray(taus, dtype=float)) & valid[..., None]
    return above.sum(axis=-2) / valid.sum(axis=-1)[..., None]


def probability_of_improvement(scores_x: np.ndarray, scores_y: np.ndarray) -> np.ndarray:
    """P(X > Y): for each task the Mann-Whitney probability that a run of X beats a run of Y (ties
    count one half), averaged over tasks (rliable ``probability_of_improvement``).

    ``scores_x`` ``(..., nx, tasks)`` and ``scores_y`` ``(..., ny, tasks)``, NaN-padded.
    """
    sx, sy = np.asarray(scores_x, dtype=float), np.asarray(scores_y, dtype=float)
    per_task = []
    for t in range(sx.shape[-1]):
        x, y = sx[..., :, None, t], sy[..., None, :, t]
        pairs = (~np.isnan(x) & ~np.isnan(y)).sum(axis=(-2, -1))  # NaN compares False below
        wins = (x > y).sum(axis=(-2, -1)) + 0.5 * (x == y).sum(axis=(-2, -1))
        per_task.append(wins / pairs)
    return np.mean(per_task, axis=0)


# ----------------------------------------------------------------------------------------------
# Bootstrap
# ----------------------------------------------------------------------------------------------
def stratified_indices(strata: Sequence, reps: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap indices ``(reps, n)`` that resample items with replacement within their stratum.

    ``strata[i]`` is the stratum (e.g. the learning rate) of item ``i``; position ``i`` of every
    resample holds an item of the same stratum, so stratum sizes are preserved.
    """
    strata = np.asarray(strata)
    n = strata.size
    idx = np.empty((reps, n), dtype=np.intp)
    for value in np.unique(strata):
        members = np.flatnonzero(strata == value)
        draw = rng.integers(0, members.size, size=(reps, members.size))
        idx[:, members] = members[draw]
    return idx


def single_run_tasks(*scores: np.ndarray) -> np.ndarray:
    """Which tasks (columns) of the ``(runs, tasks)`` matrices have fewer than two runs in any of them.

    A stratified bootstrap resamples runs *within* each task, so a task of one run is the same in every
    resample: where that is so for some task, an interval would leave its run-to-run variation out, and
    where it is so for every task, the interval cannot vary at all. The report gives no interval then.
    """
    counts = np.stack([np.isfinite(np.asarray(s, dtype=float)).sum(axis=0) for s in scores])
    return (counts < 2).any(axis=0)


def stratified_task_indices(counts: Sequence[int], n_max: int, reps: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices ``(reps, n_max, n_tasks)`` resampling each task's ``counts[t]`` runs with
    replacement; padding rows (``i >= counts[t]``) keep pointing at themselves (NaN stays NaN)."""
    counts = np.asarray(counts, dtype=int)
    u = rng.random((reps, n_max, counts.size))
    idx = np.floor(u * counts).astype(np.intp)
    rows = np.arange(n_max)[:, None]
    return np.where(rows < counts, idx, rows)


def stratified_bootstrap(
    scores: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    reps: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Apply a vectorised ``statistic`` to ``reps`` stratified resamples of a ``(runs, tasks)`` matrix.

    Returns ``statistic``'s output with a leading ``reps`` axis.
    """
    scores = np.asarray(scores, dtype=float)
    counts = (~np.isnan(scores)).sum(axis=0)
    idx = stratified_task_indices(counts, scores.shape[0], reps, rng)
    resampled = np.take_along_axis(scores[None], idx, axis=1)
    return statistic(resampled)


def percentile_interval(samples: np.ndarray, level: float = 0.95, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval (the ``inverted_cdf`` quantiles, i.e. actual sample values).

    ``inf`` samples are kept (an interval may be unbounded); NaN samples are dropped; all-NaN
    slices give NaN.  Vectorised (``np.nanquantile`` loops over slices in Python)."""
    alpha = (1.0 - level) / 2.0
    ordered = np.sort(np.moveaxis(np.asarray(samples, dtype=float), axis, 0), axis=0)  # NaN last
    n = (~np.isnan(ordered)).sum(axis=0)

    def pick(q):
        k = np.clip(np.ceil(q * n).astype(int) - 1, 0, max(ordered.shape[0] - 1, 0))
        value = np.take_along_axis(ordered, k[None], axis=0)[0]
        return np.where(n > 0, value, np.nan)

    return pick(alpha), pick(1.0 - alpha)
