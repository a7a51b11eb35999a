"""The virtual and synchronous schedules (README "Schedules"): bookkeeping pinned by hand,
determinism, and the synchronous update as the mean of N gradients taken at one θ."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from harness.config import ConfigError, make_run_config
from harness.engine import train
from harness.engine.worker import compute_gradient, worker_seeds

FIXTURES = ("tests.fixtures_schedule",)
EXACT = {"step_ms": 1.0, "update_ms": 4.0, "jitter": 0.0, "seed": 0, "source": "test"}  # a segment of n steps: n + 4 ms


def _virtual(tmp_path, env, threads, frames, start_ms, run_seed=0):
    cfg = make_run_config(algorithm="one_step_q", env=env, threads=threads, seed=run_seed, frames=frames,
                          env_modules=FIXTURES, time_model=EXACT | {"start_ms": start_ms}, schedule="virtual",
                          eval={"episodes": 0})
    result = train(cfg, tmp_path)
    assert result.state == "done", result.error
    episodes = pd.read_csv(tmp_path / "episodes.csv")
    status = json.loads((tmp_path / "status.json").read_text())
    return episodes, status


def _lags(status) -> dict[int, list]:
    return {w["worker"]: w for w in status["policy_lag"]["workers"]}


@pytest.mark.slow
def test_a_two_worker_virtual_schedule_computed_by_hand(tmp_path):
    """Worker 0's episodes last 5 steps (segments of 9 ms), worker 1's 1 step (5 ms); both start at 0.
    Updates land at: w1 5, w0 9, w1 10, w1 15, w0 18, w1 20, w1 25, w0 27, w1 30, w1 35, w0 36, when
    T reaches the budget of 27 frames (w0 adds 5 frames an update, w1 1). Lag = updates landed since the
    worker's last sync: w0 1, 2, 2, 2; w1 0, 1, 0, 1, 0, 1, 0."""
    seed = next(s for s in range(100) if worker_seeds(s, 0)[0] % 2 == 1 and worker_seeds(s, 1)[0] % 2 == 0)
    episodes, status = _virtual(tmp_path, "SeedLength-v0", 2, 27, [0.0, 0.0], run_seed=seed)
    assert episodes["worker"].tolist() == [1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0]
    assert episodes["frames"].tolist() == [1, 6, 7, 8, 13, 14, 15, 20, 21, 22, 27]
    assert episodes["wall_seconds"].tolist() == [0.005, 0.009, 0.010, 0.015, 0.018, 0.020, 0.025, 0.027, 0.030,
                                                 0.035, 0.036]
    lags = _lags(status)
    assert (lags[0]["updates"], lags[0]["mean"], lags[0]["max"]) == (4, 1.75, 2)  # 1, 2, 2, 2
    assert (lags[1]["updates"], lags[1]["mean"], lags[1]["max"]) == (7, round(3 / 7, 4), 1)  # 0, 1, 0, 1, 0, 1, 0
    assert status["policy_lag"]["histogram"] == [[0, 4], [1, 4], [2, 3]]
    assert status["virtual_seconds"] == 0.036 and status["schedule"] == "virtual"


@pytest.mark.slow
def test_a_three_worker_virtual_schedule_computed_by_hand(tmp_path):
    """Segments of 5 steps (9 ms) each; workers start at 0, 4 and 6 ms. Updates: w0 9, w1 13, w2 15,
    w0 18, w1 22, w2 24, w0 27 (T = 35, the budget). Lags: w0 0, 2, 2; w1 1, 2; w2 2, 2."""
    episodes, status = _virtual(tmp_path, "FiveSteps-v0", 3, 35, [0.0, 4.0, 6.0])
    assert episodes["worker"].tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert episodes["wall_seconds"].tolist() == [0.009, 0.013, 0.015, 0.018, 0.022, 0.024, 0.027]
    lags = _lags(status)
    assert [lags[w]["updates"] for w in range(3)] == [3, 2, 2]
    assert [lags[w]["max"] for w in range(3)] == [2, 2, 2] and lags[0]["median"] == 2
    assert status["policy_lag"]["histogram"] == [[0, 1], [1, 1], [2, 5]]


@pytest.mark.slow
def test_the_same_virtual_command_twice_gives_the_same_files(tmp_path):
    def run(out):
        cfg = make_run_config(algorithm="one_step_q", env="CartPole-v1", threads=4, seed=5, frames=12_000,
                              schedule="virtual", eval={"episodes": 2})
        assert train(cfg, out).state == "done"
        return (out / "episodes.csv").read_bytes(), (out / "evals.csv").read_bytes()

    first, second = run(tmp_path / "a"), run(tmp_path / "b")
    assert first == second and first[0].count(b"\n") > 50
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    model = config["time_model"]  # fixed before the run, recorded with it
    assert config["schedule"] == "virtual" and model["step_ms"] > 0 and model["update_ms"] > 0
    assert model["source"].startswith("defaults for vector tasks, one_step_q")


def test_time_model_errors_are_one_line():
    with pytest.raises(ConfigError, match="applies to schedule virtual only"):
        make_run_config(algorithm="a3c", env="CartPole-v1", time_model=EXACT)
    with pytest.raises(ConfigError, match="lists 2 offsets for 3 workers"):
        make_run_config(algorithm="a3c", env="CartPole-v1", threads=3, schedule="virtual",
                        time_model=EXACT | {"start_ms": [0, 1]})
    with pytest.raises(ConfigError, match="step_ms must be a positive number"):
        make_run_config(algorithm="a3c", env="CartPole-v1", schedule="virtual", time_model=EXACT | {"step_ms": 0})
    with pytest.raises(ConfigError, match="schedule must be one of hogwild, virtual, sync"):
        make_run_config(algorithm="a3c", env="CartPole-v1", schedule="lockstep")



def test_a_time_model_from_a_bench_record_takes_the_fast_path_row(tmp_path):
    """``--time-model bench.json`` describes the engine's default path: a record written with ``bench
    --reference`` also holds autograd rows, which must not be taken instead. By hand from
    docs/bench/fast-path-minatar.json's fast A3C row: step 1000 x 1 frame / 15871.4 act frames/s = 0.0630 ms;
    update 0.016 sync + 0.5 learn + 0.13 shared update = 0.646 ms (the autograd row gives 0.116 and 1.242)."""
    from pathlib import Path

    from harness.timemodel import from_bench

    data = json.loads((Path(__file__).resolve().parents[1] / "docs" / "bench" / "fast-path-minatar.json").read_text())
    data["rows"].reverse()  # the autograd rows first
    record = tmp_path / "fast-path-minatar.json"
    record.write_text(json.dumps(data))
    model = from_bench(record, "a3c", frames_per_step=1, run_seed=5)
    assert model["step_ms"] == pytest.approx(0.0630, abs=1e-4) and model["update_ms"] == pytest.approx(0.646)
    assert model["seed"] == 5 and "fast-path-minatar.json" in model["source"]
    # a run on the autograd path takes the autograd row: its own costs
    ref = from_bench(record, "a3c", frames_per_step=1, run_seed=5, gradient="autograd")
    assert ref["step_ms"] == pytest.approx(0.1161, abs=1e-4) and ref["update_ms"] == pytest.approx(1.242)
    cfg = make_run_config(algorithm="a3c", env="MinAtar/Breakout-v1", env_modules=("minatar.gym:register_envs",),
                          schedule="virtual", time_model=str(record), engine={"gradient": "autograd"})
    assert cfg.time_model["update_ms"] == pytest.approx(1.242)

def test_the_synchronous_gradient_is_the_mean_of_the_segments_gradients_at_one_theta():
    """Three segments taken at one θ: the combined update's gradient is the mean of the three
    gradients each segment gives alone (no clipping), computed by hand as such."""
    from algorithms.base import Segment
    from harness.engine.shared import attach_flat_grad
    from harness.plugins import load_algorithm

    algo_cls = load_algorithm("a3c")
    algo = algo_cls(algo_cls.Hyperparameters())
    from gymnasium import spaces

    torch.manual_seed(0)
    net = algo.build_network(spaces.Box(-1, 1, (4,), np.float32), 2)
    grad = attach_flat_grad(net)
    rng = np.random.default_rng(0)

    def segment(n, terminal):
        return Segment(obs=torch.tensor(rng.normal(size=(n, 4)), dtype=torch.float32),
                       actions=torch.tensor(rng.integers(0, 2, n)), rewards=torch.tensor(rng.normal(size=n), dtype=torch.float32),
                       next_obs=torch.tensor(rng.normal(size=(1, 4)), dtype=torch.float32), terminal=terminal)

    segs = [segment(5, False), segment(3, True), segment(5, False)]
    alone = []
    for seg in segs:
        compute_gradient(algo, net, None, seg, grad, 0.0, "test")
        alone.append(grad.clone())
    compute_gradient(algo, net, None, segs[0], grad, 0.0, "test", more=[(algo, s) for s in segs[1:]])
    torch.testing.assert_close(grad, sum(alone) / 3, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(alone[0], alone[1])  # three different gradients, not one thrice


@pytest.mark.slow
def test_a_synchronous_run_steps_every_environment_and_never_lags(tmp_path):
    """Three environments in lockstep on FiveSteps: every update combines three 5-step segments
    (15 frames), so 60 frames are four updates, each ending one episode in every environment."""
    cfg = make_run_config(algorithm="one_step_q", env="FiveSteps-v0", threads=3, seed=1, frames=60,
                          env_modules=FIXTURES, schedule="sync", eval={"episodes": 0})
    result = train(cfg, tmp_path)
    assert result.state == "done", result.error
    episodes = pd.read_csv(tmp_path / "episodes.csv")
    assert episodes["frames"].tolist() == [15] * 3 + [30] * 3 + [45] * 3 + [60] * 3
    assert episodes["worker"].tolist() == [0, 1, 2] * 4 and (episodes["length"] == 5).all()
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["policy_lag"]["histogram"] == [[0, 4]] and status["schedule"] == "sync"
    assert status["host"]["oversubscribed"] is False  # one process, whatever the number of environments
