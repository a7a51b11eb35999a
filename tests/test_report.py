"""The report on synthetic run folders with known answers.  Fast: no training, few bootstraps."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from harness.report import ReportError, build_report, parse_reference
from harness.report.cli import report
from harness.report.curves import build_lines, plot_curves, select_learning_rates
from harness.report.load import load_runs
from harness.report.scores import atari_normaliser, game_key, normaliser_for, run_table
from harness.report.speedup import SPEEDUP_COLUMNS
from harness.report.style import ThreadColours, frame_axis
from tests.synthetic_runs import write_run, write_sweep

REPS = 200  # bootstrap repetitions in tests


def linear_runs(root: Path, threads: int, slope: float, seconds: float, fps: float, seeds=(0, 1), lr=1e-3,
                game="Pong", algorithm="a3c", **kw):
    """Runs whose episode return is ``slope * wall_seconds``: they reach 100 at ``100 / slope`` s."""
    for seed in seeds:
        write_run(root, algorithm=algorithm, game=game, threads=threads, lr=lr, seed=seed,
                  frames=int(seconds * fps), fps=fps, n_episodes=200,
                  returns=lambda f, t: slope * t, **kw)


# ---------------------------------------------------------------------------------------------- speedup
def test_speedup_is_exact(tmp_path):
    """1 thread reaches the reference at 100 s, 4 threads at 20 s: speedup 5.0 (two Atari games alike)."""
    for game in ("Pong", "Breakout"):
        linear_runs(tmp_path, threads=1, slope=1.0, seconds=200, fps=1000, game=game)
        linear_runs(tmp_path, threads=4, slope=5.0, seconds=50, fps=4000, game=game)
    summary = build_report([tmp_path], references={"Pong": 100.0, "Breakout": 100.0}, bootstrap_reps=REPS,
                           figures=False, strict=True)
    sp = summary.speedup.set_index(["game", "threads"])
    assert sp.loc[("Pong", 4), "speedup"] == pytest.approx(5.0, rel=1e-6)
    assert sp.loc[("Pong", 4), "time_to_reference_s"] == pytest.approx(20.0, rel=1e-6)
    assert sp.loc[("Pong", 4), "time_to_reference_1thread_s"] == pytest.approx(100.0, rel=1e-6)
    assert sp.loc[("Pong", 4), "efficiency"] == pytest.approx(1.25, rel=1e-6)
    assert sp.loc[("Pong", 1), "speedup"] == pytest.approx(1.0)
    # identical seeds: the bootstrap interval collapses onto the answer
    assert sp.loc[("Pong", 4), "speedup_ci_low"] == pytest.approx(5.0, rel=1e-6)
    assert sp.loc[("Pong", 4), "speedup_ci_high"] == pytest.approx(5.0, rel=1e-6)
    mean = sp.loc[("mean", 4)]
    assert mean["speedup"] == pytest.approx(5.0, rel=1e-6)
    assert mean["paper_speedup"] == pytest.approx(3.7)  # A3C, 4 threads, Table 2: beside a mean of 2 Atari games
    assert mean["throughput_speedup"] == pytest.approx(4.0)
    assert mean["reference_source"] == "per game"
    assert sp.loc[("Pong", 4), "reference_source"] == "--reference"


def test_speedup_csv_schema_and_not_reached(tmp_path):
    linear_runs(tmp_path, threads=1, slope=1.0, seconds=200, fps=1000, game="Pong")
    linear_runs(tmp_path, threads=4, slope=5.0, seconds=50, fps=4000, game="Pong", oversubscribed=True)
    linear_runs(tmp_path, threads=1, slope=1.0, seconds=200, fps=1000, game="Breakout")
    linear_runs(tmp_path, threads=4, slope=0.2, seconds=50, fps=4000, game="Breakout", oversubscribed=True)
    summary = build_report([tmp_path], references={"Pong": 100.0, "Breakout": 100.0}, bootstrap_reps=REPS,
                           figures=False, strict=True)
    csv = pd.read_csv(summary.tables["speedup"]["csv"])
    required = {"algorithm", "game", "threads", "speedup", "efficiency", "reference_score",
                "speedup_ci_low", "speedup_ci_high", "paper_speedup", "throughput_speedup", "oversubscribed"}
    assert required <= set(csv.columns)
    assert list(csv.columns) == SPEEDUP_COLUMNS
    breakout4 = csv[(csv["game"] == "Breakout") & (csv["threads"] == 4)].iloc[0]
    assert breakout4["status"] == "not reached"
    assert pd.isna(breakout4["speedup"]) and pd.isna(breakout4["efficiency"])  # never a number
    assert bool(breakout4["oversubscribed"])
    mean4 = csv[(csv["game"] == "mean") & (csv["threads"] == 4)].iloc[0]
    assert mean4["speedup"] == pytest.approx(5.0)  # Breakout left out of the mean, not averaged in
    assert mean4["n_games"] == 1 and mean4["games"] == "Pong"
    assert any("leaves out Breakout" in n for n in summary.notes)
    md = summary.tables["speedup"]["md"].read_text()
    assert "not reached" in md


def test_speedup_bootstrap_ci_contains_the_true_value(tmp_path):
    rng = np.random.default_rng(1)
    for threads, slope, seconds, fps in ((1, 1.0, 200, 1000), (4, 5.0, 50, 4000)):
        for seed in range(4):
            jitter = 1 + 0.05 * rng.standard_normal()
            write_run(tmp_path, threads=threads, lr=1e-3, seed=seed, frames=int(seconds * fps), fps=fps,
                      returns=lambda f, t, s=slope * jitter: s * t)
    summary = build_report([tmp_path], references={"Pong": 100.0}, bootstrap_reps=REPS, figures=False,
                           strict=True)
    row = summary.speedup.set_index(["game", "threads"]).loc[("Pong", 4)]
    assert row["speedup_ci_low"] < 5.0 < row["speedup_ci_high"]
    assert row["speedup"] == pytest.approx(5.0, rel=0.1)


def test_default_reference_rule_and_suite_references(tmp_path):
    suite = tmp_path / "smoke"
    linear_runs(suite, threads=1, slope=1.0, seconds=200, fps=1000)
    linear_runs(suite, threads=2, slope=2.0, seconds=100, fps=2000)
    summary = build_report([tmp_path], bootstrap_reps=0, figures=False, strict=True)
    ref = summary.references.set_index("game").loc["Pong"]
    assert ref["reference_source"] == "default rule"
    # both curves run from ~0 to ~195 (edge of the centred window): 80% of the way to the weaker peak
    assert 140 < ref["reference_score"] < 170
    assert summary.speedup.set_index(["game", "threads"]).loc[("Pong", 2), "speedup"] == pytest.approx(2.0, rel=1e-3)

    (suite / "suite.json").write_text(json.dumps({"name": "smoke", "reference_scores": {"Pong": 50}}))
    summary = build_report([tmp_path], bootstrap_reps=0, figures=False, strict=True)
    ref = summary.references.set_index("game").loc["Pong"]
    assert (ref["reference_score"], ref["reference_source"]) == (50.0, "suite smoke")
    assert "reference_scores" in summary.index_html.read_text()  # the suite file is shown

    summary = build_report([tmp_path], references={"Pong": 60.0}, bootstrap_reps=0, figures=False, strict=True)
    assert summary.references.set_index("game").loc["Pong", "reference_source"] == "--reference"


# ---------------------------------------------------------------------------------------------- curves
def test_top_k_learning_rate_selection(tmp_path):
    lrs = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
    quality = {1e-4: 1.0, 3e-4: 4.0, 1e-3: 5.0, 3e-3: 3.0, 1e-2: 2.0}
    for lr in lrs:
        for seed in (0, 1):
            write_run(tmp_path, lr=lr, seed=seed, frames=100_000, returns=lambda f, t, q=quality[lr]: q + 0 * f)
    runs = load_runs([tmp_path]).runs
    table, _ = run_table(runs)
    sel = select_learning_rates(table, top_k=3)
    assert sorted(sel.loc[sel["selected"], "lr"]) == [3e-4, 1e-3, 3e-3]
    assert sel.set_index("lr").loc[1e-3, "rank"] == 1
    assert list(select_learning_rates(table, top_k=1).query("selected")["lr"]) == [1e-3]
    lines = build_lines(runs, table, sel, reps=0)
    assert len(lines) == 1 and lines[0].lrs == [3e-4, 1e-3, 3e-3] and lines[0].n_runs == 6
    assert np.nanmean(lines[0].frame_mean) == pytest.approx(4.0)  # mean of the three best: (4+5+3)/3


def test_unequal_curves_are_interpolated_before_averaging(tmp_path):
    write_run(tmp_path, seed=0, frames=1_000_000, fps=1000, returns=lambda f, t: f / 1e4)
    # a finished run that stopped at half its budget (e.g. an early stop at a target return)
    write_run(tmp_path, seed=1, frames=1_000_000, fps=1000, returns=lambda f, t: f / 1e4 + 10, progress=0.5,
              n_episodes=77)
    runs = load_runs([tmp_path]).runs
    table, _ = run_table(runs)
    sel = select_learning_rates(table, top_k=3)
    (line,) = build_lines(runs, table, sel, reps=0)
    grid = line.frame_grid
    both = (grid > 40_000) & (grid < 460_000)  # covered by both runs, away from the smoothing window's edges
    np.testing.assert_allclose(line.frame_mean[both], grid[both] / 1e4 + 5, atol=1e-4)
    beyond = grid > 520_000  # only one of the two runs covers it: not averaged with a missing run
    assert np.isnan(line.frame_mean[beyond]).all()


def test_running_runs_draw_a_line_only_until_one_finishes(tmp_path):
    write_run(tmp_path, threads=1, seed=0, frames=100_000, state="running", progress=0.4)
    write_run(tmp_path, threads=2, seed=0, frames=100_000, state="running", progress=0.4)
    write_run(tmp_path, threads=2, seed=1, frames=100_000)
    runs = load_runs([tmp_path]).runs
    table, _ = run_table(runs)
    lines = {ln.threads: ln for ln in build_lines(runs, table, select_learning_rates(table), reps=0)}
    assert lines[1].provisional and lines[1].label == "1 thread (n=1, running)"
    assert not lines[2].provisional and lines[2].n_runs == 1  # the finished run only


def test_epoch_axis(tmp_path):
    assert frame_axis(40e6)[0] == 4e6 and "epoch" in frame_axis(40e6)[1]
    assert frame_axis(1e6)[0] == 1e6 and "millions" in frame_axis(1e6)[1]
    assert frame_axis(5e4)[0] == 1e3 and "thousands" in frame_axis(5e4)[1]
    for threads in (1, 2):
        write_run(tmp_path, threads=threads, frames=40_000_000, fps=4000 * threads, returns=lambda f, t: f / 1e6)
    runs = load_runs([tmp_path]).runs
    table, _ = run_table(runs)
    lines = build_lines(runs, table, select_learning_rates(table), reps=0)
    fig = plot_curves(lines, ThreadColours([1, 2]), axis="frames")
    (ax,) = [a for a in fig.axes if a.get_lines()]
    xmax = max(line.get_xdata().max() for line in ax.get_lines())
    assert xmax == pytest.approx(10.0)  # 40M frames = 10 epochs of 4M frames
    assert "epoch" in ax.get_xlabel()


# ---------------------------------------------------------------------------------------------- normalisation
def test_human_normalisation():
    hs = atari_normaliser("Pong", "human-start")
    assert hs(15.5) == pytest.approx(1.0) and hs(-18.0) == pytest.approx(0.0)
    assert hs(-1.25) == pytest.approx(0.5)
    noop = atari_normaliser("Breakout", "no-op")
    assert noop(31.8) == pytest.approx(1.0) and noop(1.7) == pytest.approx(0.0)
    assert atari_normaliser("ALE/SpaceInvaders-v5", "no-op").high == pytest.approx(1652.3)
    assert atari_normaliser("Q*bert", "human-start").low == pytest.approx(183.0)
    assert game_key("BeamRiderNoFrameskip-v4") == game_key("Beam Rider") == "beamrider"
    cart = normaliser_for("CartPole-v1", False, "no-op", np.array([1.0]))
    assert (cart.low, cart.high, cart.kind) == (0.0, 500.0, "min-max") and cart(250) == pytest.approx(0.5)
    unknown = normaliser_for("MyEnv-v0", False, "no-op", np.array([2.0, 4.0, 6.0]))
    assert unknown(4.0) == pytest.approx(0.5) and "observed" in unknown.source


def test_run_table_normalises_final_scores(tmp_path):
    write_run(tmp_path, game="Pong", frames=100_000, returns=lambda f, t: np.full_like(f, 9.3))
    write_run(tmp_path, game="Pong", seed=1, frames=100_000, returns=lambda f, t: np.full_like(f, -20.7))
    table, norms = run_table(load_runs([tmp_path]).runs, baseline="no-op")
    assert sorted(table["normalised_score"]) == pytest.approx([0.0, 1.0])
    assert set(table["score_source"]) == {"train"}


def test_final_score_prefers_evaluations(tmp_path):
    write_run(tmp_path, frames=100_000, returns=lambda f, t: f / 1e3, evals=5)
    table, _ = run_table(load_runs([tmp_path]).runs)
    assert table.loc[0, "score_source"] == "eval"
    assert table.loc[0, "final_score"] == pytest.approx(100.0)  # the last evaluation, at 100k frames


# ---------------------------------------------------------------------------------------------- robustness
def write_partial_sweep(root: Path) -> None:
    write_sweep(root, algorithms=("a3c",), games=("Pong",), threads=(1, 2), lrs=(3e-4, 7e-4, 2e-3), seeds=(0, 1),
                frames=400_000, n_episodes=40, diverge_lr=None)
    write_run(root, "failed-run", threads=2, lr=7e-4, seed=5, state="failed", error="worker 1: segfault",
              n_episodes=3, frames=400_000, progress=0.01)
    half = root / "half-written"
    half.mkdir()
    (half / "status.json").write_text('{"state": "running"')  # truncated JSON, no config.json
    write_run(root, "still-running", threads=1, lr=7e-4, seed=9, state="running", progress=0.3, frames=400_000,
              n_episodes=12, returns=lambda f, t: f / 1e4)
    write_run(root, "no-episodes-yet", threads=1, lr=7e-4, seed=8, state="running", n_episodes=0, frames=400_000)
    write_run(root, "no-status", threads=1, lr=3e-4, seed=7, frames=400_000, files=("config.json",))
    torn = write_run(root, "torn-line", threads=2, lr=3e-4, seed=6, frames=400_000, n_episodes=10,
                     returns=lambda f, t: f / 1e4)
    with open(torn / "episodes.csv", "a") as f:
        f.write("12345,1.0,0")  # a half-written last line
    bad = write_run(root, "bad-config", files=())
    (bad / "config.json").write_text("{not json")
    write_run(root, "empty-csv", threads=2, lr=2e-3, seed=4, frames=400_000, n_episodes=0)
    (root / "empty-csv" / "episodes.csv").write_text("")


def test_report_over_a_partial_sweep(tmp_path):
    write_partial_sweep(tmp_path / "partial")
    summary = build_report([tmp_path / "partial"], bootstrap_reps=50, formats=("png",), strict=True)
    text = "\n".join(summary.problems)
    assert "run failed: worker 1: segfault" in text
    assert "half-written" in text and "no config.json" in text
    assert "bad-config: config.json unreadable" in text
    assert "no-status: status.json missing" in text
    assert "torn-line: episodes.csv 1 malformed line(s) ignored" in text
    assert "empty-csv: episodes.csv empty" in text
    assert any("still running" in n for n in summary.notes)
    html = summary.index_html.read_text()
    assert "What is missing" in html and "segfault" in html and "half-written" in html
    assert summary.states["failed"] == 1 and summary.states["running"] == 2
    runs = pd.read_csv(summary.tables["runs"]["csv"])
    assert "failed" in set(runs["state"])
    assert {"fig3_data_efficiency", "fig2_robustness", "throughput"} <= set(summary.figures)


def test_robustness_marks_diverged_runs_and_shares(tmp_path):
    write_sweep(tmp_path, algorithms=("a3c",), games=("Pong",), threads=(1,), lrs=(1e-4, 7e-4, 6e-3), seeds=(0, 1),
                frames=400_000, n_episodes=40, diverge_lr=6e-3, noise=0.0)
    summary = build_report([tmp_path], references={"Pong": 0.0}, bootstrap_reps=0, figures=False, strict=True)
    rb = pd.read_csv(summary.tables["robustness"]["csv"]).iloc[0]
    assert rb["n_diverged"] == 1 and rb["n_lrs"] == 3
    assert rb["share_lrs_all_good"] == pytest.approx(1 / 3)  # only lr 7e-4 has every run >= 0
    assert rb["lr_all_good_min"] == pytest.approx(7e-4)


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_exit_2_on_empty_dir(tmp_path):
    result = CliRunner().invoke(report, [str(tmp_path)])
    assert result.exit_code == 2
    assert "nothing to report" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_cli_exit_2_on_bad_input(tmp_path):
    result = CliRunner().invoke(report, [str(tmp_path / "missing")])
    assert result.exit_code == 2 and "does not exist" in result.output and "Traceback" not in result.output
    write_run(tmp_path, n_episodes=5, frames=10_000)
    for bad in ("Pong", "Pong=abc", "=3", "Pong=inf"):
        result = CliRunner().invoke(report, [str(tmp_path), "--reference", bad])
        assert result.exit_code == 2, bad
        assert "GAME=SCORE" in result.output or "not" in result.output
    result = CliRunner().invoke(report, [str(tmp_path), "--baseline", "median"])
    assert result.exit_code == 2
    only_running = tmp_path / "r"
    write_run(only_running, n_episodes=0, state="running")
    result = CliRunner().invoke(report, [str(only_running)])
    assert result.exit_code == 2 and "no run has finished an episode yet" in result.output


def test_cli_writes_report(tmp_path):
    linear_runs(tmp_path / "s", threads=1, slope=1.0, seconds=200, fps=1000)
    linear_runs(tmp_path / "s", threads=2, slope=2.0, seconds=100, fps=2000)
    out = tmp_path / "rep"
    result = CliRunner().invoke(report, [str(tmp_path / "s"), "--out", str(out), "--reference", "Pong=100",
                                         "--top-k", "1", "--bootstrap-reps", "20", "--baseline", "human-start"])
    assert result.exit_code == 0, result.output
    assert (out / "index.html").is_file() and (out / "tables" / "speedup.csv").is_file()
    assert "Report written to" in result.output
    sp = pd.read_csv(out / "tables" / "speedup.csv")
    assert sp.query("game == 'Pong' and threads == 2")["speedup"].iloc[0] == pytest.approx(2.0)
    # the report folder is not mistaken for runs on the next scan
    assert load_runs([tmp_path]).problems == []


def test_parse_reference():
    assert parse_reference("Pong=12.5") == ("Pong", 12.5)
    assert parse_reference(" Space Invaders = -3 ") == ("Space Invaders", -3.0)
    for bad in ("Pong", "Pong=", "=1", "Pong=x"):
        with pytest.raises(ValueError):
            parse_reference(bad)


def test_api_errors(tmp_path):
    with pytest.raises(ReportError, match="does not exist"):
        build_report([tmp_path / "nope"])
    with pytest.raises(ReportError, match="nothing to report"):
        build_report([tmp_path])


# ---------------------------------------------------------------------------------------------- full report
@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory):
    """A smoke-sized sweep: 2 algorithms x 2 Atari games + CartPole, 3 thread counts, 2 optimizers."""
    root = tmp_path_factory.mktemp("results")
    write_sweep(root / "smoke", threads=(1, 2, 4), lrs=(3e-4, 7e-4, 2e-3, 6e-3), seeds=(0, 1),
                optimizers=("shared_rmsprop", "momentum_sgd"), frames=8_000_000, n_episodes=60, evals=4)
    write_sweep(root / "classic", algorithms=("a3c",), games=("CartPole-v1",), threads=(1, 2), lrs=(7e-4, 2e-3),
                frames=200_000, n_episodes=60)
    (root / "smoke" / "suite.yaml").write_text("name: smoke\nreference_scores:\n  Pong: 0.0\n")
    summary = build_report([root], bootstrap_reps=REPS, strict=True)
    return root, summary


EXPECTED_FIGURES = {"fig3_data_efficiency", "fig4_training_speed", "table2_speedup", "fig2_robustness",
                    "figS5_optimizers", "aggregates", "performance_profiles", "probability_of_improvement",
                    "sample_efficiency_iqm", "throughput"}
EXPECTED_TABLES = {"runs", "lr_selection", "references", "normalisation", "speedup", "speedup_matrix", "robustness", "aggregates",
                   "probability_of_improvement", "throughput", "paper_scores"}


def test_full_report_renders_every_figure_and_table(smoke_report):
    root, summary = smoke_report
    assert set(summary.figures) == EXPECTED_FIGURES
    for name, paths in summary.figures.items():
        assert {p.suffix for p in paths} == {".png", ".pdf"}
        assert all(p.stat().st_size > 1000 for p in paths)
    assert set(summary.tables) == EXPECTED_TABLES
    for files in summary.tables.values():
        assert files["csv"].is_file() and files["md"].read_text().startswith("|")
    html = summary.index_html.read_text()
    assert html.count("data:image/png;base64,") == len(EXPECTED_FIGURES)
    assert not re.search(r"""(src|href)=["']https?://""", html)  # offline: nothing fetched
    for text in ("Provenance", "synthetic-host", "Synthetic CPU", "torch", "2026-01-01", "reference_scores",
                 "Learning curve", "Final score", "Extended Data Table 2", "no-op"):
        assert text in html, text
    assert summary.problems == []


def test_full_report_tables_content(smoke_report):
    root, summary = smoke_report
    agg = pd.read_csv(summary.tables["aggregates"]["csv"])
    assert set(agg["metric"]) == {"IQM", "median", "mean", "optimality_gap"}
    assert (agg["ci_low"] <= agg["value"] + 1e-9).all() and (agg["value"] <= agg["ci_high"] + 1e-9).all()
    assert set(agg["threads"]) == {1, 2, 4}
    poi = pd.read_csv(summary.tables["probability_of_improvement"]["csv"])
    assert len(poi) == 3 and poi["probability_x_better"].between(0, 1).all()
    refs = summary.references.set_index("game")
    assert refs.loc["Pong", "reference_source"] == "suite smoke"
    assert refs.loc["Breakout", "reference_source"] == "default rule"
    runs = pd.read_csv(summary.tables["runs"]["csv"])
    pong = runs[runs["game"] == "Pong"]
    assert set(pong.loc[pong["state"] == "done", "score_source"]) == {"eval"}
    assert set(pong.loc[pong["state"] == "diverged", "score_source"]) == {"collapse (diverged)"}
    assert set(runs.loc[runs["game"] == "CartPole-v1", "score_source"]) == {"train"}
    paper = pd.read_csv(summary.tables["paper_scores"]["csv"]).set_index(["game", "algorithm"])
    assert paper.loc[("Pong", "a3c"), "paper_a3c_ff_1day"] == pytest.approx(11.4)
    assert paper.loc[("Pong", "a3c"), "threads"] == 4 and "CartPole-v1" not in paper.index.get_level_values(0)
    norm = pd.read_csv(summary.tables["normalisation"]["csv"]).set_index("game")
    assert norm.loc["CartPole-v1", "high (1)"] == 500 and norm.loc["Pong", "normalisation"] == "human-normalised"


def test_figure_content(smoke_report, tmp_path):
    """Panels, lines and legends of the curve figures, checked on the Figure objects."""
    root, summary = smoke_report
    runs = load_runs([root / "smoke"]).runs
    table, _ = run_table(runs)
    sel = select_learning_rates(table, top_k=3)
    lines = build_lines(runs, table, sel, reps=20)
    colours = ThreadColours(table["threads"])
    assert {(ln.algorithm, ln.game) for ln in lines} == {(a, g) for a in ("a3c", "n_step_q") for g in ("Pong", "Breakout")}
    assert all(ln.optimizer == "shared_rmsprop" for ln in lines)
    for axis in ("frames", "time"):
        fig = plot_curves(lines, colours, axis=axis)
        panels = [a for a in fig.axes if a.get_title()]
        assert len(panels) == 4
        for ax in panels:
            assert len(ax.get_lines()) == 3  # one per thread count
            labels = [t.get_text() for t in ax.get_legend().get_texts()]
            assert labels == ["1 thread (n=6)", "2 threads (n=6)", "4 threads\u2020 (n=6)"]  # 3 best lrs x 2 seeds
            assert [ln.get_color() for ln in ax.get_lines()] == [colours(1), colours(2), colours(4)]
            assert ax.get_xlabel() == "" or ("epoch" in ax.get_xlabel() if axis == "frames" else "time" in ax.get_xlabel())
        assert fig.get_suptitle().startswith("Data efficiency" if axis == "frames" else "Training speed")
        plt.close(fig)


def test_robustness_and_throughput_figure_content(smoke_report):
    from harness.report.robustness import plot_robustness, robustness_table
    from harness.report.throughput import plot_throughput, throughput_table

    root, summary = smoke_report
    runs = load_runs([root / "smoke"]).runs
    table, _ = run_table(runs)
    colours = ThreadColours(table["threads"])
    rb = robustness_table(table, summary.references)
    fig = plot_robustness(table, rb, colours)
    panels = [a for a in fig.axes if a.get_title()]
    assert len(panels) == 4 and all(a.get_xscale() == "log" for a in panels)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    # each of the 4 panels (2 algorithms x 2 games) holds 4 lrs x 2 seeds = 8 runs per thread count
    assert legend[:3] == ["1 thread (n=8 per panel)", "2 threads (n=8 per panel)", "4 threads\u2020 (n=8 per panel)"]
    assert "diverged" in legend and "good score (= reference)" in legend
    plt.close(fig)
    fig = plot_throughput(throughput_table(table, 20, None), colours)
    for ax in fig.axes:
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "ideal (linear in threads)" in labels and ax.get_yscale() == "log"
        assert "frames/s" in ax.get_ylabel()
    plt.close(fig)


def test_throughput_table_says_where_the_time_went(tmp_path):
    from harness.report.throughput import throughput_table

    def phases(update, act=2.5):
        return {"phases": {"sync_ms": 0.1, "act_ms": act, "learn_ms": 2.0, "update_ms": update}}

    for seed, update in ((0, 0.4), (1, 0.6)):
        write_run(tmp_path, threads=1, seed=seed, fps=1000.0, status_extra=phases(update))
    # steady throughput (after start-up) is preferred to the whole-run rate when a run records it
    write_run(tmp_path, threads=2, seed=0, fps=1500.0,
              status_extra={**phases(1.1, act=2.6), "steady_frames_per_second": 1700.0})
    write_run(tmp_path, threads=2, seed=1, fps=1700.0)  # written before phases were recorded
    tp = throughput_table(run_table(load_runs([tmp_path]).runs)[0], 0, None).set_index("threads")
    assert tp.loc[1, "update_ms"] == pytest.approx(0.5) and tp.loc[1, "act_ms"] == pytest.approx(2.5)
    assert tp.loc[2, "update_ms"] == pytest.approx(1.1)  # the run without phases is left out, not a zero
    assert tp.loc[2, "frames_per_second"] == pytest.approx(1700.0)
    assert tp.loc[2, "parallel_efficiency"] == pytest.approx(0.85)
    from harness.report.throughput import PHASE_LABELS, has_phases, plot_phases

    assert has_phases(tp) and not has_phases(tp.assign(update_ms=np.nan))
    fig = plot_phases(tp.reset_index())
    (panel,) = [ax for ax in fig.axes if ax.get_title()]
    assert [t.get_text() for t in panel.get_xticklabels()] == ["1", "2"]
    heights = [p.get_height() for p in panel.patches]  # 4 phases x 2 thread counts, stacked
    assert heights[6:] == pytest.approx([0.5, 1.1])  # the shared update of 1 and 2 threads
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(PHASE_LABELS.values())
    plt.close(fig)


def test_a_diverged_run_without_score_counts_against_its_learning_rate(tmp_path):
    for lr, q in ((1e-4, 3.0), (1e-3, 7.0), (1e-2, 9.0)):
        write_run(tmp_path, lr=lr, seed=0, frames=100_000, returns=lambda f, t, q=q: q + 0 * f)
    write_run(tmp_path, lr=1e-2, seed=1, frames=100_000, n_episodes=0, state="diverged", error="NaN loss")
    table, _ = run_table(load_runs([tmp_path]).runs)
    sel = select_learning_rates(table, top_k=1).set_index("lr")
    # the run that never scored counts as a collapse: random play (-20.7), below every run's score
    assert sel.loc[1e-2, "mean_final_score"] == pytest.approx((9.0 - 20.7) / 2)
    assert bool(sel.loc[1e-3, "selected"])
    norm = table.set_index("seed").loc[1, "normalised_score"]
    assert norm == 0.0  # a diverged run that never scored sits at the lower bound (random) in aggregates


def test_a_diverged_run_scores_as_a_collapse_everywhere(tmp_path):
    """It scored well before it diverged: it must not rank, aggregate or draw as a good run."""
    for lr, q in ((1e-4, -15.0), (1e-3, -10.0)):
        write_run(tmp_path, lr=lr, seed=0, frames=100_000, returns=lambda f, t, q=q: q + 0 * f)
    write_run(tmp_path, lr=1e-2, seed=0, frames=100_000, returns=lambda f, t: -12.0 + 0 * f)
    write_run(tmp_path, lr=1e-2, seed=1, frames=100_000, returns=lambda f, t: 10.0 + 0 * f, state="diverged",
              progress=0.5, error="worker 0: non-finite loss")
    table, _ = run_table(load_runs([tmp_path]).runs)
    div = table[table["state"] == "diverged"].iloc[0]
    assert div["pre_divergence_score"] == pytest.approx(10.0)  # kept, for the record
    assert div["final_score"] == pytest.approx(-20.7)  # random play (no-op baseline): the collapse score
    assert div["normalised_score"] == pytest.approx(0.0) and div["score_source"] == "collapse (diverged)"
    assert (table.loc[table["state"] == "done", "final_score"] >= div["final_score"]).all()
    sel = select_learning_rates(table, top_k=1).set_index("lr")
    assert sel.loc[1e-2, "mean_final_score"] == pytest.approx((-12.0 - 20.7) / 2)
    assert bool(sel.loc[1e-3, "selected"]) and not bool(sel.loc[1e-2, "selected"])
    # its curve drops to the collapse score where it diverged and stays there to the end of the budget
    from harness.report.curves import run_curve

    runs = load_runs([tmp_path]).runs
    frames, wall, score = run_curve(runs, table, int(div.name))
    assert frames[-1] == 100_000 and score[-1] == pytest.approx(-20.7) and score[0] == pytest.approx(10.0)
    assert wall[-1] == pytest.approx(2 * wall[np.searchsorted(frames, 50_000)], rel=0.02)  # the rest at its own pace
    assert (np.diff(frames) > 0).all() and (np.diff(wall) >= 0).all()
    # the same in the whole report: aggregates see 0, robustness counts lr 1e-2 as not all-good
    summary = build_report([tmp_path], references={"Pong": -13.0}, top_k=3, bootstrap_reps=REPS, figures=False,
                           strict=True)
    runs_csv = pd.read_csv(summary.tables["runs"]["csv"])
    assert runs_csv.loc[runs_csv["state"] == "diverged", "normalised_score"].tolist() == [0.0]
    rb = pd.read_csv(summary.tables["robustness"]["csv"]).iloc[0]
    assert rb["n_lrs_all_good"] == 1  # lr 1e-3 only: 1e-2 has a diverged run, 1e-4 scores -15 < -13


def test_speedup_interval_with_one_seed_per_learning_rate_varies_or_is_absent(tmp_path):
    """The shipped Atari suites have one seed per learning rate: resampling within learning rates
    would reproduce the data every time and print a zero-width 95% CI."""
    for threads, slope, seconds, fps in ((1, 1.0, 200, 1000), (4, 5.0, 50, 4000)):
        for lr, jitter in ((1e-4, 0.8), (1e-3, 1.0), (1e-2, 1.25)):
            write_run(tmp_path, threads=threads, lr=lr, seed=0, frames=int(seconds * fps), fps=fps,
                      returns=lambda f, t, s=slope * jitter: s * t)
    summary = build_report([tmp_path], references={"Pong": 100.0}, top_k=3, bootstrap_reps=REPS, figures=False,
                           strict=True)
    sp = summary.speedup.set_index(["game", "threads"])
    lo, hi = sp.loc[("Pong", 4), ["speedup_ci_low", "speedup_ci_high"]]
    assert lo < sp.loc[("Pong", 4), "speedup"] < hi  # an interval that reflects run-to-run variation
    assert np.isnan(sp.loc[("Pong", 1), "speedup_ci_low"])  # 1 thread: 1 by definition, no interval
    # a line of a single run (top-1, one seed): no interval at all, and none printed
    one = build_report([tmp_path], out=tmp_path / "top1", references={"Pong": 100.0}, top_k=1, bootstrap_reps=REPS,
                       figures=False, strict=True)
    row = one.speedup.set_index(["game", "threads"]).loc[("Pong", 4)]
    assert np.isfinite(row["speedup"]) and np.isnan(row["speedup_ci_low"]) and np.isnan(row["speedup_ci_high"])
    md = one.tables["speedup"]["md"].read_text()
    assert "[" not in md.split("\n", 2)[2]  # no bracketed interval in the table body


def test_paper_table2_stands_only_beside_a_mean_over_atari_games(tmp_path):
    linear_runs(tmp_path, threads=1, slope=1.0, seconds=200, fps=1000, game="CartPole-v1")
    linear_runs(tmp_path, threads=4, slope=5.0, seconds=50, fps=4000, game="CartPole-v1")
    summary = build_report([tmp_path], references={"CartPole-v1": 100.0}, bootstrap_reps=REPS, figures=False,
                           strict=True)
    mean4 = summary.speedup.set_index(["game", "threads"]).loc[("mean", 4)]
    assert mean4["speedup"] == pytest.approx(5.0, rel=1e-6) and np.isnan(mean4["paper_speedup"])
    assert "mean of 1 (CartPole-v1)" in summary.tables["speedup"]["md"].read_text()


def test_time_to_reference_is_counted_from_the_workers_start(tmp_path):
    """10 s of start-up before the first update must not count against the run."""
    for threads, slope, seconds, fps in ((1, 1.0, 200, 1000), (4, 5.0, 50, 4000)):
        write_run(tmp_path, threads=threads, seed=0, frames=int(seconds * fps), fps=fps, n_episodes=400,
                  returns=lambda f, t, s=slope: s * np.maximum(t - 10.0, 0.0), status_extra={"startup_seconds": 10.0})
    summary = build_report([tmp_path], references={"Pong": 100.0}, bootstrap_reps=0, figures=False, strict=True)
    sp = summary.speedup.set_index(["game", "threads"])
    assert sp.loc[("Pong", 4), "time_to_reference_s"] == pytest.approx(20.0, rel=0.02)
    assert sp.loc[("Pong", 4), "time_to_reference_1thread_s"] == pytest.approx(100.0, rel=0.02)
    assert sp.loc[("Pong", 4), "speedup"] == pytest.approx(5.0, rel=0.03)


def test_curves_and_speedup_from_evaluation_snapshots(tmp_path):
    """Training returns include ε = 0.5 exploration; --curves eval reads the evaluation snapshots."""
    for threads, slope, seconds, fps in ((1, 1.0, 200, 1000), (4, 5.0, 50, 4000)):
        # training episodes lag far behind (exploration); evaluations follow slope * t exactly
        write_run(tmp_path, threads=threads, seed=0, frames=int(seconds * fps), fps=fps, evals=100,
                  returns=lambda f, t, s=slope: s * t)
        ep = tmp_path / f"a3c-Pong-t{threads}-lr0.001-s0-shared_rmsprop" / "episodes.csv"
        df = pd.read_csv(ep)
        df["return"] = df["return"] * 0.5
        df.to_csv(ep, index=False)
    train = build_report([tmp_path], references={"Pong": 100.0}, bootstrap_reps=0, figures=False, strict=True)
    ev = build_report([tmp_path], out=tmp_path / "eval-report", references={"Pong": 100.0}, bootstrap_reps=0,
                      figures=False, strict=True, curves="eval")
    t_train = train.speedup.set_index(["game", "threads"]).loc[("Pong", 4), "time_to_reference_s"]
    t_eval = ev.speedup.set_index(["game", "threads"]).loc[("Pong", 4), "time_to_reference_s"]
    assert t_eval == pytest.approx(20.0, rel=0.03) and t_train == pytest.approx(40.0, rel=0.05)
    with pytest.raises(ReportError, match="curves must be one of"):
        build_report([tmp_path], curves="evaluation", figures=False)
    result = CliRunner().invoke(report, [str(tmp_path), "--curves", "eval", "--bootstrap-reps", "0",
                                         "--out", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("state", ["running", "interrupted"])
def test_report_while_no_run_has_ended(tmp_path, state):
    """The first minutes of a sweep: nothing finished yet (used to crash on a date of no finished run)."""
    for lr in (1e-3, 1e-2):
        write_run(tmp_path, lr=lr, seed=0, state=state, progress=0.3, returns=lambda f, t: f / 1e5)
    summary = build_report([tmp_path], bootstrap_reps=10, strict=True)
    assert summary.index_html.is_file()
    # what is missing is said, not raised: interrupted runs are listed as such, running ones in a note
    assert [p.split(": ", 1)[1] for p in summary.problems] == ([] if state == "running" else
                                                               ["run interrupted at 1200000 frames"] * 2)
    assert any("no finished run" in n for n in summary.notes)
    if state == "running":  # no end date anywhere (an interrupted run has one)
        assert "none has ended yet" in summary.index_html.read_text()
    result = CliRunner().invoke(report, [str(tmp_path), "--bootstrap-reps", "10", "--out", str(tmp_path / "cli")])
    assert result.exit_code == 0 and "Traceback" not in result.output


def test_report_over_failed_runs_only_says_so(tmp_path):
    write_run(tmp_path, lr=1e-3, state="failed", n_episodes=0, error="worker 0 raised: boom")
    result = CliRunner().invoke(report, [str(tmp_path)])
    assert result.exit_code == 2 and "every run failed" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_the_command_line_reports_without_importing_torch():
    """Importing torch costs 3-4 s of every command (a cold report over 10,000 runs in
    30 s): the command line, the report, the gate, the suite and the sweep's plan import neither
    torch nor the environments; ``harness train`` still shows every algorithm's hyperparameters."""
    import subprocess
    import sys

    code = ("import sys, harness.cli, harness.report.build, harness.gate, harness.suite, harness.sweep.plan; "
            "print(sorted(m for m in ('torch', 'gymnasium', 'ale_py', 'algorithms') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    from harness.cli import cli

    res = CliRunner().invoke(cli, ["train", "--help"])
    assert res.exit_code == 0 and "--t-max" in res.output and "--entropy-beta" in res.output and "--eval-episodes" in res.output


def test_a_finished_figure_is_not_laid_out_again_when_saved():
    """``finish`` lays a figure out once; a layout engine left on it (tight_layout leaves a
    placeholder) would make savefig lay it out again for every format: the same pixels, slower."""
    from harness.report.style import finish, panel_grid, set_theme

    set_theme()
    fig, _ = panel_grid(1, 2)
    assert finish(fig, "title", ["a note"]).get_layout_engine() is None
    plt.close(fig)


def test_run_folders_are_found_under_a_linked_relative_root_with_their_suite(tmp_path, monkeypatch):
    """Discovery works out real paths from the root's (no resolve per run folder): a root given
    relative, through a symbolic link, still finds every run, its suite (the folder with the suite
    file) and skips the report folder inside it."""
    from harness.report.load import discover

    real = tmp_path / "real"
    (real / "s1").mkdir(parents=True)
    (real / "s1" / "suite.yaml").write_text("name: alpha\n")
    write_run(real / "s1", "r0", suite=None)
    write_run(real / "loose", "r1", suite=None)
    write_run(real / "s1" / "report", "ghost", suite=None)
    (tmp_path / "link").symlink_to(real)
    monkeypatch.chdir(tmp_path)
    found, problems, suites = discover([Path("link")], skip=[Path("link/s1/report")])
    assert sorted((p.name, s) for p, s in found) == [("r0", "alpha"), ("r1", "loose")]
    assert list(suites) == ["alpha"] and not problems
    (run,) = discover([Path("link/s1/r0")])[0]
    assert run[1] is None  # a run folder given as the root has no suite


def test_many_run_folders_are_read_in_two_processes_with_the_same_result(tmp_path, monkeypatch):
    import harness.report.load as load_mod

    paths = write_sweep(tmp_path / "res", algorithms=("a3c", "n_step_q"), games=("Pong",), threads=(1, 2),
                        lrs=(1e-3, 3e-3), seeds=(0, 1, 2), frames=400_000, n_episodes=30)
    (paths[0] / "episodes.csv").write_text((paths[0] / "episodes.csv").read_text() + "12,3")  # half-written line
    serial = load_runs([tmp_path / "res"], workers=1)
    monkeypatch.setattr(load_mod, "PARALLEL_READ_RUNS", 4)
    parallel = load_runs([tmp_path / "res"], workers=2)
    assert len(parallel.runs) == len(serial.runs) == len(paths)
    assert parallel.problems == serial.problems and any("malformed" in p for p in serial.problems)
    for a, b in zip(serial.runs, parallel.runs):
        assert a.path == b.path and a.suite == b.suite and a.config == b.config
        assert np.array_equal(a.ep_frames, b.ep_frames) and np.array_equal(a.ep_return, b.ep_return)


@pytest.mark.parametrize("workers", [1, 2])
def test_figures_drawn_beside_the_report_come_back_in_order_with_their_failures(tmp_path, workers):
    """Each figure is drawn as soon as it is submitted (forked, with two workers); one that raises
    and one whose process dies are reported by name, and the others are saved."""
    import os

    from harness.report.render import Renderer

    def ok(k):
        def make():
            fig, ax = plt.subplots()
            ax.plot([0, k])
            return fig
        return make

    def boom():
        raise ValueError("no data")

    def die():
        os._exit(3)

    r = Renderer(tmp_path, ("png",), workers)
    r.submit("a", ok(1))
    r.submit("bad", boom)
    if workers > 1:
        r.submit("dies", die)
    r.submit("b", ok(2))
    out = {name: (paths, error) for name, paths, error in r.results()}
    assert [n for n, *_ in r.results()] == (["a", "bad", "dies", "b"] if workers > 1 else ["a", "bad", "b"])
    assert out["a"][0] == [tmp_path / "a.png"] and (tmp_path / "b.png").is_file()
    assert out["bad"][0] is None and out["bad"][1].startswith("ValueError: no data")
    if workers > 1:
        assert out["dies"][0] is None and "exit code 3" in out["dies"][1]


def test_cli_no_pdf_saves_png_figures_only(tmp_path):
    write_sweep(tmp_path / "res", algorithms=("a3c",), games=("Pong",), threads=(1, 2), lrs=(1e-3,),
                seeds=(0, 1), frames=400_000, n_episodes=30)
    result = CliRunner().invoke(report, [str(tmp_path / "res"), "--no-pdf", "--bootstrap-reps", "0",
                                         "--out", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    figs = tmp_path / "rep" / "figures"
    assert list(figs.glob("*.png")) and not list(figs.glob("*.pdf"))


def test_figures_all_drawn_before_the_results_are_asked_for_do_not_hang_it(tmp_path):
    """The last figure finished before ``results()``: it is collected, and nothing is waited for
    (waiting on no process at all blocked forever: found by a fresh clone's make test)."""
    import threading

    from harness.report.render import Renderer

    def make():
        fig, ax = plt.subplots()
        ax.plot([0, 1])
        return fig

    r = Renderer(tmp_path, ("png",), workers=2)
    r.submit("only", make)
    deadline = time.monotonic() + 60
    while any(p.is_alive() for _, p, _ in r.running) and time.monotonic() < deadline:
        time.sleep(0.05)
    box = []
    t = threading.Thread(target=lambda: box.append(r.results()), daemon=True)
    t.start()
    t.join(30)
    assert box, "results() hung with every figure already drawn"
    assert box[0] == [("only", [tmp_path / "only.png"], None)]


def test_a3c_lstm_has_the_papers_name_and_comes_after_a3c():
    from harness.report.style import algorithm_label, algorithm_order

    assert algorithm_label("a3c_lstm") == "A3C LSTM"
    assert algorithm_order(["my_algo", "a3c_lstm", "a3c", "one_step_q"]) == ["one_step_q", "a3c", "a3c_lstm", "my_algo"]
