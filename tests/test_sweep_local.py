"""Sweeps end to end on the local executor, in subprocesses: smoke suite, SIGKILL and resume,
Ctrl-C without orphans, a failing run that does not stop the others. Tiny CartPole/Pong runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from harness import store
from harness.suite import load_suite
from tests.real_faults import fill, remount, small_disk  # noqa: F401 - small_disk is a fixture

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"

pytestmark = pytest.mark.slow


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(FIXTURES), str(ROOT), env.get("PYTHONPATH")) if p)
    env.pop("COLUMNS", None)
    return env


def sweep_cmd(suite: Path, results: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "sweep", str(suite), "--results-dir", str(results), *extra]


def run_sweep(suite: Path, results: Path, *extra: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(sweep_cmd(suite, results, *extra), capture_output=True, text=True, timeout=timeout,
                          env=_env(), cwd=results.parent)


def write_suite(tmp_path: Path, name: str, body: str) -> Path:
    f = tmp_path / f"{name}.yaml"
    f.write_text(f"name: {name}\n" + body)
    return f


def planned_with_fixtures(tmp_path: Path, name: str, body: str):
    """Write a suite that names the fixture algorithms or environments and plan it (the fixtures on
    ``sys.path`` meanwhile, as the sweep's runners have them): the file and its planned runs."""
    sys.path.insert(0, str(FIXTURES))
    try:
        f = write_suite(tmp_path, name, body)
        return f, load_suite(f).runs()
    finally:
        sys.path.remove(str(FIXTURES))


def run_folders(suite_dir: Path) -> list[str]:
    return sorted(p.name for p in suite_dir.iterdir() if p.is_dir() and (p / "config.json").exists())


def status_of(run_dir: Path) -> dict:
    return store.read_json(run_dir / "status.json") or {}


def episodes(run_dir: Path) -> list[tuple]:
    lines = (run_dir / "episodes.csv").read_text().splitlines()
    assert lines[0] == "frames,wall_seconds,worker,return,length"
    return [tuple(ln.split(",")) for ln in lines[1:]]


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"sweep exited ({proc.returncode}) before {what}:\n{out}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def kill_tree(proc: subprocess.Popen) -> None:
    for p in descendants(proc.pid) + [psutil.Process(proc.pid)] if proc.poll() is None else descendants(proc.pid):
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


# ------------------------------------------------------------------------------------------------
def test_smoke_suite_end_to_end_local(tmp_path):
    results = tmp_path / "results"
    suite = load_suite(ROOT / "suites" / "smoke.yaml")
    proc = run_sweep(ROOT / "suites" / "smoke.yaml", results)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    base = results / "smoke"
    planned = sorted(r.run_id for r in suite.runs())
    assert run_folders(base) == planned
    for rid in planned:
        st = status_of(base / rid)
        assert st["state"] == "done", (rid, st)
        assert st["frames_done"] >= suite.frames
        cfg = json.loads((base / rid / "config.json").read_text())
        assert cfg["run_id"] == rid and cfg["suite"] == "smoke"
        assert len((base / rid / "evals.csv").read_text().splitlines()) >= 2
        assert not (base / rid / "progress.json").exists()
    data = json.loads((base / "suite.json").read_text())
    assert data["reference_scores"] == {"CartPole-v1": 50.0, "Pong": -20.0}
    assert (base / "suite.yaml").read_text() == (ROOT / "suites" / "smoke.yaml").read_text()
    assert "Traceback" not in proc.stdout + proc.stderr
    # the same command again: nothing to do, nothing touched
    before = {rid: (base / rid / "status.json").stat().st_mtime_ns for rid in planned}
    again = run_sweep(ROOT / "suites" / "smoke.yaml", results)
    assert again.returncode == 0 and "0 to run" in again.stdout
    assert {rid: (base / rid / "status.json").stat().st_mtime_ns for rid in planned} == before


KILL_SUITE = """\
description: SIGKILL/resume test, 3 CartPole runs of 60,000 frames (two run at once, one waits)
games: [CartPole-v1]
algorithms: [a3c]
threads: [1]
learning_rates: [1.0e-3, 2.0e-3, 3.0e-3]
seeds: [0]
frames: 60000
engine: {checkpoint_seconds: 0.2}
eval: {episodes: 1}
"""


def checkpoint_frames(run_dir: Path) -> int | None:
    import torch

    try:
        return int(torch.load(run_dir / "checkpoint.pt", weights_only=False)["frames"])
    except Exception:  # noqa: BLE001 - not there yet, or being replaced
        return None


def test_sigkill_mid_sweep_then_restart_gives_exactly_the_planned_runs(tmp_path):
    results = tmp_path / "results"
    f = write_suite(tmp_path, "killtest", KILL_SUITE)
    planned = sorted(r.run_id for r in load_suite(f).runs())
    base = results / "killtest"
    proc = subprocess.Popen(sweep_cmd(f, results), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_env(), cwd=tmp_path, start_new_session=True)
    try:
        def mid_run():  # a run in the first half of its budget, with a checkpoint past frame 0
            if not base.is_dir():
                return None
            for d in base.iterdir():
                frames = checkpoint_frames(d) if (d / "checkpoint.pt").exists() else None
                if frames and frames < 30000:
                    return d
            return None

        victim = wait_for(mid_run, 120, "a run with a checkpoint", proc)
        kids = descendants(proc.pid)
        assert kids, "the sweep has no child processes"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        # the runners notice their parent is gone and interrupt themselves: no process is left
        assert wait_gone(kids, 60) == []
    finally:
        kill_tree(proc)
    st = status_of(victim)
    assert st.get("state") == "interrupted", st
    ckpt_frames = checkpoint_frames(victim)
    assert 0 < ckpt_frames < 60000

    again = run_sweep(f, results)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resumed" in again.stdout
    assert run_folders(base) == planned  # exactly the planned runs, no duplicates
    for rid in planned:
        st = status_of(base / rid)
        assert st["state"] == "done" and st["frames_done"] >= 60000, (rid, st)
        rows = episodes(base / rid)
        assert len(rows) == len(set(rows)), f"{rid}: duplicate episode rows"
        frames = [int(r[0]) for r in rows]
        assert frames == sorted(frames) and len(frames) == len(set(frames)), f"{rid}: episodes out of order"
    st = status_of(victim)
    assert st["resumed_from_frames"] and st["resumed_from_frames"] >= ckpt_frames  # not restarted from 0
    frames = [int(r[0]) for r in episodes(victim)]
    assert frames[0] < ckpt_frames < frames[-1]  # one curve across the interruption


LONG_SUITE = """\
description: Ctrl-C test, two CartPole runs far too long to finish
games: [CartPole-v1]
algorithms: [a3c]
threads: [1]
learning_rates: [1.0e-3, 2.0e-3]
seeds: [0]
frames: 5000000
engine: {checkpoint_seconds: 1}
eval: {episodes: 1}
"""


def test_ctrl_c_interrupts_every_run_and_leaves_no_orphan(tmp_path):
    results = tmp_path / "results"
    f = write_suite(tmp_path, "ctrlc", LONG_SUITE)
    base = results / "ctrlc"
    proc = subprocess.Popen(sweep_cmd(f, results), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_env(), cwd=tmp_path, start_new_session=True)
    try:
        def both_training():
            return base.is_dir() and sum(1 for d in base.iterdir()
                                         if (store.read_json(d / "progress.json") or {}).get("frames", 0) >= 1000) == 2

        wait_for(both_training, 120, "two runs training", proc)
        kids = descendants(proc.pid)
        assert len(kids) >= 4  # two runners and their workers
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the foreground group
        out, _ = proc.communicate(timeout=90)
        assert proc.returncode == 130, out
        assert wait_gone(kids, 10) == [], "orphan processes left"
    finally:
        kill_tree(proc)
    for d in base.iterdir():
        if d.is_dir():
            st = status_of(d)
            assert st["state"] == "interrupted" and st["frames_done"] > 0, st
            assert (d / "checkpoint.pt").exists()
    assert "Interrupted runs (2)" in out


FAIL_SUITE = """\
description: a failing algorithm next to a good one (3,000 frames each)
games: [CartPole-v1]
algorithms: ["sweep_fixture_algos:Exploding", a3c]
threads: [2]
learning_rates: [1.0e-3]
seeds: [0]
frames: 3000
eval: {episodes: 1}
"""


def test_a_failing_run_does_not_stop_the_others(tmp_path):
    f, runs = planned_with_fixtures(tmp_path, "failing", FAIL_SUITE)
    planned = {r.config.algorithm: r.run_id for r in runs}
    results = tmp_path / "results"
    base = results / "failing"
    # --cores 1: the 2-thread runs do not fit, so each runs alone, with a warning
    proc = run_sweep(f, results, "--cores", "1")
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "running it alone" in out
    bad, good = base / planned["sweep_fixture_algos:Exploding"], base / planned["a3c"]
    assert status_of(good)["state"] == "done"
    st = status_of(bad)
    assert st["state"] == "failed" and "exploding fixture" in st["error"] and "Traceback" in st["traceback"]
    assert "Failed runs (1)" in out and "exploding fixture" in out
    assert "Traceback" not in out
    # failed runs stay failed unless asked
    ended = st["ended_at"]
    proc = run_sweep(f, results, "--cores", "1")
    assert proc.returncode == 1 and "0 to run" in proc.stdout and "--retry-failed" in proc.stdout
    assert status_of(bad)["ended_at"] == ended
    proc = run_sweep(f, results, "--cores", "1", "--retry-failed")
    assert proc.returncode == 1 and "1 to run" in proc.stdout
    assert (bad / "runner.log").read_text().count("RuntimeError: exploding fixture") == 2
    assert status_of(good)["state"] == "done"


FULL_DISK_SUITE = """\
description: two CartPole runs on a disk too small for their checkpoints (about 280 KB each; 3,000 frames)
games: [CartPole-v1]
algorithms: [a3c]
threads: [1]
learning_rates: [1.0e-3, 2.0e-3]
seeds: [0]
frames: 3000
eval: {episodes: 1}
"""


def test_a_full_disk_fails_its_runs_with_one_line_and_the_sweep_reports_them(tmp_path, small_disk):
    disk = small_disk("200k")
    f = write_suite(tmp_path, "fulldisk", FULL_DISK_SUITE)
    results = disk / "results"
    planned = sorted(r.run_id for r in load_suite(f).runs())
    proc = run_sweep(f, results, "--cores", "1")  # one run at a time: each meets the full disk alone
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Traceback" not in out
    base = results / "fulldisk"
    for rid in planned:
        st = status_of(base / rid)
        assert st["state"] == "failed", (rid, st)
        assert f"{base / rid / 'checkpoint.pt'}: No space left on device" in st["error"], st["error"]
        assert "(free disk space)" in st["error"] and "traceback" not in st
        assert st["frames_done"] >= 3000
        assert not list((base / rid).glob("*.tmp")) and not list((base / rid).glob(".*.tmp"))
        assert f"{rid}: {st['error']}" in " ".join(out.split())  # the sweep's summary (rich may wrap it)
    assert "Failed runs (2)" in out and "--retry-failed" in out
    # free disk space, then what the summary says: both runs train again and finish
    remount(disk, "size=8m")
    again = run_sweep(f, results, "--cores", "1", "--retry-failed")
    assert again.returncode == 0, again.stdout + again.stderr
    assert all(status_of(base / rid)["state"] == "done" for rid in planned)


DISK_FILLER_SUITE = """\
description: a run whose first update fills the disk under its folder (sweep_fixture_algos:DiskFiller)
games: [CartPole-v1]
algorithms: ["sweep_fixture_algos:DiskFiller"]
threads: [1]
learning_rates: [1.0e-3]
seeds: [0]
frames: 1000000
engine: {checkpoint_seconds: 0}
eval: {episodes: 1}
"""


def test_a_disk_that_fills_up_mid_run_fails_that_run_with_one_line(tmp_path, small_disk):
    """The disk fills in the middle of a run (its first update writes a filler file): episodes.csv meets
    ENOSPC; the run's status.json is still written, in the space the engine held back for it."""
    disk = small_disk("1m")
    f, runs = planned_with_fixtures(tmp_path, "filler", DISK_FILLER_SUITE)
    (rid,) = [r.run_id for r in runs]
    results = disk / "results"
    env = _env()
    env["HARNESS_TEST_FILL_DISK"] = str(disk)
    proc = subprocess.run(sweep_cmd(f, results), capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Traceback" not in out and "Failed runs (1)" in out
    run_dir = results / "filler" / rid
    st = status_of(run_dir)
    assert st["state"] == "failed" and "traceback" not in st, st
    assert st["error"].startswith(f"{run_dir / 'episodes.csv'}: No space left on device while writing the run's files "
                                  f"(free disk space): rerun the same command")
    assert st["frames_done"] > 0  # the frames it trained
    assert f"{rid}: {st['error']}" in " ".join(out.split())


def test_a_run_whose_outcome_the_disk_cannot_hold_is_still_reported_failed(tmp_path, small_disk):
    """A run process that ended without a final status.json, on a disk with no room left for one: the
    sweep keeps the failure itself (summary, exit code) and says that status.json could not be written."""
    from harness.sweep import plan
    from harness.sweep.display import problems_lines
    from harness.sweep.local import prepare, settle

    disk = small_disk("64k")
    (run,) = load_suite(write_suite(tmp_path, "unrecorded", FULL_DISK_SUITE.replace("1.0e-3, 2.0e-3", "1.0e-3"))).runs()
    rec = plan.RunRecord(run, disk / run.run_id)
    prepare(rec)
    store.write_json_atomic(rec.dir / "status.json", {"schema_version": 1, "state": "running", "frames_done": 0})
    (rec.dir / plan.RUNNER_LOG).write_text("[runner 1] failed: 5,000 frames - episodes.csv: No space left on device\n")
    fill(disk)
    settle(rec, 1, stopping=False)
    assert rec.state == "failed" and rec.unrecorded
    assert rec.error.startswith("runner exited with code 1; last output: [runner 1] failed: 5,000 frames")
    assert rec.error.endswith(f"{rec.dir / 'status.json'} could not be written (No space left on device)")
    assert plan.read_record(rec).state == "failed"  # the sweep's later refreshes keep what it knows
    assert any(rec.run_id in str(line) for line in problems_lines([rec]))
    assert status_of(rec.dir)["state"] == "running"  # the folder could not be told


FAULT_ENV_SUITE = """\
description: environments that cannot be built inside a run, beside one that can (3,000 frames each)
games: [CartPole-v1, WorkerOnly-v0, RunnerOnly-v0]
algorithms: [a3c]
threads: [1]
learning_rates: [1.0e-3]
seeds: [0]
frames: 3000
eval: {episodes: 1}
env_modules: [fault_envs]
"""


def test_runs_whose_environment_cannot_be_built_fail_and_the_others_finish(tmp_path):
    f, runs = planned_with_fixtures(tmp_path, "faultenvs", FAULT_ENV_SUITE)
    planned = {r.config.env: r.run_id for r in runs}
    results = tmp_path / "results"
    proc = run_sweep(f, results)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Traceback" not in out
    base = results / "faultenvs"
    assert status_of(base / planned["CartPole-v1"])["state"] == "done"
    worker = status_of(base / planned["WorkerOnly-v0"])  # builds in the run's process, not in its workers
    assert worker["state"] == "failed"
    assert "worker 0 raised" in worker["error"] and "environment 'WorkerOnly-v0' cannot be built" in worker["error"]
    runner = status_of(base / planned["RunnerOnly-v0"])  # does not build in the run's process at all
    assert runner["state"] == "failed" and "traceback" not in runner
    assert runner["error"].startswith("environment 'RunnerOnly-v0' cannot be built: DependencyNotInstalled: ")
    assert "pip install fake-sim" in runner["error"]
    assert "Failed runs (2)" in out


def test_a_suite_with_an_environment_that_cannot_be_built_is_refused_before_anything_runs(tmp_path):
    f = write_suite(tmp_path, "missingenv", FAULT_ENV_SUITE.replace("WorkerOnly-v0, RunnerOnly-v0", "Missing-v0"))
    results = tmp_path / "results"
    proc = run_sweep(f, results)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert line.startswith("harness: error: ") and "Missing-v0" in line
    assert "cannot be built" in line and "No module named 'no_such_module_xyz'" in line and "install" in line
    assert not (results / "missingenv").exists()


DEMO_LIKE = """\
description: a two-run stand-in for the demo suite (3,000 frames each)
games: [CartPole-v1]
algorithms: [a3c]
threads: [1, 2]
learning_rates: [1.0e-3]
seeds: [0]
frames: 3000
eval: {episodes: 1}
"""


def test_demo_command_runs_the_suite_then_the_report(tmp_path):
    pytest.importorskip("harness.report")
    f = write_suite(tmp_path, "demo-like", DEMO_LIKE)
    results = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "demo", "--suite", str(f), "--results-dir", str(results)],
                          capture_output=True, text=True, timeout=300, env=_env(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    index = results / "demo-like" / "report" / "index.html"
    assert index.exists()
    assert f"demo: open {index.resolve()}" in proc.stdout


MEMORY_LIKE = """\
description: A3C against A3C-LSTM on CartPole without velocities (3,000 frames each)
games: [CartPoleNoVelocity-v1]
algorithms: [a3c, a3c_lstm]
threads: [1]
learning_rates: [1.0e-3]
seeds: [0]
frames: 3000
eval: {episodes: 1}
"""


def test_a3c_lstm_sweeps_and_reports_like_any_other_algorithm(tmp_path):
    """``algorithms: [a3c, a3c_lstm]`` in a suite: both run, both are scored and tabled by the report."""
    import csv

    f = write_suite(tmp_path, "memory-like", MEMORY_LIKE)
    results = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "demo", "--suite", str(f), "--results-dir", str(results)],
                          capture_output=True, text=True, timeout=300, env=_env(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    with open(results / "memory-like" / "report" / "tables" / "runs.csv", newline="") as fh:
        rows = {r["algorithm"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"a3c", "a3c_lstm"}
    for algo, row in rows.items():
        assert row["state"] == "done" and row["score_source"] == "eval", (algo, row)
        assert float(row["final_score"]) > 0 and float(row["frames_reached"]) >= 3000


SCHEDULES = """\
games: [CartPole-v1]
algorithms: [a3c]
threads: [1, 2]
learning_rates: [1.0e-3]
seeds: [0]
frames: 3000
schedules: [hogwild, virtual, sync]
eval: {episodes: 1}
"""


def test_a_suite_with_every_schedule_sweeps_and_reports(tmp_path):
    """``schedules: [hogwild, virtual, sync]``: six runs, each its schedule; the report keeps the three
    apart (runs, speedup with data efficiency, Fig. 4), and the virtual runs are on their virtual clock."""
    import csv
    import json as json_

    f = write_suite(tmp_path, "schedules", SCHEDULES)
    results = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "demo", "--suite", str(f), "--results-dir", str(results)],
                          capture_output=True, text=True, timeout=300, env=_env(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    suite_dir = results / "schedules"
    for schedule in ("hogwild", "virtual", "sync"):
        config = json_.loads((suite_dir / f"a3c-CartPole-v1-t02-lr1e-03-s0-{schedule}" / "config.json").read_text())
        assert config["schedule"] == schedule and (config["time_model"] is not None) == (schedule == "virtual")
    status = json_.loads((suite_dir / "a3c-CartPole-v1-t02-lr1e-03-s0-virtual" / "status.json").read_text())
    assert status["virtual_seconds"] > 0 and status["state"] == "done"
    tables = suite_dir / "report" / "tables"
    with open(tables / "runs.csv", newline="") as fh:
        methods = sorted({r["algorithm"] for r in csv.DictReader(fh)})
    assert methods == ["a3c", "a3c/sync", "a3c/virtual"]
    with open(tables / "speedup.csv", newline="") as fh:
        speed = [r for r in csv.DictReader(fh) if r["game"] == "CartPole-v1"]
    assert sorted({r["algorithm"] for r in speed}) == methods and "data_efficiency" in speed[0]
    md = (tables / "speedup.md").read_text()
    assert "A3C (virtual)" in md and "A3C (sync)" in md
    assert (suite_dir / "report" / "figures" / "fig4_training_speed.png").exists()
