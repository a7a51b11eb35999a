"""`harness bench`: output structure and the regression gate. No test asserts absolute speed."""

from __future__ import annotations

import json

import pandas as pd
from click.testing import CliRunner

from harness.bench import BenchRow, compare
from harness.cli import cli

ROW_KEYS = set(BenchRow.__dataclass_fields__)


def test_bench_cli_writes_json_and_csv(tmp_path):
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(cli, ["bench", "--algo", "a3c,one_step_q", "--env", "CartPole-v1",
                                   "--threads", "1", "--seconds", "0.5", "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["schema_version"] == 1 and data["env"] == "CartPole-v1"
    assert {"logical_cores", "physical_cores", "cpu_model"} <= set(data["host"])
    assert {"torch", "ale_py", "python"} <= set(data["versions"])
    assert [r["algorithm"] for r in data["rows"]] == ["a3c", "one_step_q"]
    for r in data["rows"]:
        assert set(r) == ROW_KEYS
        assert r["env_fps"] > r["act_fps"] > 0 and r["learn_ms"] > 0
        assert r["bound_fps"] < r["act_fps"]  # learning costs something
        assert r["train_fps"] > 0 and r["efficiency"] == 1.0  # 1 thread is its own reference
        assert r["train_over_bound"] > 0 and r["peak_worker_rss_mb"] > 0
    csv = pd.read_csv(out.with_suffix(".csv"))
    assert set(csv.columns) == ROW_KEYS and len(csv) == 2
    # the same file is a valid baseline: comparing a result with itself passes
    res2 = CliRunner().invoke(cli, ["bench", "--algo", "a3c", "--env", "CartPole-v1", "--threads", "1",
                                    "--seconds", "0.5", "--out", str(tmp_path / "b2.json"),
                                    "--compare", str(out), "--tolerance", "0.95", "--repeat", "3"])
    assert res2.exit_code == 0, res2.output
    assert json.loads((tmp_path / "b2.json").read_text())["repeat"] == 3


def _result(ratio, eff):
    return {"rows": [{"algorithm": "a3c", "env": "Pong", "threads": 2, "train_over_bound": ratio, "efficiency": eff}]}


def test_regression_gate_catches_a_planted_regression():
    base = _result(0.9, 0.95)
    assert compare(_result(0.88, 0.93), base, 0.2) == []  # noise within tolerance
    problems = compare(_result(0.5, 0.95), base, 0.2)  # training fell to half of the bound
    assert len(problems) == 1 and "train_over_bound" in problems[0]
    problems = compare(_result(0.9, 0.6), base, 0.2)
    assert len(problems) == 1 and "efficiency" in problems[0]


def test_regression_gate_exit_code(tmp_path):
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"rows": [{"algorithm": "a3c", "env": "CartPole-v1", "threads": 1,
                                          "train_over_bound": 50.0, "efficiency": 1.0}]}))
    res = CliRunner().invoke(cli, ["bench", "--algo", "a3c", "--env", "CartPole-v1", "--threads", "1",
                                   "--seconds", "0.3", "--out", str(tmp_path / "cur.json"), "--compare", str(base)])
    assert res.exit_code == 1
    assert "regression" in res.output and "train_over_bound" in res.output


def test_bench_bad_input_is_one_line_exit_2():
    res = CliRunner().invoke(cli, ["bench", "--algo", "nope"])
    assert res.exit_code == 2 and "unknown algorithm" in res.output
    res = CliRunner().invoke(cli, ["bench", "--threads", "0"])
    assert res.exit_code == 2
