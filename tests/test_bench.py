"""`harness bench`: output structure and the regression gate. No test asserts absolute speed."""

from __future__ import annotations

import json

import pandas as pd
from click.testing import CliRunner

from harness.bench import SCHEMA_VERSION, BenchRow, compare
from harness.cli import cli

ROW_KEYS = set(BenchRow.__dataclass_fields__)


def test_bench_cli_writes_json_and_csv(tmp_path):
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(cli, ["bench", "--algo", "a3c,one_step_q", "--env", "CartPole-v1",
                                   "--threads", "1", "--seconds", "0.5", "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["schema_version"] == 2 and data["env"] == "CartPole-v1"
    assert {"logical_cores", "physical_cores", "cpu_model"} <= set(data["host"])
    assert {"torch", "ale_py", "python"} <= set(data["versions"])
    assert [r["algorithm"] for r in data["rows"]] == ["a3c", "one_step_q"]
    for r in data["rows"]:
        assert set(r) == ROW_KEYS
        assert r["env_fps"] > r["act_fps"] > 0 and r["learn_ms"] > 0
        assert r["bound_fps"] < r["act_fps"]  # learning costs something
        assert r["train_fps"] > 0 and r["efficiency"] == 1.0  # 1 thread is its own reference
        assert r["train_over_bound"] > 0 and r["peak_worker_rss_mb"] > 0
        assert abs(r["bound_share"] - r["bound_fps"] / r["env_fps"]) < 1e-3  # a share of the env's own pace
        assert abs(r["train_share"] - r["train_fps_per_worker"] / r["env_fps"]) < 1e-3
        assert r["sharing"] == "hogwild" and r["optimizer"] == "shared_rmsprop"
        # phases are timed after each worker's first 1,000 steps, which a 0.5 s run on a loaded machine may
        # not reach: 0.0 then (test_bench_rows_carry_the_runs_phases checks the values themselves)
        assert min(r["train_act_ms"], r["train_learn_ms"], r["train_update_ms"]) >= 0
        assert r["lag_mean"] == r["lag_median"] == r["lag_p95"] == r["lag_max"] == 0.0  # one worker never lags
    csv = pd.read_csv(out.with_suffix(".csv"))
    assert set(csv.columns) == ROW_KEYS and len(csv) == 2
    # the same file is a valid baseline: comparing a result with itself passes
    res2 = CliRunner().invoke(cli, ["bench", "--algo", "a3c", "--env", "CartPole-v1", "--threads", "1",
                                    "--seconds", "0.5", "--out", str(tmp_path / "b2.json"),
                                    "--compare", str(out), "--tolerance", "0.95", "--repeat", "3"])
    assert res2.exit_code == 0, res2.output
    assert json.loads((tmp_path / "b2.json").read_text())["repeat"] == 3


def test_unshared_control_adds_rows_beside_the_method(tmp_path):
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(cli, ["bench", "--algo", "a3c", "--env", "CartPole-v1", "--threads", "1,2",
                                   "--seconds", "0.5", "--unshared-control", "--optimizer", "rmsprop", "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    rows = data["rows"]
    assert [(r["threads"], r["sharing"]) for r in rows] == [(1, "hogwild"), (2, "hogwild"), (2, "unshared")]
    assert data["optimizer"] == "rmsprop" and {r["optimizer"] for r in rows} == {"rmsprop"}
    assert all(r["efficiency"] > 0 and r["train_update_ms"] >= 0 for r in rows)  # >= 0: see above
    assert "unshared" in res.output


def test_bench_rows_carry_the_runs_phases(monkeypatch, tmp_path):
    """The phase columns are the run's status.json "phases" (deterministic: no timing involved)."""
    from harness import bench, store
    from harness.config import make_run_config
    from harness.engine.run import RunResult

    phases = {"sync_ms": 0.1, "act_ms": 2.5, "learn_ms": 1.5, "update_ms": 0.7, "report_ms": 0.01}

    def fake_train(cfg, out_dir, **kw):
        store.write_json_atomic(out_dir / "status.json", {"state": "done", "frames_per_second": 900.0,
                                                          "steady_frames_per_second": 1000.0, "phases": phases})
        return RunResult("done", None, 1000, 1.0, out_dir)

    monkeypatch.setattr(bench, "train", fake_train)
    got = bench.measure_training(make_run_config(algorithm="a3c", env="CartPole-v1"), 1.0)
    assert got["train_fps"] == 1000.0 and got["phases"] == phases
    lag = {"updates": 10, "mean": 1.2, "median": 1, "p95": 3, "max": 7, "histogram": [], "workers": []}

    def fake_train_with_lag(cfg, out_dir, **kw):
        store.write_json_atomic(out_dir / "status.json", {"state": "done", "frames_per_second": 900.0,
                                                          "phases": phases, "policy_lag": lag})
        return RunResult("done", None, 1000, 1.0, out_dir)

    monkeypatch.setattr(bench, "train", fake_train_with_lag)
    assert bench.measure_training(make_run_config(algorithm="a3c", env="CartPole-v1"), 1.0)["policy_lag"] == lag


def _result(ratio, eff, sharing=None):
    row = {"algorithm": "a3c", "env": "Pong", "threads": 2, "train_over_bound": ratio, "efficiency": eff}
    if sharing is not None:
        row["sharing"] = sharing
    return {"schema_version": SCHEMA_VERSION, "rows": [row]}


def test_regression_gate_catches_a_planted_regression():
    base = _result(0.9, 0.95)
    assert compare(_result(0.88, 0.93), base, 0.2) == []  # noise within tolerance
    problems = compare(_result(0.5, 0.95), base, 0.2)  # training fell to half of the bound
    assert len(problems) == 1 and "train_over_bound" in problems[0]
    problems = compare(_result(0.9, 0.6), base, 0.2)
    assert len(problems) == 1 and "efficiency" in problems[0]
    # rows without "sharing" (older files) are the method's; control rows only meet control rows
    assert compare(_result(0.9, 0.6, "hogwild"), base, 0.2) == problems
    assert compare(_result(0.5, 0.5, "unshared"), base, 0.2) == []
    problems = compare(_result(0.5, 0.95, "unshared"), _result(0.9, 0.95, "unshared"), 0.2)
    assert len(problems) == 1 and "(unshared)" in problems[0]
    other = _result(0.5, 0.5)
    other["rows"][0]["optimizer"] = "rmsprop"  # another optimizer is another measurement
    assert compare(other, base, 0.2) == []


def test_the_gate_sees_a_slower_per_step_path():
    """A slower acting or learning path lowers the bound and training alike (train/bound stays put):
    bound_share, the bound as a share of the environment's pace, is what moves. Baselines written
    before bound_share existed skip it."""
    base = _result(0.9, 0.95)
    base["rows"][0]["bound_share"] = 0.10
    slower = _result(0.9, 0.95)
    slower["rows"][0]["bound_share"] = 0.05
    problems = compare(slower, base, 0.2)
    assert len(problems) == 1 and "bound_share" in problems[0]
    assert compare(slower, _result(0.9, 0.95), 0.2) == []


def test_a_version_1_baseline_gates_no_bound_of_a_fast_row():
    """Version 1 measured a fast network's acting through the module's call, which a worker no longer
    makes: the bounds of its fast rows (and of rows without ``gradient``, which stand for the default
    path) are not compared; their efficiency is, and so is every ratio of a version-2 baseline and
    of a version-1 autograd row."""
    now = _result(0.6, 0.6)
    now["rows"][0].update(gradient="fast", bound_share=0.45)
    for gradient in ("fast", None):
        base = _result(0.9, 0.95)
        base.pop("schema_version")  # version 1 wrote schema_version 1; the oldest files, none
        base["rows"][0]["bound_share"] = 0.30
        if gradient:
            base["rows"][0]["gradient"] = gradient
        problems = compare(now, base, 0.2)
        assert len(problems) == 1 and "efficiency" in problems[0], gradient
        base["schema_version"] = 2
        problems = compare(now, base, 0.2)
        assert len(problems) == 2 and "train_over_bound" in problems[0] and "efficiency" in problems[1]
    ref = {"schema_version": 1, "rows": [dict(now["rows"][0], gradient="autograd", train_over_bound=0.9, efficiency=0.6)]}
    current = {"rows": [dict(now["rows"][0], gradient="autograd")]}
    problems = compare(current, ref, 0.2)
    assert len(problems) == 1 and "train_over_bound" in problems[0]


def test_speed_gate_markdown_and_junit():
    import xml.etree.ElementTree as ET

    from harness.bench import compare_report
    from harness.ci_output import junit_xml

    base = {"schema_version": SCHEMA_VERSION,
            "rows": _result(0.9, 0.95)["rows"] + [dict(_result(0.9, 0.95)["rows"][0], algorithm="one_step_q")]}
    cur = {"rows": [dict(base["rows"][0], train_over_bound=0.4), base["rows"][1]]}
    text, cases = compare_report(cur, base, 0.2, "base.json")
    assert "FAILED (1 of 2 configurations pass)" in text and "0.900 → 0.400" in text
    root = ET.fromstring(junit_xml(cases, "harness bench"))
    tcs = root.findall(".//testcase")
    assert [tc.get("name") for tc in tcs] == ["a3c Pong threads=2", "one_step_q Pong threads=2"]
    assert tcs[0].find("failure") is not None and "train_over_bound" in tcs[0].find("failure").get("message")
    assert tcs[1].find("failure") is None


def test_regression_gate_exit_code(tmp_path, monkeypatch):
    import xml.etree.ElementTree as ET

    base = tmp_path / "base.json"
    base.write_text(json.dumps({"schema_version": SCHEMA_VERSION,
                                "rows": [{"algorithm": "a3c", "env": "CartPole-v1", "threads": 1,
                                          "train_over_bound": 50.0, "efficiency": 1.0}]}))
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    res = CliRunner().invoke(cli, ["bench", "--algo", "a3c", "--env", "CartPole-v1", "--threads", "1",
                                   "--seconds", "0.3", "--out", str(tmp_path / "cur.json"), "--compare", str(base),
                                   "--junit", str(tmp_path / "speed.xml"), "--markdown", str(tmp_path / "speed.md")])
    assert res.exit_code == 1
    assert "regression" in res.output and "train_over_bound" in res.output
    assert ET.parse(tmp_path / "speed.xml").getroot().get("failures") == "1"
    md = (tmp_path / "speed.md").read_text()
    assert "Speed gate: FAILED" in md and summary.read_text() == md + "\n"  # GitHub's step summary too
    res = CliRunner().invoke(cli, ["bench", "--junit", str(tmp_path / "x.xml")])  # nothing to gate
    assert res.exit_code == 2 and "--compare" in res.output


def test_a_training_run_that_does_not_finish_stops_the_bench(monkeypatch, tmp_path):
    """Ctrl-C inside a measurement (the run catches it to stop its workers) must stop the bench,
    and a failed run must not be reported as a throughput."""
    import pytest

    from harness import bench
    from harness.config import make_run_config
    from harness.engine.run import RunResult

    cfg = make_run_config(algorithm="a3c", env="CartPole-v1")
    for state, raised in (("interrupted", KeyboardInterrupt), ("failed", bench.BenchError)):
        monkeypatch.setattr(bench, "train", lambda *a, state=state, **k: RunResult(state, "boom", 0, 1.0, tmp_path))
        with pytest.raises(raised):
            bench.measure_training(cfg, 1.0)


def test_bench_bad_input_is_one_line_exit_2():
    res = CliRunner().invoke(cli, ["bench", "--algo", "nope"])
    assert res.exit_code == 2 and "unknown algorithm" in res.output
    res = CliRunner().invoke(cli, ["bench", "--threads", "0"])
    assert res.exit_code == 2


def test_bench_rows_of_the_virtual_and_synchronous_schedules(tmp_path):
    """Each schedule at each thread count, beside a 1-worker Hogwild run of the same round."""
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(cli, ["bench", "--algo", "a3c", "--env", "CartPole-v1", "--threads", "2",
                                   "--schedule", "virtual,sync", "--seconds", "0.5", "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = json.loads(out.read_text())["rows"]
    assert [(r["threads"], r["schedule"]) for r in rows] == [(1, "hogwild"), (2, "virtual"), (2, "sync")]
    assert rows[0]["vs_one_worker"] == 1.0 and all(r["vs_one_worker"] > 0 for r in rows)
    assert rows[2]["lag_max"] == 0.0  # one learner: no lag
    bad = CliRunner().invoke(cli, ["bench", "--schedule", "lockstep", "--out", str(tmp_path / "x.json")])
    assert bad.exit_code == 2 and "--schedule: lockstep" in bad.output


def test_reference_adds_an_autograd_row_beside_each_fast_row(tmp_path):
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(cli, ["bench", "--algo", "one_step_q", "--env", "CartPole-v1", "--threads", "1",
                                   "--seconds", "0.5", "--reference", "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = json.loads(out.read_text())["rows"]
    assert [(r["algorithm"], r["gradient"]) for r in rows] == [("one_step_q", "fast"), ("one_step_q", "autograd")]
    assert all(r["train_fps"] > 0 and r["learn_ms"] > 0 for r in rows)
    assert "(autograd)" in res.output
    # the gate compares a path with the same path only; a row without "gradient" (files written before
    # the fast path) stands for the default path, as the gate always compared the default path
    fast, ref = rows
    slow_fast = dict(fast, bound_share=fast["bound_share"] / 2)
    def file(row):
        return {"schema_version": SCHEMA_VERSION, "rows": [row]}

    assert compare({"rows": [slow_fast]}, file(fast), 0.2)  # the fast path's regression is caught
    assert not compare({"rows": [slow_fast]}, file(ref), 0.2)  # not held against autograd's row
    old = {k: v for k, v in fast.items() if k != "gradient"}
    assert compare({"rows": [slow_fast]}, file(old), 0.2)
    assert not compare({"rows": [dict(ref, bound_share=ref["bound_share"] / 2)]}, file(old), 0.2)


def test_a_baseline_with_nothing_to_compare_fails_the_gate(tmp_path):
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"rows": [{"algorithm": "a3c", "env": "Pong", "threads": 2, "train_over_bound": 0.9}]}))
    res = CliRunner().invoke(cli, ["bench", "--algo", "one_step_q", "--env", "CartPole-v1", "--threads", "1",
                                   "--seconds", "0.3", "--out", str(tmp_path / "cur.json"), "--compare", str(base)])
    assert res.exit_code == 1 and "nothing was gated" in res.output


def test_the_learning_measurement_reuses_the_activations_acting_recorded(monkeypatch):
    """The bench's learning pass (c) runs on segments whose acting activations a fast network kept, as a
    worker's does: for A3C only s_n is forwarded at learning time, one row a segment (the states are
    the bench's own copies; views of the collector's buffer were overwritten by later segments, and
    every row was then computed again)."""
    import harness.bench as bench
    from harness.engine import fast
    from harness.config import make_run_config

    calls = {"learn": 0, "rows": 0}
    inside = {"on": False}
    forward, gradient = fast.FastNetwork.forward, bench.compute_gradient

    def counting_forward(self, x):
        if inside["on"]:
            calls["rows"] += len(x)
        return forward(self, x)

    def counting_gradient(*args, **kwargs):
        inside["on"] = True
        calls["learn"] += 1
        try:
            return gradient(*args, **kwargs)
        finally:
            inside["on"] = False

    monkeypatch.setattr(fast.FastNetwork, "forward", counting_forward)
    monkeypatch.setattr(bench, "compute_gradient", counting_gradient)
    cfg = make_run_config(algorithm="a3c", env="MinAtar/Breakout-v1", threads=1, frames=1000,
                          env_modules=("minatar.gym:register_envs",))
    bench.measure_components(cfg, 0.2)
    assert calls["learn"] > 0 and calls["rows"] == calls["learn"], calls
