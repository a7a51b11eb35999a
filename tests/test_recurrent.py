"""Recurrent algorithms (A3C-LSTM): the engine's bookkeeping of the network state, pinned by hand."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from algorithms.a3c_lstm import A3CLSTM, LSTMActorCritic
from harness.engine.worker import SegmentCollector


class Countdown:
    """A StepEnv whose episodes last ``length`` steps; observations are [step, episode]."""

    def __init__(self, length=7):
        self.length, self.t, self.ep = length, 0, 0
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.n_actions = 2

    def reset(self, seed=None):
        self.t = 0
        return np.array([0.0, self.ep], dtype=np.float32)

    def step(self, a):
        self.t += 1
        obs = np.array([self.t, self.ep], dtype=np.float32)
        if self.t >= self.length:
            self.ep += 1
            return self.reset(), 1.0, True, True, obs
        return obs, 1.0, False, False, None


class Recording(torch.nn.Module):
    """Wraps the LSTM net and records every acting call: (obs, state in, logits out)."""

    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, []

    def zero_state(self, batch=1):
        return self.net.zero_state(batch)

    def forward(self, x, state):
        (logits, v), new = self.net(x, state)
        self.calls.append((x.clone(), tuple(s.clone() for s in state), logits.clone()))
        return (logits, v), new


def _setup(length=7, t_max=5, seed=0):
    torch.manual_seed(seed)
    algo = A3CLSTM(A3CLSTM.Hyperparameters(t_max=t_max))
    env = Countdown(length)
    net = algo.build_network(env.observation_space, 2)
    return algo, env, net


def test_the_state_starts_at_zero_with_every_episode_and_is_carried_within_it():
    algo, env, net = _setup(length=7, t_max=5)
    rec = Recording(net)
    col = SegmentCollector(env, algo, 5, clip_rewards=False, rng=np.random.default_rng(0))
    rng = np.random.default_rng(1)
    segs = [col.collect(rec, 0, rng)[0] for _ in range(6)]  # episodes of 7 steps: segments of 5, 2, 5, 2, ...
    assert [len(s) for s in segs] == [5, 2, 5, 2, 5, 2]
    zero = net.zero_state(1)
    for x, state, _ in rec.calls:
        first_step = float(x[0, 0]) == 0.0
        assert all(torch.equal(s, z) for s, z in zip(state, zero)) == first_step  # zero exactly at episode starts
    # a segment that continues an episode starts from where the previous one left off
    assert all(torch.equal(a, b) for a, b in zip(segs[1].state, rec.calls[5][1]))
    assert not torch.equal(segs[1].state[0], zero[0])
    assert all(torch.equal(a, z) for a, z in zip(segs[2].state, zero))  # a new episode's segment: from zero


def test_the_learning_pass_re_runs_the_segment_from_its_stored_state():
    """The loss's unroll from seg.state reproduces the acting pass's policy outputs step by step."""
    algo, env, net = _setup(length=50, t_max=5)
    rec = Recording(net)
    col = SegmentCollector(env, algo, 5, clip_rewards=False, rng=np.random.default_rng(0))
    rng = np.random.default_rng(1)
    for k in range(3):
        start = len(rec.calls)
        seg, _ = col.collect(rec, 0, rng)
        logits, _ = net.unroll(torch.cat([seg.obs, seg.next_obs]), seg.state)
        acted = torch.cat([c[2] for c in rec.calls[start:]])
        assert torch.allclose(logits[:len(seg)], acted, atol=1e-6), k
    loss, _ = algo.loss(net, None, seg)
    loss.backward()
    assert net.lstm.weight_hh_l0.grad is not None and net.lstm.weight_hh_l0.grad.abs().sum() > 0  # BPTT reached the LSTM
    assert seg.state[0].grad is None and not seg.state[0].requires_grad  # nothing flows into the stored state


def test_no_state_crosses_workers():
    """Two workers' collectors on one network (as two processes share θ): each carries its own state."""
    algo, _, net = _setup()
    a = SegmentCollector(Countdown(9), algo, 5, clip_rewards=False, rng=np.random.default_rng(0))
    other = Countdown(9)
    other.ep = 5  # worker b sees other observations
    b = SegmentCollector(other, algo, 5, clip_rewards=False, rng=np.random.default_rng(1))
    rng = np.random.default_rng(2)
    a.collect(net, 0, rng)
    after_a = tuple(s.clone() for s in a.state)
    sb, _ = b.collect(net, 0, rng)  # worker b steps in between, from its own episode start
    assert all(torch.equal(s, z) for s, z in zip(sb.state, net.zero_state()))
    sa2, _ = a.collect(net, 0, rng)
    assert all(torch.equal(x, y) for x, y in zip(sa2.state, after_a))  # a continues from its own state, not b's
    assert not torch.equal(after_a[0], b.state[0])


def test_feed_forward_segments_have_no_state():
    from algorithms.a3c import A3C

    algo = A3C(A3C.Hyperparameters(t_max=5))
    env = Countdown(7)
    net = algo.build_network(env.observation_space, 2)
    seg, _ = SegmentCollector(env, algo, 5, clip_rewards=False).collect(net, 0, np.random.default_rng(0))
    assert seg.state is None


def test_the_networks_shapes():
    space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    net = LSTMActorCritic(space, 6)
    assert net.cells == 256 and net.lstm.input_size == 256  # 256 LSTM cells after the Mnih 2013 FC 256
    (logits, v), (h, c) = net(torch.zeros(1, 4, 84, 84, dtype=torch.uint8), net.zero_state())
    assert logits.shape == (1, 6) and v.shape == (1,) and h.shape == c.shape == (1, 256)


def test_cartpole_without_velocities_is_shipped_and_keeps_position_and_angle():
    from harness.config import make_run_config
    from harness.envs import make_env

    cfg = make_run_config(algorithm="a3c_lstm", env="CartPoleNoVelocity-v1", threads=1, frames=1000)
    env = make_env(cfg.env_spec, cfg.env_settings)
    full = gym.make("CartPole-v1")
    o = env.reset(seed=3)
    f, _ = full.reset(seed=3)
    assert env.observation_space.shape == (2,) and np.allclose(o, f[[0, 2]])
    for a in (0, 1, 1, 0):
        o, *_ = env.step(a)
        f, *_ = full.step(a)
        assert np.allclose(o, f[[0, 2]])
