"""Sweep planning without training: dry run, packing, states on disk, locks, status."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from harness import store
from harness.cli import cli
from harness.suite import load_suite
from harness.sweep import plan
from harness.sweep.local import pick, start_order
from harness.sweep.lock import LockedError, SweepLock, sweep_running

SUITE = """\
name: plan-test
description: a tiny grid for planning tests (1,000 frames per run)
games: [CartPole-v1]
algorithms: [a3c, one_step_q]
threads: [1, 2]
learning_rates: [1.0e-3, 2.0e-3]
seeds: 2
frames: 1000
reference_scores: {CartPole-v1: 100}
"""


@pytest.fixture
def suite_file(tmp_path):
    f = tmp_path / "plan.yaml"
    f.write_text(SUITE)
    return f


def _fake_run(rec: plan.RunRecord, state: str, frames_done: int | None = None, **status) -> None:
    rec.dir.mkdir(parents=True, exist_ok=True)
    store.write_json_atomic(rec.dir / "config.json", rec.run.config.to_dict())
    store.write_json_atomic(rec.dir / "status.json", {
        "schema_version": 1, "state": state, "error": status.pop("error", None), "frames_done": frames_done or 0,
        "wall_seconds": 1.0, "frames_per_second": status.pop("fps", 1000.0),
        "host": {"oversubscribed": False}, **status})


def test_dry_run_prints_the_plan_and_runs_nothing(suite_file, tmp_path):
    res = CliRunner().invoke(cli, ["sweep", str(suite_file), "--dry-run", "--results-dir", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    out = res.output
    for fragment in ("algorithms", "threads", "learning_rates", "seeds", "total runs      16",
                     "total frames    16,000", "core-hours", "default frames/s per thread"):
        assert fragment in out, out
    assert not (tmp_path / "r").exists()


def test_dry_run_uses_measured_throughput(suite_file, tmp_path):
    s = load_suite(suite_file)
    recs = plan.records(s, tmp_path)
    _fake_run(recs[0], "done", 1000, fps=2000.0)  # a3c, 1 thread: 2000 frames/s per thread
    est = plan.estimate(plan.records(s, tmp_path), tmp_path)
    assert est.n_measured == 1 and est.sources == {"measured": 16}
    assert est.core_hours == pytest.approx(16 * 1000 / 2000 / 3600)
    assert est.core_hours_left == pytest.approx(15 * 1000 / 2000 / 3600)
    res = CliRunner().invoke(cli, ["sweep", str(suite_file), "--dry-run", "--results-dir", str(tmp_path)])
    assert "measured throughput of 1 finished run" in res.output and "1 done" in res.output


def test_states_on_disk_decide_what_runs(suite_file, tmp_path):
    s = load_suite(suite_file)
    recs = plan.records(s, tmp_path)
    states = ["done", "diverged", "failed", "interrupted", "running"]
    for rec, state in zip(recs, states):
        _fake_run(rec, state, 500)
    recs = plan.records(s, tmp_path)
    got = {r.state: plan.to_run(r) for r in recs[:5]}
    assert got == {"done": False, "diverged": False, "failed": False, "interrupted": True, "running": True}
    assert plan.to_run(recs[2], retry_failed=True)
    assert recs[5].state == "pending" and plan.to_run(recs[5])


def test_a_folder_with_another_config_is_never_overwritten(suite_file, tmp_path):
    s = load_suite(suite_file)
    rec = plan.records(s, tmp_path)[0]
    _fake_run(rec, "done", 1000)
    cfg = json.loads((rec.dir / "config.json").read_text())
    cfg["frames"] = 5000
    (rec.dir / "config.json").write_text(json.dumps(cfg))
    res = CliRunner().invoke(cli, ["sweep", str(suite_file), "--results-dir", str(tmp_path)])
    assert res.exit_code == 2
    assert "differs from the suite" in res.output and "frames: 5000 on disk, 1000 in the suite" in res.output
    assert json.loads((rec.dir / "config.json").read_text())["frames"] == 5000


def test_packing_never_oversubscribes():
    class R:
        def __init__(self, threads, i, schedule="hogwild"):
            self.threads, self.run_id = threads, f"r{i}"
            self.cores = threads if schedule == "hogwild" else 1  # as RunRecord.cores

    runs = [R(t, i) for i, t in enumerate([1, 2, 1, 4, 2, 1])]
    order = start_order(runs)
    assert [r.threads for r in order] == [4, 2, 2, 1, 1, 1]
    # 4 cores, nothing running: the 4-thread run fills the machine
    assert [(r.threads, c) for r, c in pick(order, 4, 4, 0)] == [(4, 4)]
    # 3 free cores: first fit, largest first
    assert [(r.threads, c) for r, c in pick(order[1:], 3, 4, 1)] == [(2, 2), (1, 1)]
    assert pick(order[1:], 0, 4, 2) == []
    assert [c for _, c in pick(order[1:], 4, 4, 0, max_parallel=1)] == [2]
    # a run bigger than the machine: alone, reserving every core, only once the machine is empty
    big = start_order([R(16, 9)] + runs)
    assert pick(big, 2, 4, 1) == []
    assert [(r.threads, c) for r, c in pick(big, 4, 4, 0)] == [(16, 4)]
    # a virtual or synchronous run of 16 actor-learners is one process: one core, beside the others
    virtual = start_order([R(16, 10, "virtual")] + runs)
    assert [(r.threads, c) for r, c in pick(virtual, 3, 4, 1)] == [(2, 2), (16, 1)]


def test_sweep_lock(tmp_path):
    with SweepLock(tmp_path, "local") as lock:
        assert lock.stale is None
        assert sweep_running(tmp_path)["pid"] == os.getpid()
        with pytest.raises(LockedError, match="another sweep"):
            SweepLock(tmp_path).acquire()
    assert sweep_running(tmp_path) is None
    # a lock file left by a dead process (SIGKILL): taken over, and noticed as stale
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    (tmp_path / ".sweep.lock").write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    with SweepLock(tmp_path) as lock:
        assert lock.stale and lock.stale["pid"] == int(dead.stdout)


def test_sweep_refuses_a_locked_results_dir(suite_file, tmp_path):
    s = load_suite(suite_file)
    with SweepLock(plan.suite_dir(tmp_path, s)):
        res = CliRunner().invoke(cli, ["sweep", str(suite_file), "--results-dir", str(tmp_path)])
    assert res.exit_code == 2 and "another sweep" in res.output


def test_status_from_disk(suite_file, tmp_path):
    s = load_suite(suite_file)
    recs = plan.records(s, tmp_path)
    _fake_run(recs[0], "done", 1000)
    _fake_run(recs[1], "failed", 200, error="worker 0 raised: boom")
    _fake_run(recs[2], "running", 300)  # no sweep holds the lock: it was cut off
    from harness.suite import write_suite_files

    write_suite_files(s, plan.suite_dir(tmp_path, s))
    for target in (str(suite_file), str(plan.suite_dir(tmp_path, s)), str(tmp_path)):
        res = CliRunner().invoke(cli, ["status", target, "--results-dir", str(tmp_path), "--all"])
        assert res.exit_code == 0, res.output
        assert "worker 0 raised: boom" in res.output and recs[0].run_id in res.output
        assert "interrupted" in res.output and "16" in res.output
    res = CliRunner().invoke(cli, ["status", str(tmp_path / "nothing")])
    assert res.exit_code == 2


def test_address_needs_ray_executor(suite_file):
    res = CliRunner().invoke(cli, ["sweep", str(suite_file), "--executor", "local", "--address", "x:1"])
    assert res.exit_code == 2 and "--executor ray" in res.output


def test_sweep_help_lists_the_options():
    res = CliRunner().invoke(cli, ["sweep", "--help"])
    for opt in ("--results-dir", "--dry-run", "--max-parallel", "--executor", "--address", "--retry-failed"):
        assert opt in res.output


def test_config_comparison_tolerates_new_settings_but_not_changed_ones(suite_file, tmp_path):
    s = load_suite(suite_file)
    rec = plan.records(s, tmp_path)[0]
    _fake_run(rec, "done", 1000)
    cfg = json.loads((rec.dir / "config.json").read_text())
    cfg["hyperparameters"].pop("gamma")  # written before that setting existed: same run
    (rec.dir / "config.json").write_text(json.dumps(cfg))
    assert plan.config_mismatch(rec.dir, rec.run) is None
    cfg["hyperparameters"]["t_max"] = 99
    (rec.dir / "config.json").write_text(json.dumps(cfg))
    assert plan.config_mismatch(rec.dir, rec.run).startswith("hyperparameters.t_max: 99 on disk")


def test_ray_file_shipping_helpers(tmp_path):
    from harness.sweep.ray_executor import _snapshot, apply_files

    node, driver = tmp_path / "node", tmp_path / "driver"
    node.mkdir(), driver.mkdir()
    (node / "checkpoint.pt").write_bytes(b"ckpt1")
    (node / "episodes.csv").write_text("frames\n1\n")
    (node / "evals.csv").write_text("x\n")
    (node / "unrelated.txt").write_text("not shipped")
    sent: dict = {}
    first = _snapshot(node, sent)
    assert set(first["files"]) == {"checkpoint.pt", "episodes.csv", "evals.csv"} and first["deleted"] == []
    assert list(first["files"])[0] == "checkpoint.pt"  # read before the episodes it must not run ahead of
    apply_files(driver, first)
    assert (driver / "episodes.csv").read_text() == "frames\n1\n"
    assert _snapshot(node, sent)["files"] == {}  # nothing changed, nothing shipped
    (node / "episodes.csv").write_text("frames\n1\n2\n")
    (node / "evals.csv").unlink()
    second = _snapshot(node, sent)
    assert set(second["files"]) == {"episodes.csv"} and second["deleted"] == ["evals.csv"]
    apply_files(driver, second)
    assert (driver / "episodes.csv").read_text().endswith("2\n") and not (driver / "evals.csv").exists()
    assert not list(driver.glob(".*.tmp"))


def test_ray_missing_is_a_one_line_error(monkeypatch, suite_file, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    res = CliRunner().invoke(cli, ["sweep", str(suite_file), "--executor", "ray", "--results-dir", str(tmp_path)])
    assert res.exit_code == 2, res.output
    assert "pip install 'async-rl-harness[ray]'" in res.output and "Traceback" not in res.output


def test_dry_run_default_throughput_follows_the_observation():
    """MinAtar's grids are not estimated at CartPole's pace: a default per kind, and measured runs
    of other non-Atari games are not pooled across kinds."""
    from harness.config import make_run_config

    minatar = make_run_config(algorithm="a3c", env="MinAtar/Breakout-v1", env_modules=("minatar.gym:register_envs",))
    cartpole = make_run_config(algorithm="a3c", env="CartPole-v1")
    assert plan.throughput_kind(minatar) == "image" and plan.throughput_kind(cartpole) == "vector"
    measured_cartpole = plan.Throughput({("a3c", "CartPole-v1"): 5000.0}, {"CartPole-v1": 5000.0}, {}, 1)
    assert measured_cartpole.per_thread("a3c", "MinAtar/Breakout-v1", "image") == (plan.DEFAULT_FPS_PER_THREAD["image"], "default")
    assert plan.DEFAULT_FPS_PER_THREAD["image"] < plan.DEFAULT_FPS_PER_THREAD["vector"]
    assert measured_cartpole.per_thread("n_step_q", "CartPole-v1", "vector") == (5000.0, "measured (other algorithms)")
