"""Policy lag: other workers' updates applied between a worker's θ' ← θ and its own update
(harness.engine.lag; status.json ``policy_lag``, docs/RUN_FORMAT.md)."""

from __future__ import annotations

import json
import multiprocessing as mp

import pytest

from harness.config import make_run_config
from harness.engine import train
from harness.engine.lag import LagCounter, SharedUpdates, merge, summary


def test_lags_of_a_scripted_interleaving_are_counted_by_hand():
    """Three workers on one shared count, in this order of events (s: sync, u: own update applied):
    s0 s1 u1 s2 u0 u2 s1 s0 u1 u0 s1 u1.  By hand: u1 sees nothing since s1 (0); u0 sees u1 (1);
    u2 sees u0 (1: u1 landed before s2); then s1 s0: u1 sees nothing (0), u0 sees that u1 (1);
    the last s1 u1 sees nothing (0)."""
    shared = SharedUpdates(mp.get_context("fork").Value("q", 0))
    u0: dict[int, int] = {}
    lags: list[tuple[int, int]] = []
    for event in "s0 s1 u1 s2 u0 u2 s1 s0 u1 u0 s1 u1".split():
        kind, w = event[0], int(event[1])
        if kind == "s":
            u0[w] = shared.before_sync()
        else:
            lags.append((w, shared.applied(u0[w])))
    assert lags == [(1, 0), (0, 1), (2, 1), (1, 0), (0, 1), (1, 0)]
    assert shared.raw.value == 6  # every update counted once


def test_histogram_and_summary_by_hand():
    a, b = LagCounter(), LagCounter()
    for lag in (0, 0, 1, 1, 1, 4):
        a.add(lag)
    for lag in (0, 1, 1, 4, 5000):  # beyond the dense range: still counted
        b.add(lag)
    assert a.histogram() == [[0, 2], [1, 3], [4, 1]]
    both = merge([a.histogram(), b.histogram()])
    assert both == [[0, 3], [1, 5], [4, 2], [5000, 1]]
    s = summary(both)  # 11 updates: 0 0 0 1 1 1 1 1 4 4 5000
    # ranks: median ceil(5.5) = 6th = 1; p95 ceil(10.45) = 11th = 5000
    assert s == {"updates": 11, "mean": round((5 + 8 + 5000) / 11, 4), "median": 1, "p95": 5000, "max": 5000}
    # a alone, 0 0 1 1 1 4: median the 3rd = 1, p95 ceil(5.7) = 6th = 4
    assert summary(a.histogram()) == {"updates": 6, "mean": round(7 / 6, 4), "median": 1, "p95": 4, "max": 4}
    assert summary([]) is None


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 2])
def test_a_real_hogwild_run_records_its_policy_lag(tmp_path, threads):
    """One worker never lags; with two, every update is counted once and the mean is about N - 1 = 1
    (each worker's segments tile its time, so each of the other's updates lands in one of them)."""
    cfg = make_run_config(algorithm="a3c", env="CartPole-v1", threads=threads, seed=3, frames=30_000,
                          eval={"episodes": 0})
    result = train(cfg, tmp_path)
    assert result.state == "done", result.error
    lag = json.loads((tmp_path / "status.json").read_text())["policy_lag"]
    assert [w["worker"] for w in lag["workers"]] == list(range(threads))
    assert lag["updates"] == sum(c for _, c in lag["histogram"]) == sum(w["updates"] for w in lag["workers"])
    assert lag["updates"] * 20 >= 30_000  # A3C on vector observations: t_max 20, an update per 20 steps at most
    if threads == 1:
        assert lag["histogram"] == [[0, lag["updates"]]] and lag["max"] == 0
    else:
        assert 0.5 <= lag["mean"] <= 1.5 and lag["max"] >= 1
        assert all(w["updates"] > 0 for w in lag["workers"])


def test_the_reports_throughput_table_gives_the_policy_lag(tmp_path):
    """Mean over runs of each run's mean, median and p95; the largest lag of any run."""
    from harness.report import build_report
    from tests.synthetic_runs import write_run

    for seed, (mean, median, p95, top) in enumerate([(1.0, 1, 2, 5), (1.2, 0, 4, 141)]):
        write_run(tmp_path, threads=2, seed=seed, frames=100_000,
                  status_extra={"policy_lag": {"updates": 100, "mean": mean, "median": median, "p95": p95,
                                               "max": top, "histogram": [], "workers": []}})
    write_run(tmp_path, threads=1, seed=0, frames=100_000)  # written before the key existed: NaN, not 0
    summary = build_report([tmp_path], bootstrap_reps=0, figures=False, strict=True)
    tp = summary.tables["throughput"]["csv"]
    import pandas as pd

    rows = pd.read_csv(tp).set_index("threads")
    assert rows.loc[2, ["lag_mean", "lag_median", "lag_p95", "lag_max"]].tolist() == [1.1, 0.5, 3.0, 141.0]
    assert rows.loc[1, ["lag_mean", "lag_max"]].isna().all()
