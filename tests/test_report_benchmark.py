"""Benchmark: a report over 10,000 synthetic runs of 200 episodes each in at most 30 s.

Not part of ``make test`` (marker ``benchmark``); run with ``pytest -m benchmark tests/test_report_benchmark.py``.
Writing the runs is not timed.  The first report is timed cold (no cache); a second report over the same
runs reuses the cached bootstrap results.
"""

from __future__ import annotations

import time

import pytest

from harness.report import build_report
from tests.synthetic_runs import write_sweep

LIMIT_S = 30.0


@pytest.mark.benchmark
def test_report_over_10000_runs(tmp_path):
    root = tmp_path / "results" / "big"
    paths = write_sweep(root, algorithms=("one_step_q", "one_step_sarsa", "n_step_q", "a3c"),
                        games=("Pong", "Breakout", "BeamRider", "Qbert", "SpaceInvaders"),
                        threads=(1, 2, 4, 8, 16), lrs=tuple(1e-4 * 1.6 ** i for i in range(10)),
                        seeds=tuple(range(10)), frames=40_000_000, n_episodes=200, diverge_lr=None)
    assert len(paths) == 10_000
    t0 = time.perf_counter()
    summary = build_report([root], bootstrap_reps=2000)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    build_report([root], bootstrap_reps=2000)
    warm = time.perf_counter() - t0
    print(f"\nreport over {summary.n_run_folders} runs: cold {cold:.1f} s, cached {warm:.1f} s")
    assert summary.n_run_folders == 10_000 and len(summary.figures) >= 9
    assert cold <= LIMIT_S
