"""The engine end to end: real environments, real worker processes, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from harness.config import make_run_config
from harness.engine import train
from harness.store import EPISODE_COLUMNS, EVAL_COLUMNS

pytestmark = pytest.mark.slow
ALGOS = ["one_step_q", "one_step_sarsa", "n_step_q", "a3c"]


@pytest.mark.parametrize("algo", ALGOS)
def test_atari_two_workers_write_the_run_files(tmp_path, algo):
    cfg = make_run_config(algorithm=algo, env="Pong", threads=2, seed=3, frames=40_000,
                          eval={"episodes": 1, "max_seconds": 5})
    result = train(cfg, tmp_path)
    assert result.state == "done", result.error
    assert result.frames >= 40_000
    config = json.loads((tmp_path / "config.json").read_text())
    assert {"algorithm", "env", "threads", "lr", "seed", "frames", "optimizer"} <= set(config)
    assert config["env_id"] == "ALE/Pong-v5" and config["threads"] == 2
    es = config["env_settings"]
    assert es["repeat_action_probability"] == 0.0 and es["frame_skip"] == 4 and es["noop_max"] == 30
    assert es["max_episode_frames"] == 108_000 and es["terminal_on_life_loss"] is False
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == "done" and status["frames_done"] >= 40_000
    assert status["frames_per_second"] > 0 and status["host"]["logical_cores"] >= 1
    assert {"python", "torch", "gymnasium", "ale_py", "harness"} <= set(status["versions"])
    assert status["hogwild"] is True
    phases = status["phases"]  # where the workers' time went, after each one's first 1,000 steps
    assert [w["worker"] for w in phases["workers"]] == [0, 1]
    for w in phases["workers"]:
        assert {"sync_ms", "act_ms", "learn_ms", "update_ms", "report_ms", "segments", "steps"} <= set(w)
        assert w["segments"] > 0 and w["segments"] <= w["steps"] <= 5 * w["segments"]  # t_max = 5
        assert min(w["act_ms"], w["learn_ms"], w["update_ms"]) > 0
        busy = sum(w[k] for k in ("sync_ms", "act_ms", "learn_ms", "update_ms", "report_ms")) * w["segments"] / 1e3
        assert busy < status["wall_seconds"]  # timed phases fit inside the run
    assert phases["segments"] == sum(w["segments"] for w in phases["workers"])
    assert min(w["act_ms"] for w in phases["workers"]) <= phases["act_ms"] <= max(w["act_ms"] for w in phases["workers"])
    episodes = pd.read_csv(tmp_path / "episodes.csv")
    assert tuple(episodes.columns) == EPISODE_COLUMNS
    assert len(episodes) >= 2 and set(episodes["worker"]) <= {0, 1}
    assert episodes["return"].between(-21, 21).all()  # raw Pong scores, not clipped sums
    assert (episodes["length"] > 0).all() and episodes["frames"].is_monotonic_increasing
    evals = pd.read_csv(tmp_path / "evals.csv")
    assert tuple(evals.columns) == EVAL_COLUMNS and len(evals) == 1
    assert evals["frames"].iloc[0] == status["frames_done"]


def test_unshared_control_trains_no_shared_model(tmp_path):
    """``hogwild=False`` (bench's --unshared-control): workers update private copies, so the shared θ
    the run saves is still the initial one; the same run with sharing moves it."""
    import torch

    from harness.plugins import load_algorithm

    def final_params(hogwild: bool, out):
        cfg = make_run_config(algorithm="a3c", env="CartPole-v1", threads=2, seed=5, frames=4_000,
                              eval={"episodes": 0})
        result = train(cfg, out, hogwild=hogwild)
        assert result.state == "done", result.error
        assert json.loads((out / "status.json").read_text())["hogwild"] is hogwild
        return torch.load(out / "checkpoint.pt", weights_only=False)["params"], cfg

    unshared, cfg = final_params(False, tmp_path / "unshared")
    shared, _ = final_params(True, tmp_path / "shared")
    algo_cls = load_algorithm("a3c")
    torch.manual_seed(cfg.run_seed)  # the supervisor builds the initial θ right after seeding
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    net = algo_cls(algo_cls.Hyperparameters(**cfg.hyperparameters)).build_network(env.observation_space, 2)
    initial = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    assert torch.equal(unshared, initial)
    assert not torch.allclose(shared, initial)


def test_episodes_are_written_in_the_order_of_frames(tmp_path):
    """Two workers finishing short episodes all the time: every row of episodes.csv carries the T
    of its end, and rows arrive in the order of T (workers send them under the counter's lock)."""
    cfg = make_run_config(algorithm="one_step_q", env="CartPole-v1", threads=2, seed=1, frames=60_000,
                          eval={"episodes": 0})
    result = train(cfg, tmp_path)
    assert result.state == "done", result.error
    episodes = pd.read_csv(tmp_path / "episodes.csv")
    assert len(episodes) > 1000 and set(episodes["worker"]) == {0, 1}
    assert episodes["frames"].is_monotonic_increasing
    status = json.loads((tmp_path / "status.json").read_text())
    # start-up (spawn, imports, env, net) is recorded so the report can count time from the workers' start
    assert 0 < status["startup_seconds"] <= episodes["wall_seconds"].iloc[0]


def test_worker_exception_fails_the_run_with_its_error(tmp_path):
    cfg = make_run_config(algorithm="tests.fixtures_algorithms:Raises", env="CartPole-v1", threads=2, frames=100_000)
    t = time.monotonic()
    result = train(cfg, tmp_path)
    assert time.monotonic() - t < 30
    assert result.state == "failed"
    assert "worker" in result.error and "planted failure in loss" in result.error
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == "failed" and "planted failure" in status["error"]


def test_non_finite_loss_is_diverged_not_a_crash(tmp_path):
    cfg = make_run_config(algorithm="tests.fixtures_algorithms:NaNLoss", env="CartPole-v1", threads=2, frames=100_000)
    result = train(cfg, tmp_path)
    assert result.state == "diverged"
    assert "non-finite loss" in result.error


def _start_cli(tmp_path: Path, frames: int = 50_000_000, start_method: str | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "harness.cli", "train", "--algo", "a3c", "--env", "CartPole-v1",
           "--threads", "2", "--frames", str(frames), "--out", str(tmp_path / "run")]
    env = dict(os.environ)
    env.pop("HARNESS_START_METHOD", None)
    if start_method:
        env["HARNESS_START_METHOD"] = start_method
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, env=env)


def _workers(proc: subprocess.Popen, n: int = 2, timeout: float = 60) -> list[psutil.Process]:
    """The run's worker processes (the supervisor's children but multiprocessing's helpers), once
    they exist and episodes are being logged."""
    episodes = Path(proc.args[-1]) / "episodes.csv"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = [c for c in psutil.Process(proc.pid).children()
                   if not any(h in " ".join(c.cmdline()) for h in ("resource_tracker", "forkserver"))]
        if len(workers) >= n and episodes.exists() and len(episodes.read_text().splitlines()) > 3:
            return workers
        time.sleep(0.2)
    raise AssertionError("workers did not start")


def _gone(procs, timeout=10.0) -> bool:
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return not alive


@pytest.mark.parametrize("start_method,signame", [(None, "SIGKILL"), ("spawn", "SIGKILL"), (None, "SIGTERM")])
def test_a_worker_killed_fails_the_run_within_seconds(tmp_path, start_method, signame):
    """Also SIGTERM: a forked worker must not keep the supervisor's SIGTERM handler (which only
    sets a flag), or terminating a stuck worker would not stop it."""
    proc = _start_cli(tmp_path, start_method=start_method)
    try:
        workers = _workers(proc)
        victim = workers[0]
        victim.send_signal(getattr(signal, signame))
        t = time.monotonic()
        rc = proc.wait(timeout=10)
        assert time.monotonic() - t < 10
        assert rc == 1
        status = json.loads((tmp_path / "run" / "status.json").read_text())
        assert status["state"] == "failed"
        assert status["start_method"] == (start_method or "fork")  # Linux, single-threaded CLI: fork
        assert "worker" in status["error"] and signame in status["error"]
        assert _gone(workers), "orphan worker left behind"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


_DIE_HOLDING_THE_LOCK = """
import os, signal, sys
from harness.config import make_run_config
from harness.engine import train, worker

real_send = worker.send

def send(shared, message):  # worker 0 dies right after its first update, holding T's lock
    if message[0] == "started" and message[1] == 0:
        shared.counter.get_lock().acquire()
        os.kill(os.getpid(), signal.SIGKILL)
    real_send(shared, message)

worker.send = send  # forked workers inherit the patch
cfg = make_run_config(algorithm="a3c", env="CartPole-v1", threads=2, seed=1, frames=50_000_000, eval={"episodes": 0})
result = train(cfg, sys.argv[1])
print(result.state, "|", result.error)
"""


def test_a_worker_killed_holding_the_frame_counter_lock_fails_the_run(tmp_path):
    """A worker killed (the OOM killer, a user's kill -9) while it holds the lock of the frame
    counter T, under which workers add their frames and send their episodes, must not hang the
    supervisor: reading T through that lock blocked it forever (seen in CI, where a SIGKILL landed
    inside the lock)."""
    script = tmp_path / "die_holding_the_lock.py"
    script.write_text(_DIE_HOLDING_THE_LOCK)
    env = dict(os.environ, HARNESS_START_METHOD="fork")
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "run")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, env=env)
    try:
        out, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("the supervisor hung after a worker died holding the frame counter's lock")
    assert proc.returncode == 0, err
    state, error = out.strip().splitlines()[-1].split(" | ")
    assert state == "failed" and "worker 0 died (killed by signal SIGKILL)" in error
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "failed" and status["frames_done"] > 0


def test_sigint_interrupts_cleanly(tmp_path):
    proc = _start_cli(tmp_path)
    try:
        workers = _workers(proc)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=15)
        assert rc == 130
        status = json.loads((tmp_path / "run" / "status.json").read_text())
        assert status["state"] == "interrupted"
        assert _gone(workers), "orphan worker left behind"
        episodes = pd.read_csv(tmp_path / "run" / "episodes.csv")  # readable after the interrupt
        assert len(episodes) > 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_supervisor_killed_takes_its_workers_with_it(tmp_path):
    proc = _start_cli(tmp_path)
    try:
        workers = _workers(proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert _gone(workers), "workers outlived a SIGKILLed supervisor"
        pd.read_csv(tmp_path / "run" / "episodes.csv")
        json.loads((tmp_path / "run" / "status.json").read_text())
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_workers_report_their_own_peak_memory(tmp_path, monkeypatch):
    """A run shorter than the supervisor's sampling interval, where every sample misses the workers
    (a busy CI machine: they exit between samples), still records each worker's peak memory: each
    worker reports its own ``getrusage`` peak as it ends."""
    import harness.engine.run as run_mod

    def supervisor_only(procs, memory):
        run_mod.__dict__["_real_sample"]([], memory)

    monkeypatch.setitem(run_mod.__dict__, "_real_sample", run_mod._sample_memory)
    monkeypatch.setattr(run_mod, "_sample_memory", supervisor_only)
    cfg = make_run_config(algorithm="a3c", env="CartPole-v1", threads=2, seed=2, frames=2_000, eval={"episodes": 0})
    result = train(cfg, tmp_path)
    assert result.state == "done", result.error
    memory = json.loads((tmp_path / "status.json").read_text())["memory"]
    assert 20 < memory["peak_worker_rss_mb"] < 4096  # MiB: a python process with torch, not KiB or bytes
    assert memory["peak_total_rss_mb"] > 0
