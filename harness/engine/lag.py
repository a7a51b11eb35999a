"""Policy lag: how stale a worker's θ' is when its gradient is applied to the shared θ.

A run keeps one shared count U of the updates applied to θ. A worker reads U just before it syncs
θ' ← θ (``u0``); once its own update is applied it takes the lock of U, and its lag is ``U − u0``,
the number of updates by other workers applied in between; then it adds its own (U ← U + 1). Sample
Factory reports the same quantity as "policy lag" (there in policy versions).

Its *mean* is about N − 1 with N workers whatever the machine: each other worker updates about once
per segment of this one. Its *distribution* is what oversubscription changes (a worker descheduled
mid-segment sees many updates land), so a run records the whole histogram and status.json gives its
mean, median, 95th percentile and maximum (``summary``).
"""

from __future__ import annotations

from collections import Counter

#: lags below this are counted in a list (no hashing in the hot loop); larger ones in a Counter
DENSE = 1024


class SharedUpdates:
    """The shared update count U of a run (a ``multiprocessing.Value('q')``) as one worker uses it."""

    def __init__(self, value):
        self.value, self.raw = value, value.get_obj()

    def before_sync(self) -> int:
        """U now, read just before θ' ← θ (without the lock: an aligned 64-bit load is atomic)."""
        return self.raw.value

    def applied(self, u0: int) -> int:
        """After this worker's update is applied: its lag since ``before_sync`` returned ``u0``; counts it."""
        with self.value.get_lock():
            lag = self.raw.value - u0
            self.raw.value += 1
        return lag


class LagCounter:
    """One worker's histogram of lags (``add`` costs a list index per update)."""

    def __init__(self):
        self.dense = [0] * DENSE
        self.tail: Counter[int] = Counter()

    def add(self, lag: int) -> None:
        if lag < DENSE:
            self.dense[lag] += 1
        else:
            self.tail[lag] += 1

    def histogram(self) -> list[list[int]]:
        """``[[lag, count], ...]`` of the lags seen, ascending (JSON-friendly, only non-zero counts)."""
        pairs = [[k, c] for k, c in enumerate(self.dense) if c]
        return pairs + [[k, c] for k, c in sorted(self.tail.items())]


def merge(histograms) -> list[list[int]]:
    """The histogram of several ``[[lag, count], ...]`` histograms together."""
    total: Counter[int] = Counter()
    for h in histograms:
        for lag, count in h:
            total[int(lag)] += int(count)
    return [[k, c] for k, c in sorted(total.items())]


def summary(histogram: list[list[int]]) -> dict | None:
    """``updates``, ``mean``, ``median``, ``p95`` and ``max`` of a histogram (``None`` when empty).
    Quantiles are lags actually seen (the lower of the two middle values for an even count: numpy's
    ``inverted_cdf``)."""
    n = sum(c for _, c in histogram)
    if n == 0:
        return None

    def quantile(q: float) -> int:
        rank, seen = max(1, -(-q * n // 1)), 0  # ceil(q n), at least the first
        for lag, count in histogram:
            seen += count
            if seen >= rank:
                return int(lag)
        return int(histogram[-1][0])

    mean = sum(lag * c for lag, c in histogram) / n
    return {"updates": n, "mean": round(mean, 4), "median": quantile(0.5), "p95": quantile(0.95),
            "max": int(histogram[-1][0])}
