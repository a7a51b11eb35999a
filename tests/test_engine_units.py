"""The engine's pieces against the paper's equations: optimizers, schedules, shared memory."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from algorithms.base import Algorithm
from harness.engine.shared import (
    FlatOptimizer,
    OptimizerState,
    attach_flat_grad,
    clip_grad_norm_,
    flatten_into,
    linear_lr,
)
from harness.engine.worker import SegmentCollector, worker_seeds


def rmsprop_by_hand(theta, g, grad, lr, alpha=0.99, eps=0.1):
    g = [alpha * gi + (1 - alpha) * d * d for gi, d in zip(g, grad)]
    theta = [t - lr * d / math.sqrt(gi + eps) for t, d, gi in zip(theta, grad, g)]
    return theta, g


def test_shared_rmsprop_matches_paper_update():
    state = OptimizerState.allocate("shared_rmsprop", 2, threads=4)
    assert state.stats.shape == (1, 2)  # one g for all workers
    opt = FlatOptimizer(state, worker=3, alpha=0.99, eps=0.1, momentum=0.0)
    params = torch.tensor([0.5, -0.5])
    grad = torch.tensor([1.0, 2.0])
    opt.step(params, grad, lr=0.1)
    theta, g = rmsprop_by_hand([0.5, -0.5], [0.0, 0.0], [1.0, 2.0], 0.1)
    # g = 0.01·[1, 4];  θ = θ − 0.1·[1/√0.11, 2/√0.14]
    assert state.stats[0].tolist() == pytest.approx([0.01, 0.04])
    assert params.tolist() == pytest.approx(theta)
    assert theta[0] == pytest.approx(0.5 - 0.1 / math.sqrt(0.11))


def test_per_worker_rmsprop_and_momentum_keep_separate_statistics():
    state = OptimizerState.allocate("rmsprop", 1, threads=2)
    assert state.stats.shape == (2, 1)
    FlatOptimizer(state, 1, 0.99, 0.1, 0.0).step(torch.zeros(1), torch.tensor([2.0]), 0.1)
    assert state.stats[:, 0].tolist() == pytest.approx([0.0, 0.04])
    mstate = OptimizerState.allocate("momentum_sgd", 1, threads=2)
    p = torch.zeros(1)
    FlatOptimizer(mstate, 0, 0.99, 0.1, momentum=0.9).step(p, torch.tensor([2.0]), 0.5)
    # m = 0.9·0 + 0.1·2 = 0.2;  θ = 0 − 0.5·0.2
    assert mstate.stats[0].tolist() == pytest.approx([0.2])
    assert p.tolist() == pytest.approx([-0.1])


def _apply_one_step(params, stats, grad_value):
    opt = FlatOptimizer(OptimizerState("shared_rmsprop", stats), 0, 0.99, 0.1, 0.0)
    opt.step(params, torch.full_like(params, grad_value), 0.1)


def test_shared_statistics_are_shared_across_processes():
    params = torch.zeros(3).share_memory_()
    state = OptimizerState.allocate("shared_rmsprop", 3, threads=2)
    ctx = mp.get_context("spawn")
    for grad in (1.0, 3.0):  # two worker processes, one after the other
        p = ctx.Process(target=_apply_one_step, args=(params, state.stats, grad))
        p.start()
        p.join(60)
        assert p.exitcode == 0
    theta, g = [0.0], [0.0]
    for grad in (1.0, 3.0):
        theta, g = rmsprop_by_hand(theta, g, [grad], 0.1)
    # the second process saw the g the first one left: g = 0.99·0.01 + 0.01·9
    assert state.stats[0].tolist() == pytest.approx([g[0]] * 3)
    assert params.tolist() == pytest.approx([theta[0]] * 3)


def test_learning_rate_anneals_linearly_to_zero():
    assert linear_lr(1e-3, 0, 1000) == 1e-3
    assert linear_lr(1e-3, 250, 1000) == pytest.approx(7.5e-4)
    assert linear_lr(1e-3, 1000, 1000) == 0.0
    assert linear_lr(1e-3, 1200, 1000) == 0.0


def test_flat_parameters_and_gradients_are_views():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    before = [p.detach().clone() for p in net.parameters()]
    flat = flatten_into(net)
    grad = attach_flat_grad(net)
    assert flat.numel() == sum(p.numel() for p in net.parameters()) == 26
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    flat.zero_()
    assert all(float(p.detach().abs().sum()) == 0 for p in net.parameters())
    net(torch.ones(5, 3)).sum().backward()
    assert float(grad.abs().sum()) > 0  # autograd accumulated into the flat buffer
    assert grad.data_ptr() == net[0].weight.grad.data_ptr()


def test_global_norm_clipping():
    g = torch.tensor([30.0, 40.0])  # norm 50
    assert clip_grad_norm_(g, 40.0) == pytest.approx(50.0)
    assert float(torch.linalg.vector_norm(g)) == pytest.approx(40.0, rel=1e-5)
    h = torch.tensor([3.0, 4.0])
    clip_grad_norm_(h, 40.0)
    assert h.tolist() == [3.0, 4.0]


def test_worker_seeds_differ_per_worker_and_are_reproducible():
    assert worker_seeds(1, 0) == worker_seeds(1, 0)
    assert len({worker_seeds(1, i) for i in range(8)} | {worker_seeds(2, 0)}) == 9


class CountdownEnv:
    """States 0, 1, 2, …; reward = state; the episode ends (terminal) after `length` steps."""

    observation_space = None
    n_actions = 2

    def __init__(self, length, reward_scale=1.0):
        self.length, self.scale, self.t = length, reward_scale, 0

    def reset(self, seed=None):
        self.t = 0
        return np.array([0.0], dtype=np.float32)

    def step(self, a):
        self.t += 1
        obs = np.array([float(self.t)], dtype=np.float32)
        r = self.scale * self.t
        if self.t == self.length:
            return self.reset(), r, True, True, obs
        return obs, r, False, False, None


class FirstAction(Algorithm):
    name = "first_action"

    def act(self, out, frames, rng):
        return 0


class NextActionAlgo(FirstAction):
    needs_next_action = True
    calls = 0

    def act(self, out, frames, rng):
        NextActionAlgo.calls += 1
        return NextActionAlgo.calls % 2


def test_segment_ends_at_terminal_mid_segment_and_keeps_raw_return():
    env = CountdownEnv(length=3, reward_scale=2.0)
    col = SegmentCollector(env, FirstAction(), t_max=5, clip_rewards=True)
    net = nn.Linear(1, 2)
    seg, finished = col.collect(net, 0, np.random.default_rng(0))
    # 3 steps then terminal: the segment is cut, no bootstrap, next segment starts a new episode
    assert len(seg) == 3 and seg.terminal
    assert seg.obs[:, 0].tolist() == [0.0, 1.0, 2.0]
    assert seg.next_obs.tolist() == [[3.0]]  # the final state, not the reset state
    assert seg.rewards.tolist() == [1.0, 1.0, 1.0]  # clipped for learning (raw 2, 4, 6)
    assert finished == [(12.0, 3)]  # the raw score is what gets logged
    seg2, finished2 = col.collect(net, 0, np.random.default_rng(0))
    assert seg2.obs[0, 0].item() == 0.0 and finished2 == [(12.0, 3)] and len(seg2) == 3
    full, _ = SegmentCollector(CountdownEnv(length=100), FirstAction(), 5, False).collect(net, 0, None)
    assert len(full) == 5 and not full.terminal and full.rewards.tolist() == [1, 2, 3, 4, 5]


def test_sarsa_next_action_is_the_one_taken_next():
    col = SegmentCollector(CountdownEnv(length=100), NextActionAlgo(), t_max=2, clip_rewards=False)
    net = nn.Linear(1, 2)
    seg, _ = col.collect(net, 0, None)
    seg2, _ = col.collect(net, 0, None)
    assert seg.next_action is not None
    assert seg2.actions[0].item() == seg.next_action


def test_workers_are_forked_only_from_a_single_threaded_process(monkeypatch):
    import threading

    from harness.engine.run import start_method

    monkeypatch.delenv("HARNESS_START_METHOD", raising=False)
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    assert start_method() == "fork"  # Linux
    monkeypatch.setattr(threading, "active_count", lambda: 3)  # e.g. a Ray driver's threads
    assert start_method() == "spawn"
    monkeypatch.setenv("HARNESS_START_METHOD", "forkserver")
    assert start_method() == "forkserver"


def test_a_bad_start_method_is_one_line_and_touches_nothing(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "run"
    env = {**__import__("os").environ, "HARNESS_START_METHOD": "vfork"}
    res = subprocess.run([sys.executable, "-m", "harness.cli", "train", "--algo", "a3c", "--env", "CartPole-v1",
                          "--frames", "1000", "--out", str(out)], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert "HARNESS_START_METHOD='vfork'" in line and "fork" in line and "Traceback" not in res.stderr
    assert not (out / "status.json").exists() and not (out / "episodes.csv").exists()
