"""The eager-PyTorch floor of a one-step Q worker on a vector task: the fewest torch calls the work takes.

    python docs/bench/eager_floor.py --env CartPole-v1 [--seconds 5]

floor.py counts only the kernels' arithmetic and finds that one-step Q on CartPole could run at 39% of
the environment's pace if nothing but the matrix products cost time. This script asks the question an
implementation in eager PyTorch faces: the same work (the harness's Q-network, 4 -> 128 -> 128 -> 2, and
target network; t_max 5; the paper's one-step loss; one backward pass; gradient clipping; shared
RMSProp with ε inside the root; θ' ← θ), written by hand with the fewest torch calls there are:
parameters held in local variables, the observation written into a preallocated buffer through numpy
(no torch call), matrix products as ``addmm`` on pre-transposed weights, in-place ReLU, one batched
forward and one backward pass per segment, the optimizer as five in-place vector ops over one flat
buffer. No Python outside the loop's own bookkeeping. It then prints agent steps per second of:

- ``env``: the environment alone (random actions);
- ``floor``: that hand-written worker, environment included;
- ``harness``: the harness's own worker loop (SegmentCollector + OneStepQ.loss + the engine's update),

and each as a share of the environment's pace. When ``floor`` is below a target share, no eager-PyTorch
implementation of this work meets it: it would take a compiled worker loop, another framework for the
per-step path, or a cheaper environment call (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def timed(seconds: float, body) -> float:
    """Agent steps per second of ``body`` (which returns the steps it took), after a warm-up."""
    end = time.perf_counter() + min(1.0, seconds / 5)
    while time.perf_counter() < end:
        body()
    steps, start = 0, time.perf_counter()
    while True:
        steps += body()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return steps / elapsed


def setup(default_env: str) -> argparse.Namespace:
    """The command line (--env, --seconds, --rounds) and one torch thread, as a worker has."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--env", default=default_env)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    torch.set_num_threads(1)
    return ap.parse_args()


def main() -> None:
    args = setup("CartPole-v1")
    from harness.config import make_run_config
    from harness.engine.shared import FlatOptimizer, OptimizerState, attach_flat_grad, clip_grad_norm_, flatten_into
    from harness.engine.worker import SegmentCollector
    from harness.envs import make_env
    from harness.plugins import load_algorithm

    cfg = make_run_config(algorithm="one_step_q", env=args.env, threads=1, frames=1)
    env = make_env(cfg.env_spec, cfg.env_settings)
    cls = load_algorithm("one_step_q")
    algo = cls(cls.Hyperparameters(**cfg.hyperparameters))
    t_max, gamma = int(algo.hp.t_max), float(algo.hp.gamma)
    alpha, eps, clip = cfg.engine.rmsprop_alpha, cfg.engine.rmsprop_eps, cfg.engine.grad_clip
    rng = np.random.default_rng(0)

    # -- the environment alone -------------------------------------------------------------------
    env.reset(seed=0)
    n_actions = env.n_actions

    def env_only():
        for _ in range(t_max):
            env.step(int(rng.integers(n_actions)))
        return t_max

    # -- the hand-written worker -----------------------------------------------------------------
    net = algo.build_network(env.observation_space, n_actions)
    target = algo.build_network(env.observation_space, n_actions)
    theta = flatten_into(net).clone()  # the shared θ
    local = flatten_into(net)  # θ'
    grad = attach_flat_grad(net)
    flatten_into(target, theta.clone())
    g = torch.zeros_like(theta)  # RMSProp statistics
    step_buf = torch.empty_like(theta)
    (w1, b1), (w2, b2), (w3, b3) = ((m.weight, m.bias) for m in (net.torso.net[0], net.torso.net[2], net.q))
    (tw1, tb1), (tw2, tb2), (tw3, tb3) = ((m.weight.detach(), m.bias.detach())
                                          for m in (target.torso.net[0], target.torso.net[2], target.q))
    w1t, w2t, w3t = w1.t(), w2.t(), w3.t()  # views of θ', transposed once
    tw1t, tw2t, tw3t = tw1.t(), tw2.t(), tw3.t()
    obs_np = np.zeros((t_max + 1, *env.observation_space.shape), np.float32)
    obs_t = torch.from_numpy(obs_np)
    rows = [obs_t[i:i + 1] for i in range(t_max + 1)]
    actions = torch.zeros(t_max, 1, dtype=torch.int64)
    act_np = actions.numpy()
    rewards = torch.zeros(t_max)
    rew_np = rewards.numpy()
    not_terminal = torch.ones(t_max)
    nt_np = not_terminal.numpy()
    state = {"obs": env.reset(seed=0)}
    epsilon = 0.1

    def floor_segment():
        local.copy_(theta)  # θ' ← θ
        obs = state["obs"]
        n = 0
        over = term = False
        with torch.no_grad():
            while n < t_max:
                obs_np[n] = obs
                x = rows[n]
                q = torch.addmm(b3, torch.addmm(b2, torch.addmm(b1, x, w1t).relu_(), w2t).relu_(), w3t)
                a = int(rng.integers(n_actions)) if rng.random() < epsilon else int(q.argmax())
                obs, r, term, over, final = env.step(a)
                act_np[n, 0] = a
                rew_np[n] = max(-1.0, min(1.0, r))
                n += 1
                if over or term:
                    break
            obs_np[n] = final if over else obs
            nt_np[:] = 1.0
            if term:
                nt_np[n - 1] = 0.0
        state["obs"] = obs
        with torch.no_grad():
            s1 = obs_t[1:n + 1]
            qn = torch.addmm(tb3, torch.addmm(tb2, torch.addmm(tb1, s1, tw1t).relu_(), tw2t).relu_(), tw3t)
            y = torch.addcmul(rewards[:n], not_terminal[:n], qn.max(dim=1).values, value=gamma)
        s0 = obs_t[:n]
        q = torch.addmm(b3, torch.relu(torch.addmm(b2, torch.relu(torch.addmm(b1, s0, w1t)), w2t)), w3t)
        loss = (y - q.gather(1, actions[:n]).squeeze(1)).pow(2).sum()
        grad.zero_()
        loss.backward()
        clip_grad_norm_(grad, clip)
        g.mul_(alpha).addcmul_(grad, grad, value=1.0 - alpha)  # shared RMSProp, ε inside the root
        torch.add(g, eps, out=step_buf).rsqrt_().mul_(grad)
        theta.add_(step_buf, alpha=-1e-7)
        return n

    # -- the harness's worker loop ---------------------------------------------------------------
    hnet = algo.build_network(env.observation_space, n_actions)
    htarget = algo.build_network(env.observation_space, n_actions)
    htarget.requires_grad_(False)
    hlocal = flatten_into(hnet)
    hgrad = attach_flat_grad(hnet)
    hshared = hlocal.clone()
    opt = FlatOptimizer(OptimizerState.allocate(cfg.optimizer, hlocal.numel(), 1), 0, alpha, eps, cfg.engine.momentum)
    algo.init_worker(0, rng)
    collector = SegmentCollector(env, algo, t_max, True, seed=0, rng=rng)

    def harness_segment():
        hlocal.copy_(hshared)
        seg, _ = collector.collect(hnet, 10**9, rng)  # past the ε schedule: the final ε
        loss, _ = algo.loss(hnet, htarget, seg)
        float(loss.detach())
        hgrad.zero_()
        loss.backward()
        clip_grad_norm_(hgrad, clip)
        opt.step(hshared, hgrad, 1e-7)
        return len(seg)

    print(f"{args.env}, one-step Q, t_max {t_max}, one core; agent steps/s (share of the environment's pace)")
    for k in range(args.rounds):
        e = timed(args.seconds, env_only)
        f = timed(args.seconds, floor_segment)
        h = timed(args.seconds, harness_segment)
        print(f"round {k + 1}: env {e:,.0f}  floor {f:,.0f} ({f / e:.1%})  harness {h:,.0f} ({h / e:.1%})"
              f"  harness/floor {h / f:.2f}")
    env.close()


if __name__ == "__main__":
    main()
