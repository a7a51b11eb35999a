"""The per-step fast path (harness.engine.fast) pinned to autograd: on real segments of each built-in
network (the MLP on CartPole, MinAtar's net, the Mnih 2013 net on Pong) and each built-in method,
the fast gradient equals autograd's gradient of the method's own ``loss`` — for segments that end
in a terminal state, at a time limit (no terminal state: bootstrap) and after t_max steps, with and
without clipping, from activations recorded while acting and computed afresh — and a fast and an
autograd run of one seed take the same actions and learn alike."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch

from algorithms.base import Segment
from harness.config import ConfigError, make_run_config
from harness.engine import train
from harness.engine.fast import FastNetwork, fast_learner
from harness.engine.shared import attach_flat_grad, flatten_into
from harness.engine.worker import SegmentCollector, compute_gradient
from harness.envs import make_env
from harness.plugins import load_algorithm

METHODS = ("one_step_q", "one_step_sarsa", "n_step_q", "a3c")
ENVS = {
    "CartPole-v1": dict(env_modules=()),
    "MinAtar/Breakout-v1": dict(env_modules=("minatar.gym:register_envs",)),
    "Pong": dict(env_modules=()),
}
RTOL = 1e-5  # the bound on the relative error of every fast gradient


def _learner(method: str, env_id: str):
    """An algorithm, its environment, a network with its flat gradient, a θ⁻ other than θ (methods
    with a target network), and float64 copies of both: autograd in float64 is the reference."""
    cfg = make_run_config(algorithm=method, env=env_id, frames=10_000, eval={"episodes": 0}, **ENVS[env_id])
    algo_cls = load_algorithm(method)
    algo = algo_cls(algo_cls.Hyperparameters(**cfg.hyperparameters))
    env = make_env(cfg.env_spec, cfg.env_settings)
    torch.manual_seed(1)
    net = algo.build_network(env.observation_space, env.n_actions)
    flatten_into(net)
    grad = attach_flat_grad(net)
    target_net = None
    if algo.uses_target_network:
        target_net = algo.build_network(env.observation_space, env.n_actions)
        flatten_into(target_net)
        target_net.requires_grad_(False)
    algo.init_worker(0, np.random.default_rng(0))
    net64 = copy.deepcopy(net).double()
    exact = (net64, attach_flat_grad(net64), None if target_net is None else copy.deepcopy(target_net).double())
    return cfg, algo, env, net, grad, target_net, exact


def _exact(algo, exact, seg, clip, more=None) -> torch.Tensor:
    """Autograd's gradient of the method's loss, in float64."""
    net64, grad64, target64 = exact
    compute_gradient(algo, net64, target64, seg, grad64, clip, "reference", more=more)
    return grad64.clone()


def _segments(algo, env, net, t_max: int, count: int, rng) -> list[Segment]:
    """``count`` real segments of the environment, acted by ``net``."""
    collector = SegmentCollector(env, algo, t_max, True, seed=0, rng=rng)
    return [collector.collect(net, 0, rng)[0] for _ in range(count)]


def _cut(seg: Segment, k: int, terminal: bool) -> Segment:
    """The first ``k`` steps of a real segment, ended in a terminal state (no bootstrap), or by a time
    limit (s_k is not terminal: bootstrap from it)."""
    return Segment(obs=seg.obs[:k].clone(), actions=seg.actions[:k].clone(), rewards=seg.rewards[:k].clone(),
                   next_obs=seg.obs[k : k + 1].clone(), terminal=terminal,
                   next_action=None if terminal else int(seg.actions[k]))


def _assert_same(fast: torch.Tensor, exact: torch.Tensor, what: str) -> None:
    norm = float(torch.linalg.vector_norm(exact))
    assert norm > 0, f"{what}: a zero gradient pins nothing"
    err = float(torch.linalg.vector_norm(fast.double() - exact)) / norm
    assert err <= RTOL, f"{what}: relative error {err:.2e} > {RTOL}"


@pytest.mark.parametrize("env_id", list(ENVS))
@pytest.mark.parametrize("method", METHODS)
def test_the_fast_gradient_is_autograds(method, env_id):
    cfg, algo, env, net, grad, target_net, exact = _learner(method, env_id)
    t_max = int(cfg.hyperparameters.get("t_max", 5))
    segs = _segments(algo, env, net, t_max, 4, np.random.default_rng(0))
    full = next(s for s in segs if len(s) == t_max)
    segs += [_cut(full, 3, terminal=False), _cut(full, 4, terminal=True)]
    fnet, ftarget = fast_learner(algo, net, target_net)
    assert isinstance(fnet, FastNetwork), f"{method} on {env_id} should take the fast path"
    for clip in (0.0, 1e-3):  # unclipped, and clipped (every one of these gradients is larger than 1e-3)
        for k, seg in enumerate(segs):
            where = f"{method} on {env_id}, segment {k} (n={len(seg)}, terminal={seg.terminal}), clip {clip}"
            grad.fill_(float("nan"))  # the fast path must write every element
            compute_gradient(algo, fnet, ftarget, seg, grad, clip, "fast")
            _assert_same(grad, _exact(algo, exact, seg, clip), where)
    # several segments at one θ (the synchronous schedule): the mean of their gradients
    more = [(algo, s) for s in segs[1:]]
    compute_gradient(algo, fnet, ftarget, segs[0], grad, 0.0, "fast", more=more)
    _assert_same(grad, _exact(algo, exact, segs[0], 0.0, more), f"{method} on {env_id}, {len(segs)} segments at one θ")
    env.close()


@pytest.mark.parametrize("env_id", ["CartPole-v1", "MinAtar/Breakout-v1"])
@pytest.mark.parametrize("method", METHODS)
def test_activations_recorded_while_acting_give_the_same_gradient(method, env_id):
    """The fast network acts (recording each step's activations), then the learning pass reuses them:
    the gradient is autograd's for the same segment; the actions are those the module takes (one
    random stream each, same seed)."""
    cfg, algo, env, net, grad, target_net, exact = _learner(method, env_id)
    t_max = int(cfg.hyperparameters.get("t_max", 5))
    fnet, ftarget = fast_learner(algo, net, target_net)
    env_ref = make_env(cfg.env_spec, cfg.env_settings)
    c_fast = SegmentCollector(env, algo, t_max, True, seed=0, rng=np.random.default_rng(0))
    algo_ref = type(algo)(algo.hp)
    algo_ref.init_worker(0, np.random.default_rng(0))
    c_ref = SegmentCollector(env_ref, algo_ref, t_max, True, seed=0, rng=np.random.default_rng(0))
    rng_fast, rng_ref = np.random.default_rng(5), np.random.default_rng(5)
    terminal = 0
    for k in range(30):
        seg, _ = c_fast.collect(fnet, 0, rng_fast)
        seg_ref, _ = c_ref.collect(net, 0, rng_ref)
        if k == 0:
            first = Segment(obs=seg.obs.clone(), actions=seg.actions, rewards=seg.rewards, next_obs=seg.next_obs.clone(),
                            terminal=seg.terminal, next_action=seg.next_action)  # its own copy of the states
        assert seg.actions.tolist() == seg_ref.actions.tolist(), f"segment {k}: the fast net acted otherwise"
        # every state acted on in this segment is reused: all of s_0 .. s_{n-1}, but for SARSA's s_0
        # when its action was chosen at the end of the last segment (under the θ' before this sync)
        missing = [i for i in range(len(seg)) if i not in fnet.kept_rows()]
        assert missing in ([], [0]) if algo.needs_next_action else missing == [], f"segment {k}: rows {missing} recomputed"
        terminal += seg.terminal
        compute_gradient(algo, fnet, ftarget, seg, grad, 0.0, "fast")
        _assert_same(grad, _exact(algo, exact, seg, 0.0), f"{method} on {env_id}, acted segment {k}")
    assert terminal >= 1, "no episode ended: the terminal case went untested"
    # activations recorded for one segment are never taken for another's states
    compute_gradient(algo, fnet, ftarget, first, grad, 0.0, "fast")
    _assert_same(grad, _exact(algo, exact, first, 0.0), f"{method} on {env_id}, an earlier segment")
    env.close()
    env_ref.close()


@pytest.mark.parametrize("env_id", ["CartPole-v1", "MinAtar/Breakout-v1"])
@pytest.mark.parametrize("method", METHODS)
def test_act_chooses_alike_from_numpy_and_from_tensor_outputs(method, env_id):
    """The built-in methods take their network's outputs as numpy on the fast path (act_takes_numpy):
    from the same outputs and the same random draws they choose the same actions as from tensors,
    exploring (ε = 1 at frame 0) and greedy (far past the annealing), and act_eval too."""
    cfg, algo, env, net, grad, target_net, exact = _learner(method, env_id)
    assert algo.act_takes_numpy
    fnet, _ = fast_learner(algo, net, target_net)
    assert fnet.numpy_outputs
    obs_rng = np.random.default_rng(1)
    space = env.observation_space
    for k in range(60):
        x = np.asarray(space.sample() if k % 2 else obs_rng.standard_normal(space.shape), dtype=np.float32)[None]
        as_numpy, as_tensor = fnet(x), fnet(torch.from_numpy(x))
        assert type(as_numpy if method != "a3c" else as_numpy[0]) is np.ndarray
        assert type(as_tensor if method != "a3c" else as_tensor[0]) is torch.Tensor
        for frames in (0, 10**9):
            r1, r2 = np.random.default_rng(k), np.random.default_rng(k)
            assert algo.act(as_numpy, frames, r1) == algo.act(as_tensor, frames, r2), f"state {k}, frames {frames}"
            assert r1.random() == r2.random(), "both took the same number of draws"
        r1, r2 = np.random.default_rng(k), np.random.default_rng(k)
        assert algo.act_eval(as_numpy, r1) == algo.act_eval(as_tensor, r2)
    env.close()


def test_an_algorithm_that_does_not_take_numpy_gets_tensors_on_the_fast_path():
    """A plug-in that opts into the fast path but not into numpy outputs (act_takes_numpy False, the
    default) is handed tensors by the collector, as a module would give them."""
    cfg, algo, env, net, grad, target_net, exact = _learner("one_step_q", "CartPole-v1")
    seen = []

    class TensorsOnly(type(algo)):
        act_takes_numpy = False

        def act(self, out, frames, rng):
            seen.append(type(out))
            return super().act(out, frames, rng)

    plugin = TensorsOnly(algo.hp)
    plugin.init_worker(0, np.random.default_rng(0))
    fnet, ftarget = fast_learner(plugin, net, target_net)
    assert isinstance(fnet, FastNetwork) and not fnet.numpy_outputs
    rng = np.random.default_rng(0)
    collector = SegmentCollector(env, plugin, 5, True, seed=0, rng=rng)
    for _ in range(3):
        seg, _ = collector.collect(fnet, 0, rng)
        compute_gradient(plugin, fnet, ftarget, seg, grad, 0.0, "fast")
    assert seen and set(seen) == {torch.Tensor}
    env.close()


@pytest.mark.parametrize("method", ["one_step_sarsa", "a3c"])
def test_a_segments_arrays_are_its_tensors(method):
    """``Segment.numpy()``: the collector's arrays view its buffer (s_0 .. s_n, actions, rewards) and hold
    the values of the segment's tensors; a segment built by hand makes them from its tensors, and
    ``dataclasses.replace`` never carries over the arrays of the segment it copies."""
    import dataclasses

    cfg, algo, env, net, grad, target_net, exact = _learner(method, "MinAtar/Breakout-v1")
    fnet, _ = fast_learner(algo, net, target_net)
    rng = np.random.default_rng(0)
    collector = SegmentCollector(env, algo, int(cfg.hyperparameters.get("t_max", 5)), True, seed=0, rng=rng)
    ended = 0
    for _ in range(40):
        seg, _ = collector.collect(fnet, 0, rng)
        a = seg.numpy()
        assert np.array_equal(a.states, torch.cat([seg.obs, seg.next_obs]).numpy())
        assert np.array_equal(a.obs, seg.obs.numpy()) and np.shares_memory(a.obs, seg.obs.numpy())
        assert np.array_equal(a.actions, seg.actions.numpy()) and np.array_equal(a.rewards, seg.rewards.numpy())
        assert np.shares_memory(a.states, collector._buf)
        ended += seg.terminal
    assert ended, "no segment ended an episode: s_n at a game's end went untested"
    copy_ = dataclasses.replace(seg, obs=seg.obs.clone() + 1, next_obs=seg.next_obs.clone())
    assert copy_.arrays is None
    assert np.array_equal(copy_.numpy().states, torch.cat([copy_.obs, copy_.next_obs]).numpy())
    assert not np.shares_memory(copy_.numpy().states, collector._buf)
    env.close()


def test_the_bootstrap_row_is_backpropagated_when_its_gradient_is_not_zero():
    """The image networks skip s_n's row in the backward pass where its gradient is zero (A3C's
    bootstrap V(s_n)); a loss that does differentiate V(s_n) gets that row's gradient."""
    from harness.engine.fast import fast_gradient

    cfg, algo, env, net, grad, target_net, exact = _learner("a3c", "MinAtar/Breakout-v1")
    fnet, _ = fast_learner(algo, net, None)
    seg = next(s for s in _segments(algo, env, net, 5, 6, np.random.default_rng(0)) if not s.terminal)

    class BootstrapGradient(type(algo)):
        def loss_gradient(self, out, target, seg):
            loss, (d_logits, d_values) = super().loss_gradient(out, target, seg)
            d_values = d_values.copy()
            d_values[-1] = 1.0  # as if the loss differentiated V(s_n)
            return loss, (d_logits, d_values)

    plugin = BootstrapGradient(algo.hp)
    fast_gradient([(algo, seg)], fnet, None)
    skipped = grad.clone()
    fast_gradient([(plugin, seg)], fnet, None)
    with_row = grad.clone()
    out, cache = fnet.forward(seg.numpy().states)  # every row, s_n's included
    fnet.backward(cache, plugin.loss_gradient(out, None, seg)[1])
    assert torch.equal(with_row, grad)
    assert not torch.equal(with_row, skipped)
    env.close()


def test_the_fast_path_applies_to_the_built_in_networks_only():
    """Recurrent methods, other networks and algorithms without loss_gradient take autograd."""
    from gymnasium import spaces

    from algorithms.networks import QNetwork

    box = spaces.Box(-1, 1, (4,), np.float32)
    lstm = load_algorithm("a3c_lstm")()
    assert fast_learner(lstm, lstm.build_network(box, 2), None) == (None, None)

    class Wider(QNetwork):  # a plug-in's own network, even a subclass of a built-in one
        pass

    class OwnLoss(type(load_algorithm("a3c")())):  # a plug-in that changes A3C's loss, not its gradient
        def loss(self, net, target_net, seg):
            return super().loss(net, target_net, seg)

    a3c = OwnLoss()
    net = a3c.build_network(box, 2)
    attach_flat_grad(net)
    assert fast_learner(a3c, net, None) == (None, None)

    q = load_algorithm("one_step_q")()
    net, target = Wider(box, 2), Wider(box, 2)
    attach_flat_grad(net)
    assert fast_learner(q, net, target) == (None, None)
    net, target = QNetwork(box, 2), QNetwork(box, 2)
    attach_flat_grad(net)
    assert fast_learner(q, net, target, enabled=False) == (None, None)
    assert isinstance(fast_learner(q, net, target)[0], FastNetwork)


def test_gradient_setting_is_checked():
    with pytest.raises(ConfigError, match="gradient must be one of fast, autograd"):
        make_run_config(algorithm="a3c", env="CartPole-v1", engine={"gradient": "numpy"})


def _run(tmp_path, method, gradient, seed=3, frames=6_000):
    cfg = make_run_config(algorithm=method, env="CartPole-v1", frames=frames, seed=seed, eval={"episodes": 0},
                          engine={"gradient": gradient})
    result = train(cfg, tmp_path)
    assert result.state == "done", result.error
    assert json.loads((tmp_path / "config.json").read_text())["engine"]["gradient"] == gradient
    return pd.read_csv(tmp_path / "episodes.csv")


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_a_fast_and_an_autograd_run_of_one_seed_act_alike(tmp_path, method):
    """One worker, one seed: the fast and the autograd run play the same first episodes (the same
    actions from the same random draws) and, where they part after a near-tie in the last bits,
    keep close returns."""
    fast = _run(tmp_path / "fast", method, "fast")
    ref = _run(tmp_path / "ref", method, "autograd")
    k = min(len(fast), len(ref), 20)
    assert k >= 10
    same = int((fast["length"].values[:k] == ref["length"].values[:k]).cumprod().sum())
    assert same >= 10, f"{method}: only the first {same} episodes alike"
