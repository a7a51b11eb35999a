"""A real multi-node Ray cluster on this one host, loopback only: a head node with no CPUs
and worker nodes with one CPU each, every node bound to 127.0.0.1 with its own scratch folder
(``HARNESS_RAY_SCRATCH``), token authentication on (``RAY_AUTH_MODE=token``, a random token). The
sweeps are the CLI a user runs, ``harness sweep SUITE --address 127.0.0.1:PORT``, in subprocesses.

- Two runs at once land on two different nodes and come back whole to the driver's results folder.
- A node removed while its run is in flight leaves that run ``interrupted`` and resumable; the next
  sweep (on a new node) finishes it from its last shipped checkpoint with no episode lost or
  duplicated, and ``harness status`` names the node a running run is on.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
import torch

from harness import store

pytestmark = [pytest.mark.slow, pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                                    reason="ray is an optional extra: pip install '.[ray]'")]
ROOT = Path(__file__).resolve().parents[1]

SUITE = """\
name: {name}
description: the multi-node test's runs
games: [CartPole-v1]
algorithms: [a3c]
threads: [1]
learning_rates: [1.0e-3]
seeds: {seeds}
frames: {frames}
engine: {{checkpoint_seconds: 1}}
eval: {{episodes: 1}}
"""


class ClusterProcess:
    """tests/fixtures/ray_cluster.py in its own process group (Ray never enters the test runner)."""

    def __init__(self, env: dict):
        self.env = env
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fixtures" / "ray_cluster.py")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
                                     start_new_session=True)
        self.address = self._answer()["address"]

    def _answer(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"the cluster process ended (exit code {self.proc.poll()})")
        return json.loads(line)

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.stdin.close()  # end of input: the cluster shuts down
                self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        try:  # whatever is left of the cluster's processes (they share the group)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head node (no CPUs) bound to 127.0.0.1, token authentication on, and ``add_node(name) ->
    node id``: worker nodes with one CPU and their own scratch folder SCRATCH/scratch-NAME."""
    scratch = tmp_path_factory.mktemp("nodes")
    env = dict(os.environ)
    env.update({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # the nodes: this host's Ray address is 127.0.0.1
                "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": uuid.uuid4().hex})
    c = ClusterProcess(env)

    def add_node(name: str) -> str:
        return c.ask(f"add {name} {scratch / f'scratch-{name}'}")["node_id"]

    try:
        assert c.address.startswith("127.0.0.1:")
        yield c, add_node, scratch
    finally:
        c.close()


def _suite(tmp_path: Path, name: str, seeds: int, frames: int) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SUITE.format(name=name, seeds=seeds, frames=frames))
    return path


def _harness(c: ClusterProcess, *args: str, **env) -> subprocess.Popen:
    """The CLI as a user on this host runs it: the cluster's token (unless ``env`` says otherwise),
    and nothing else of Ray's set (the harness itself reaches a loopback address over loopback)."""
    environ = {k: v for k, v in c.env.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**environ, **env})


def test_runs_land_on_different_nodes_and_come_back_whole(cluster, tmp_path):
    c, add_node, scratch = cluster
    nodes = [add_node("a"), add_node("b")]
    suite = _suite(tmp_path, "multinode", seeds=2, frames=20_000)
    results = tmp_path / "results"
    proc = _harness(c, "sweep", str(suite), "--results-dir", str(results), "--address", c.address)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    started = [line for line in out.splitlines() if line.startswith("start ")]
    assert len(started) == 2, out
    # each run names its node: host, IP, and the start of the node id; two runs, two nodes
    ids = {n[:8] for n in nodes}
    used = {line.rsplit(" node ", 1)[1].strip() for line in started}
    assert used == ids, (used, ids, out)
    assert all("127.0.0.1" in line for line in started)
    for rid in ("a3c-CartPole-v1-t01-lr1e-03-s0", "a3c-CartPole-v1-t01-lr1e-03-s1"):
        d = results / "multinode" / rid
        st = store.read_json(d / "status.json")
        assert st["state"] == "done" and st["frames_done"] >= 20_000, st
        episodes = pd.read_csv(d / "episodes.csv")
        assert len(episodes) > 10 and episodes["frames"].is_monotonic_increasing
        assert len(pd.read_csv(d / "evals.csv")) == 1 and (d / "checkpoint.pt").stat().st_size > 0
        assert not (d / "progress.json").exists()
    # the runs worked in their own node's scratch folder (left empty) and nowhere else
    for name in ("a", "b"):
        folder = scratch / f"scratch-{name}"
        assert folder.is_dir() and not any(folder.iterdir())


def test_a_node_lost_mid_run_leaves_it_resumable(cluster, tmp_path):
    c, add_node, _ = cluster  # nodes a and b from the test before (or new ones when run alone)
    nodes = c.ask("nodes")["nodes"] or [add_node("first")]
    # long enough (tens of seconds, on the fast path) that the node is removed while the run is still on
    # it: at 60k frames a one-worker A3C run on CartPole could end before harness status had named its node
    frames = 400_000
    suite = _suite(tmp_path, "lost", seeds=1, frames=frames)
    results = tmp_path / "results"
    run_dir = results / "lost" / "a3c-CartPole-v1-t01-lr1e-03-s0"
    proc = _harness(c, "sweep", str(suite), "--results-dir", str(results), "--address", c.address)
    try:
        deadline = time.monotonic() + 120
        while not ((run_dir / "checkpoint.pt").exists() and (run_dir / "progress.json").exists()):
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint shipped back"
            time.sleep(0.2)
        status = subprocess.run([sys.executable, "-m", "harness.cli", "status", str(suite), "--results-dir", str(results)],
                                capture_output=True, text=True, timeout=60)
        on = [n for n in nodes if n[:8] in status.stdout]  # harness status names the run's node
        assert len(on) == 1, status.stdout
        node = on[0]
        c.ask(f"remove {node}")
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out + err
    st = store.read_json(run_dir / "status.json")
    assert st["state"] == "interrupted" and "Ray task lost" in st["error"], st
    ckpt_frames = int(torch.load(run_dir / "checkpoint.pt", weights_only=False)["frames"])
    assert 0 < ckpt_frames < frames
    before = pd.read_csv(run_dir / "episodes.csv")
    kept = before[before["frames"] <= ckpt_frames]
    assert len(kept) > 0

    if len(nodes) == 1:
        add_node("second")
    proc = _harness(c, "sweep", str(suite), "--results-dir", str(results), "--address", c.address)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    assert "1 resumed" in out, out
    st = store.read_json(run_dir / "status.json")
    assert st["state"] == "done" and st["frames_done"] >= frames and st["resumed_from_frames"] >= ckpt_frames, st
    after = pd.read_csv(run_dir / "episodes.csv")
    # nothing finished is lost (the episodes up to the checkpoint, unchanged) or duplicated
    pd.testing.assert_frame_equal(after.iloc[: len(kept)].reset_index(drop=True), kept.reset_index(drop=True))
    assert after["frames"].is_monotonic_increasing and not after.duplicated().any()
    assert after["frames"].iloc[-1] > ckpt_frames


def test_a_driver_without_the_token_gets_one_line(cluster, tmp_path):
    c, _, _ = cluster
    suite = _suite(tmp_path, "refused", seeds=1, frames=1_000)
    t = time.monotonic()
    proc = _harness(c, "sweep", str(suite), "--results-dir", str(tmp_path / "results"), "--address", c.address,
                    RAY_AUTH_TOKEN="not-the-token")
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 2, out + err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("harness: error:")]
    assert "refused this driver's authentication token" in line and "RAY_AUTH_TOKEN" in line, line
    assert "Traceback" not in err and time.monotonic() - t < 120
    assert not (tmp_path / "results" / "refused").exists() or not any((tmp_path / "results" / "refused").glob("*/status.json"))


def test_a_refused_token_is_recognised_through_ray_init_wrapping():
    """ray.init raises ConnectionError from AuthenticationError; the sweep turns it into one line
    naming the fixes (exit 2 through HarnessError)."""
    from harness.sweep.ray_executor import auth_help, is_auth_error, is_loopback

    import ray.exceptions

    try:
        try:
            raise ray.exceptions.AuthenticationError("RPC error: InvalidAuthToken: Authentication token is missing")
        except Exception as inner:
            raise ConnectionError("Failed to connect to Ray cluster at 127.0.0.1:6379") from inner
    except ConnectionError as exc:
        assert is_auth_error(exc)
    assert not is_auth_error(ConnectionError("Failed to connect to Ray cluster at 10.0.0.5:6379"))
    line = auth_help("at 10.0.0.5:6379", "ConnectionError: Failed to connect")
    assert "\n" not in line and "RAY_AUTH_TOKEN" in line and "~/.ray/auth_token" in line and "RAY_AUTH_MODE" in line
    assert is_loopback("127.0.0.1:6379") and is_loopback("localhost:1") and is_loopback("ray://127.0.0.1:10001")
    assert not is_loopback("10.0.0.5:6379") and not is_loopback("auto")
