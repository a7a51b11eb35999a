"""Every shipped algorithm (the four built-in ones and A3C-LSTM) passes every check of ``harness check
algorithm`` (tiny budgets)."""

from __future__ import annotations

import pytest

from algorithms import SHIPPED
from harness.check import check_algorithm

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("algo", SHIPPED)
def test_builtin_algorithm_passes_every_check(algo):
    rows = []
    report = check_algorithm(algo, frames=600, perf_seconds=0.3, min_fps=20, progress=rows.append)
    assert report.passed, str(report)
    assert rows == report.rows  # progress saw every row as it finished
    assert {r.stage for r in report.rows} == {"api", "seed", "performance"}
    assert all(r.status == "pass" for r in report.rows)
    assert report["async updates change θ"].values["max_abs_delta"] > 0
    assert report["same seed, same episodes"].values["theta_identical"] is True
    assert report["frames/s (1 worker)"].values["frames_per_second"] > 20
