"""Statistics that never overstate: intervals that cannot vary, speedups that measure no learning,
collapse scores set by unfinished runs, and means that leave games out (README "Reports")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.report import build_report
from harness.report.aggregates import Group, aggregate_table, improvement_table, profiles
from harness.report.load import load_runs
from harness.report.scores import run_table
from tests.synthetic_runs import write_run

REPS = 200


# ------------------------------------------------------------------------ 1. intervals that cannot vary
def _group(alg: str, scores: list[list[float]]) -> Group:
    """``scores``: one list of normalised final scores per game (Pong, Breakout)."""
    from harness.stats import pad_ragged

    games = ["Pong", "Breakout"][: len(scores)]
    return Group(alg, 1, games, [list(range(len(s))) for s in scores], pad_ragged(scores))


def test_no_aggregate_interval_where_a_game_has_one_run():
    one_each = _group("a3c", [[0.3], [0.7]])  # Group(scores=[[0.3, 0.7]])
    agg = aggregate_table([one_each], REPS, None)
    assert agg["value"].notna().all()
    assert agg["ci_low"].isna().all() and agg["ci_high"].isna().all()  # not "0.500 [0.500, 0.500]"
    assert (agg["ci_note"] == "no interval: a single run in Pong, Breakout").all()
    # one game of one run among games of several: that game's spread would be missing from the interval
    mixed = _group("a3c", [[0.1, 0.5, 0.9], [0.7]])
    assert aggregate_table([mixed], REPS, None)["ci_low"].isna().all()
    # every game with two runs or more: an interval, which varies
    full = _group("a3c", [[0.1, 0.5, 0.9], [0.6, 0.8]])
    agg = aggregate_table([full], REPS, None).set_index("metric")
    assert (agg["ci_low"] < agg["ci_high"]).all() and (agg["ci_note"] == "").all()


def test_no_improvement_interval_or_profile_band_from_single_runs():
    x, y = _group("a3c", [[0.3], [0.7]]), _group("n_step_q", [[0.2, 0.4], [0.5, 0.9]])
    poi = improvement_table([x, y], REPS, None).iloc[0]
    assert np.isfinite(poi["probability_x_better"])
    assert np.isnan(poi["ci_low"]) and np.isnan(poi["ci_high"])  # not "P = 0.5 [0.5, 0.5]"
    assert poi["ci_note"] == "no interval: a single run in Pong, Breakout"
    y2 = _group("n_step_q", [[0.1, 0.6], [0.4, 0.8]])
    full = improvement_table([_group("a3c", [[0.2, 0.4], [0.5, 0.9]]), y2], REPS, None).iloc[0]
    assert full["ci_low"] < full["ci_high"]
    taus = np.linspace(0, 1, 11)
    profs = profiles([x, y], taus, REPS, None)
    assert profs[("a3c", 1)][1] is None  # no flat band
    assert profs[("n_step_q", 1)][1] is not None


def test_report_with_one_run_per_game_prints_no_interval_and_says_why(tmp_path):
    for alg in ("a3c", "n_step_q"):
        for game, q in (("Pong", 0.0), ("Breakout", 20.0)):
            write_run(tmp_path, algorithm=alg, game=game, seed=0, frames=100_000, evals=3,
                      returns=lambda f, t, q=q: q + f / 1e4)
    summary = build_report([tmp_path], top_k=1, bootstrap_reps=REPS, figures=True, formats=("png",), strict=True)
    md = summary.tables["aggregates"]["md"].read_text()
    assert "[" not in md.split("\n", 2)[2] and "no interval: a single run in Breakout, Pong" in md
    poi = pd.read_csv(summary.tables["probability_of_improvement"]["csv"])
    assert poi["ci_low"].isna().all()
    assert any("aggregates and probability of improvement: No interval" in n for n in summary.notes)
    assert {"aggregates", "performance_profiles", "probability_of_improvement"} <= set(summary.figures)


# ------------------------------------------------------------------------ 2. a reference the curves start above
def _lines(root, start: float, slope1: float = 1.0, slope4: float = 5.0, game: str = "Pong"):
    for threads, slope, seconds, fps in ((1, slope1, 200, 1000), (4, slope4, 50, 4000)):
        for seed in (0, 1):
            write_run(root, game=game, threads=threads, seed=seed, frames=int(seconds * fps), fps=fps,
                      n_episodes=200, returns=lambda f, t, s=slope: start + s * t)


def test_a_reference_below_the_first_point_is_no_speedup(tmp_path):
    """Every curve starts at -20: a reference of -25 is 'reached' when the first episodes end."""
    _lines(tmp_path, start=-20.0)
    summary = build_report([tmp_path], references={"Pong": -25.0}, bootstrap_reps=REPS, figures=True,
                           formats=("png",), strict=True)
    sp = summary.speedup.set_index(["game", "threads"])
    assert sp.loc[("Pong", 4), "status"] == "1 thread reached at start"
    assert np.isnan(sp.loc[("Pong", 4), "speedup"]) and np.isnan(sp.loc[("Pong", 4), "speedup_ci_low"])
    assert "mean" not in sp.index.get_level_values("game")  # left out of the mean
    assert any("leaves out Pong (1 thread reached at start)" in n for n in summary.notes)
    assert "1 thread reached at start" in summary.tables["speedup_matrix"]["md"].read_text()


def test_a_reference_crossed_within_the_smoothing_window_of_the_start_is_flagged(tmp_path):
    """4 threads cross a reference 1.5 points above their start after 1% of their budget (within
    the 5% smoothing window); 1 thread, ten times slower per second, needs 15 s of 200 s."""
    _lines(tmp_path, start=-20.0, slope1=0.1, slope4=3.0)
    summary = build_report([tmp_path], references={"Pong": -18.5}, bootstrap_reps=REPS, figures=False, strict=True)
    sp = summary.speedup.set_index(["game", "threads"])
    assert sp.loc[("Pong", 1), "status"] == "reached"
    assert sp.loc[("Pong", 4), "status"] == "reached at start"
    assert np.isnan(sp.loc[("Pong", 4), "speedup"])
    assert any("Pong (reached at start at 4 threads)" in n for n in summary.notes)
    # the same runs with a reference reached well after the start: a speedup as before
    ok = build_report([tmp_path], out=tmp_path / "ok", references={"Pong": -10.0}, bootstrap_reps=REPS,
                      figures=False, strict=True).speedup.set_index(["game", "threads"])
    assert ok.loc[("Pong", 4), "status"] == "reached"
    assert ok.loc[("Pong", 4), "speedup"] == pytest.approx((10 / 0.1) / (10 / 3.0), rel=0.05)


# ------------------------------------------------------------------------ 3. collapse score from finished runs
def test_only_finished_runs_set_the_collapse_score(tmp_path):
    """A failed Breakout run at -30 and a running one at -40 must not drag the collapse below random play."""
    for seed, q in ((0, 5.0), (1, 8.0)):
        write_run(tmp_path, game="Breakout", seed=seed, frames=100_000, returns=lambda f, t, q=q: q + 0 * f)
    write_run(tmp_path, game="Breakout", seed=2, frames=100_000, returns=lambda f, t: -30.0 + 0 * f,
              state="failed", progress=0.3, error="worker 1 died")
    write_run(tmp_path, game="Breakout", seed=3, frames=100_000, returns=lambda f, t: -40.0 + 0 * f,
              state="running", progress=0.3)
    write_run(tmp_path, game="Breakout", seed=4, frames=100_000, returns=lambda f, t: -50.0 + 0 * f,
              state="diverged", progress=0.3, error="worker 0: loss is NaN")
    table, _ = run_table(load_runs([tmp_path]).runs)
    assert np.allclose(table["collapse_score"], 1.7)  # random play (no-op), the lower bound
    div = table[table["state"] == "diverged"].iloc[0]
    assert div["final_score"] == pytest.approx(1.7) and div["pre_divergence_score"] == pytest.approx(-50.0)


def test_only_finished_runs_set_an_observed_normalisation(tmp_path):
    """An environment without listed bounds is normalised by its done runs' spread, not a failed run's."""
    for seed, q in ((0, 10.0), (1, 30.0)):
        write_run(tmp_path, game="MyEnv-v0", seed=seed, frames=100_000, returns=lambda f, t, q=q: q + 0 * f)
    write_run(tmp_path, game="MyEnv-v0", seed=2, frames=100_000, returns=lambda f, t: -500.0 + 0 * f,
              state="failed", progress=0.2)
    table, norms = run_table(load_runs([tmp_path]).runs)
    assert (norms["MyEnv-v0"].low, norms["MyEnv-v0"].high) == (10.0, 30.0)
    assert (table["collapse_score"] == 10.0).all()


# ------------------------------------------------------------------------ 4. games left out of the mean
def test_games_left_out_of_the_mean_are_shown_and_the_mean_of_every_reached_cell_beside_it(tmp_path):
    """Pong reaches the reference at 1, 2 and 4 threads; Breakout at 1 and 2, never at 4."""
    for game, slopes in (("Pong", (1.0, 2.0, 5.0)), ("Breakout", (1.0, 3.0, 0.2))):
        for threads, slope in zip((1, 2, 4), slopes):
            for seed in (0, 1):
                write_run(tmp_path, game=game, threads=threads, seed=seed, frames=int(200 * 1000 * threads),
                          fps=1000 * threads, returns=lambda f, t, s=slope: s * t)
    summary = build_report([tmp_path], references={"Pong": 100.0, "Breakout": 100.0}, bootstrap_reps=REPS,
                           figures=True, formats=("png",), strict=True)
    sp = summary.speedup.set_index(["game", "threads"])
    assert sp.loc[("mean", 2), "speedup"] == pytest.approx(2.0, rel=0.02)  # Pong alone, at every count
    assert sp.loc[("mean", 2), "games"] == "Pong"
    assert sp.loc[("mean_defined", 2), "speedup"] == pytest.approx((2.0 + 3.0) / 2, rel=0.02)
    assert sp.loc[("mean_defined", 2), "games"] == "Breakout Pong"
    assert sp.loc[("mean_defined", 4), "games"] == "Pong" and sp.loc[("mean_defined", 1), "speedup"] == 1.0
    matrix = pd.read_csv(summary.tables["speedup_matrix"]["csv"]).set_index("game")
    assert np.isnan(matrix.loc["Breakout", "4 threads"]) and matrix.loc["Breakout", "2 threads"] == pytest.approx(3.0, rel=0.02)
    md = summary.tables["speedup_matrix"]["md"].read_text()
    assert "— (not reached)" in md and "mean of the cells reached: 2 (Breakout, Pong)" in md
    assert "table2_speedup" in summary.figures


def test_no_mean_of_reached_cells_when_it_would_average_the_same_games(tmp_path):
    for game in ("Pong", "Breakout"):
        for threads, slope in ((1, 1.0), (4, 5.0)):
            write_run(tmp_path, game=game, threads=threads, seed=0, frames=int(200 * 1000 * threads),
                      fps=1000 * threads, returns=lambda f, t, s=slope: s * t)
    summary = build_report([tmp_path], references={"Pong": 100.0, "Breakout": 100.0}, bootstrap_reps=REPS,
                           figures=False, strict=True)
    assert set(summary.speedup["game"]) == {"Pong", "Breakout", "mean"}


def test_the_papers_seven_game_mean_stands_beside_no_one_game_mean(tmp_path):
    _lines(tmp_path, start=0.0)
    summary = build_report([tmp_path], references={"Pong": 100.0}, bootstrap_reps=REPS, figures=False, strict=True)
    mean4 = summary.speedup.set_index(["game", "threads"]).loc[("mean", 4)]
    assert mean4["speedup"] == pytest.approx(5.0, rel=0.01) and np.isnan(mean4["paper_speedup"])


# ------------------------------------------------------------------------ 5. Fig. 2 as a reviewer reads it
def test_fig2_learning_rate_ticks_do_not_overlap_and_its_legend_counts_a_panel(tmp_path):
    """Rates within one decade: matplotlib would label the minor ticks 2x10^-3, 3x10^-3, 4x10^-3 on
    top of each other. Two games of 6 runs each per thread count: the legend says n=6 per panel."""
    import matplotlib.pyplot as plt

    from harness.report.robustness import plot_robustness, robustness_table
    from harness.report.style import ThreadColours

    for game in ("Pong", "Breakout"):
        for lr in (2e-3, 3e-3, 4e-3):
            for seed in (0, 1):
                write_run(tmp_path, game=game, lr=lr, seed=seed, frames=100_000, returns=lambda f, t: 0 * f + lr * 1e3)
    table, _ = run_table(load_runs([tmp_path]).runs)
    refs = pd.DataFrame({"game": ["Pong", "Breakout"], "reference_score": [2.5, 2.5], "reference_source": "test"})
    fig = plot_robustness(table, robustness_table(table, refs), ThreadColours(table["threads"]))
    assert [t.get_text() for t in fig.legends[0].get_texts()][0] == "1 thread (n=6 per panel)"
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in (a for a in fig.axes if a.get_title()):
        assert not any(t.get_text() for t in ax.xaxis.get_minorticklabels())
        lo, hi = ax.get_xlim()
        shown = [t for t in ax.xaxis.get_majorticklabels()
                 if t.get_text() and lo <= t.get_position()[0] <= hi]
        assert [t.get_text() for t in shown] == ["0.002", "0.003", "0.004"]  # the sweep's own rates
        boxes = sorted((t.get_window_extent(renderer) for t in shown), key=lambda b: b.x0)
        assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:]))  # no label overlaps the next
    plt.close(fig)
