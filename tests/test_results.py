"""harness.results: the pandas reader of run folders, against hand-built folders with known answers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from harness import results
from tests.synthetic_runs import write_run

# Pong, no-op table (Mnih et al. 2015, Extended Data Table 2): random -20.7, human 9.3, so a score s
# normalises to (s + 20.7) / 30.
LAG = {"updates": 100, "mean": 1.5, "median": 1, "p95": 3, "max": 7}


def _const(value):
    return lambda f, t: np.full_like(f, value)


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "results" / "study"
    root.mkdir(parents=True)
    (root / "suite.json").write_text(json.dumps({"name": "study", "reference_scores": {"Pong": 0.0}}))
    common = dict(game="Pong", frames=1_000_000, suite="study", n_episodes=50)
    write_run(root, "done-a", lr=1e-3, returns=_const(4.3), evals=2, status_extra={"policy_lag": LAG}, **common)
    write_run(root, "done-b", lr=3e-3, returns=_const(-5.3), evals=2, **common)
    # diverged at 40% of its budget while scoring 7: a failure, scored at the collapse score
    write_run(root, "diverged", lr=3e-2, returns=_const(7.0), state="diverged", progress=0.4, evals=None,
              files=("config.json", "status.json", "episodes.csv"), **common)
    write_run(root, "failed", lr=1e-4, state="failed", error="RuntimeError: boom\nTraceback ...", n_episodes=0,
              files=("config.json", "status.json"), **{k: v for k, v in common.items() if k != "n_episodes"})
    write_run(root, "running", lr=5e-4, returns=_const(1.0), state="running", progress=0.5, evals=None,
              status_extra={"virtual_frames_per_second": 12345.0}, **common)
    half = root / "half-written"
    half.mkdir()
    (half / "status.json").write_text("{}")
    return root


def test_one_row_per_run_with_the_reports_scores(tree):
    res = results.load(tree)
    runs = res.runs.set_index("run_id")
    assert sorted(runs.index) == ["diverged", "done-a", "done-b", "failed", "running"]
    assert runs.loc["done-a", "state"] == "done" and runs.loc["done-a", "score_source"] == "eval"
    assert runs.loc["done-a", "final_score"] == pytest.approx(4.3)
    assert runs.loc["done-a", "normalised_score"] == pytest.approx((4.3 + 20.7) / 30)
    assert runs.loc["done-b", "normalised_score"] == pytest.approx((-5.3 + 20.7) / 30)
    # a diverged run is a failure: the lower of random play (-20.7) and the worst done run (-5.3)
    d = runs.loc["diverged"]
    assert d["pre_divergence_score"] == pytest.approx(7.0) and d["final_score"] == pytest.approx(-20.7)
    assert d["collapse_score"] == pytest.approx(-20.7) and d["normalised_score"] == pytest.approx(0.0)
    assert d["score_source"] == "collapse (diverged)" and d["progress"] == pytest.approx(0.4)
    assert np.isnan(runs.loc["failed", "final_score"]) and runs.loc["failed", "n_episodes"] == 0
    # a running run: its training score so far, half its budget, the virtual clock's throughput
    r = runs.loc["running"]
    assert (r["state"], r["finished"], r["score_source"]) == ("running", False, "train")
    assert r["final_score"] == pytest.approx(1.0) and r["progress"] == pytest.approx(0.5)
    assert r["frames_per_second"] == pytest.approx(12345.0)
    # identity keys, hyperparameters, policy lag where recorded
    assert runs.loc["done-a", ["algorithm", "game", "threads", "lr", "seed", "suite"]].tolist() == [
        "a3c", "Pong", 1, 1e-3, 0, "study"]
    assert runs.loc["done-a", ["hp_gamma", "hp_t_max", "hp_entropy_beta"]].tolist() == [0.99, 5, 0.01]
    assert runs.loc["done-a", ["lag_mean", "lag_median", "lag_p95", "lag_max"]].tolist() == [1.5, 1, 3, 7]
    assert np.isnan(runs.loc["done-b", "lag_mean"])
    assert res.suites["study"]["config"]["reference_scores"] == {"Pong": 0.0}
    assert res.normalisers["Pong"].low == pytest.approx(-20.7)


def test_problems_are_listed_not_raised(tree):
    res = results.load(tree)
    assert any("half-written" in p and "no config.json" in p for p in res.problems)
    assert any(p.endswith("failed: run failed: RuntimeError: boom") for p in res.problems), res.problems
    (tree / "done-b" / "config.json").write_text("{not json")  # a corrupt file: that run is skipped
    res = results.load(tree)
    assert "done-b" not in set(res.runs["run_id"]) and any("done-b" in p and "config.json" in p for p in res.problems)
    with pytest.raises(results.ResultsError, match="does not exist"):
        results.load(tree / "nope")


def test_episodes_and_evals_in_long_form(tree):
    res = results.load(tree)
    ep, ev = res.episodes, res.evals
    assert list(ep.columns) == ["run", "suite", "run_id", "frames", "wall_seconds", "return"]
    assert list(ev.columns) == ["run", "suite", "run_id", "frames", "wall_seconds", "mean_return"]
    counts = ep.groupby("run_id", observed=True).size().to_dict()
    assert counts == {"done-a": 50, "done-b": 50, "diverged": 50, "running": 50}
    assert ev.groupby("run_id", observed=True).size().to_dict() == {"done-a": 2, "done-b": 2}
    # the key joins back to runs; the episodes of done-a end at 20,000 ... 1,000,000 frames, each 4.3
    joined = ep.merge(res.runs[["run", "lr", "state"]], on="run")
    a = joined[joined["run_id"] == "done-a"]
    assert (a["lr"] == 1e-3).all() and a["frames"].iloc[0] == 20_000 and a["frames"].iloc[-1] == 1_000_000
    assert a["return"].to_numpy() == pytest.approx(np.full(50, 4.3))
    assert ep["frames"].dtype == np.int64
    # one number of the report in a few lines of pandas: the final score is the last evaluation
    last = ev.sort_values("frames").groupby("run_id", observed=True)["mean_return"].last()
    assert last["done-a"] == pytest.approx(res.runs.set_index("run_id").loc["done-a", "final_score"])


def test_one_run_folder_and_several_roots(tree, tmp_path):
    one = results.load(tree / "done-a")
    assert list(one.runs["run_id"]) == ["done-a"] and len(one.episodes) == 50
    other = tmp_path / "other"
    write_run(other, "extra", game="Pong", frames=1_000_000, suite="other", returns=_const(0.0), evals=1)
    both = results.load([tree, other])
    assert set(both.runs["suite"]) == {"study", "other"} and len(both.runs) == 6
    empty = results.load(tmp_path / "results" / "study" / "half-written")
    assert empty.runs.empty and empty.episodes.empty and "run_id" in empty.runs.columns


def test_the_report_reads_through_it(tree, tmp_path):
    """One reader: the report's runs table is results.load's, less the hyperparameter columns."""
    from harness.report import build_report

    summary = build_report([tree], out=tmp_path / "rep", bootstrap_reps=0, figures=False)
    res = results.load(tree, skip=[tmp_path / "rep"])
    mine = res.runs.drop(columns=res.hyperparameter_columns)
    pd.testing.assert_frame_equal(summary.runs.reset_index(drop=True), mine.reset_index(drop=True))


# ------------------------------------------------------------------------------------------------
# harness export tensorboard, read back with TensorBoard's own reader
def _events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    ea.Reload()
    return ea


def _scalars(ea, tag):
    return [(e.step, e.value, e.wall_time) for e in ea.Scalars(tag)]


def test_export_tensorboard_reads_back(tree, tmp_path):
    from tensorboard.plugins.hparams import api_pb2, metadata
    from click.testing import CliRunner

    from harness.cli import cli

    out = tmp_path / "tb"
    res = CliRunner().invoke(cli, ["export", "tensorboard", str(tree), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "5 run(s) written" in res.output and "200 new episodes, 4 new evaluations, 4 newly finished" in res.output
    ea = _events(out / "study" / "done-a")
    ret = _scalars(ea, "train/return")
    assert [s for s, _, _ in ret] == list(range(20_000, 1_000_001, 20_000)) and all(v == pytest.approx(4.3) for _, v, _ in ret)
    # the wall axis is the run's clock: started_at (2026-01-01T00:00:00Z) + wall_seconds (frames / 1000 fps)
    assert ret[-1][2] == pytest.approx(1767225600.0 + 1000.0)
    assert [(s, v) for s, v, _ in _scalars(ea, "eval/mean_return")] == [(500_000, pytest.approx(4.3)), (1_000_000, pytest.approx(4.3))]
    lr = _scalars(ea, "train/learning_rate")  # 1e-3 annealed linearly to 0 over 1M frames, at 1% steps
    assert len(lr) == 101 and lr[0][:2] == (0, pytest.approx(1e-3)) and lr[50][:2] == (500_000, pytest.approx(5e-4))
    assert _scalars(ea, "lag/p95")[0][:2] == (1_000_000, 3.0) and _scalars(ea, "perf/frames_per_second")[0][1] == 1000.0
    assert _scalars(ea, "hparams/final_score")[0][1] == pytest.approx(4.3)
    assert _scalars(ea, "hparams/normalised_score")[0][1] == pytest.approx(25 / 30)
    content = ea.PluginTagToContent("hparams")
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    assert start.hparams["lr"].number_value == pytest.approx(1e-3) and start.hparams["algorithm"].string_value == "a3c"
    assert start.hparams["hp_t_max"].number_value == 5 and start.hparams["threads"].number_value == 1
    end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
    assert end.status == api_pb2.STATUS_SUCCESS
    # a diverged run is a failure, scored at its collapse score; a failed run has no score
    ea = _events(out / "study" / "diverged")
    assert _scalars(ea, "hparams/final_score")[0][1] == pytest.approx(-20.7)
    end = metadata.parse_session_end_info_plugin_data(ea.PluginTagToContent("hparams")[metadata.SESSION_END_INFO_TAG])
    assert end.status == api_pb2.STATUS_FAILURE
    ea = _events(out / "study" / "failed")
    assert "hparams/final_score" not in ea.Tags()["scalars"]
    # a running run: no end of session yet, its episodes so far
    ea = _events(out / "study" / "running")
    assert metadata.SESSION_END_INFO_TAG not in ea.PluginTagToContent("hparams")
    assert len(_scalars(ea, "train/return")) == 50


def test_export_tensorboard_is_incremental(tree, tmp_path):
    from harness.export import export_tensorboard

    out = tmp_path / "tb"
    export_tensorboard([tree], out)
    again = export_tensorboard([tree], out)
    assert (again["runs"], again["unchanged"], again["episodes"]) == (0, 5, 0)
    # the running run goes on: 50 more episodes (to 100% of its budget), then it finishes
    write_run(tree, "running", game="Pong", frames=1_000_000, suite="study", n_episodes=100, lr=5e-4,
              returns=lambda f, t: np.where(f > 500_000, 2.0, 1.0), evals=1)
    more = export_tensorboard([tree], out)
    assert (more["runs"], more["episodes"], more["evals"], more["finished"]) == (1, 50, 1, 1)
    ea = _events(out / "study" / "running")
    ret = _scalars(ea, "train/return")
    steps = [s for s, _, _ in ret]
    assert sorted(steps) == list(range(10_000, 1_000_001, 10_000))  # each episode once, none written twice
    assert [v for s, v, _ in ret if s > 500_000] == [2.0] * 50
    lr_steps = sorted(s for s, _, _ in _scalars(ea, "train/learning_rate"))
    assert lr_steps == list(range(0, 1_000_001, 10_000))  # 0..50% first, then 51..100%, no step twice
    assert sorted(e.step for e in ea.Scalars("perf/frames_per_second")) == [500_000, 1_000_000]
    # a collapse score moves when a worse run finishes: the diverged run's score is written again
    write_run(tree, "done-c", lr=1e-2, game="Pong", frames=1_000_000, suite="study", n_episodes=50,
              returns=_const(-21.0), evals=2)
    export_tensorboard([tree], out)
    written = sorted(v for _, v, _ in _scalars(_events(out / "study" / "diverged"), "hparams/final_score"))
    assert written == [pytest.approx(-21.0), pytest.approx(-20.7)]


def test_export_tensorboard_without_the_extra_is_one_line(tree, tmp_path, monkeypatch):
    import builtins
    import subprocess
    import sys

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("tensorboard") or name == "torch.utils.tensorboard":
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    from harness.export import ExportError, export_tensorboard

    with pytest.raises(ExportError, match=r"needs the tensorboard extra.*pip install 'async-rl-harness\[tensorboard\]'"):
        export_tensorboard([tree], tmp_path / "tb")
    monkeypatch.undo()
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "export", "tensorboard", str(tmp_path / "nope"),
                           "--out", str(tmp_path / "tb")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "does not exist" in proc.stderr


def test_export_tensorboard_after_a_failed_write_writes_each_event_once(tree, tmp_path, monkeypatch):
    """A write that fails (a full disk: made for real with a small tmpfs while this was built) takes back
    that run's new event file, so the next export writes its events once, not twice."""
    import harness.export as export

    out = tmp_path / "tb"
    real = export._write_state
    calls = []

    def full_disk(path, state):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(path, state)

    monkeypatch.setattr(export, "_write_state", full_disk)
    with pytest.raises(OSError, match="No space left"):
        export.export_tensorboard([tree], out)
    failed = calls[1].parent
    assert not list(failed.glob("events.out.tfevents.*")) and not (failed / export.STATE_FILE).exists()
    monkeypatch.setattr(export, "_write_state", real)
    export.export_tensorboard([tree], out)
    for run in ("done-a", "done-b", "diverged", "running"):
        steps = [s for s, _, _ in _scalars(_events(out / "study" / run), "train/return")]
        assert len(steps) == len(set(steps)) == 50, run
