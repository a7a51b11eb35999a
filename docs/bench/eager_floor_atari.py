"""The eager-PyTorch floor of an A3C worker on Atari: can any eager implementation run 1.6x faster?

    python docs/bench/eager_floor_atari.py --env Pong [--seconds 5] [--rounds 3]

The same question as eager_floor.py, for the issue's Atari target (A3C per worker at 1.6x the
harness's speed). One worker's work is fixed by the paper: the Mnih 2013 network (conv 16 8x8/4, conv
32 4x4/2, FC 256, softmax policy and linear value heads), an action sampled every step, and every
t_max = 5 steps one forward and backward pass over the segment's states, gradient clipping at norm 40,
one shared-RMSProp step over the 678k parameters, and θ' ← θ. This script writes that worker by hand
with the fewest torch calls there are (parameters as views into one flat buffer, the frames written
into a preallocated uint8 buffer through numpy, only the policy head at acting time, the returns over
Python floats, in-place ops, the optimizer as four vector ops) and times, interleaved in one process:

- ``env``: the environment alone (random actions, the harness's Atari wrapper);
- ``floor``: the hand-written worker, environment included;
- ``floor-cl``: the same with the convolutions in channels-last memory format (weights stored in
  that order inside the flat buffer; the input converted once per forward pass), the one
  kernel-level change on offer;
- ``harness``: the harness's own worker loop (SegmentCollector, A3C.loss, the engine's update).

If harness ÷ floor is above 1/1.6 = 0.63, no eager implementation with these kernels reaches 1.6x.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from eager_floor import setup, timed  # docs/bench/eager_floor.py, beside this script


def flat_views(shapes: list[tuple[int, ...]], flat: torch.Tensor, channels_last: list[bool]) -> list[torch.Tensor]:
    """Views of ``flat`` with the given shapes, 4-d ones in channels-last order where asked."""
    out, offset = [], 0
    for shape, cl in zip(shapes, channels_last):
        k = int(np.prod(shape))
        chunk = flat[offset:offset + k]
        if cl:
            o, i, h, w = shape
            out.append(chunk.as_strided(shape, (i * h * w, 1, w * i, i)))
        else:
            out.append(chunk.view(shape))
        offset += k
    return out


class HandWorker:
    """A3C's worker written out with the fewest calls (module docstring)."""

    def __init__(self, env, net, t_max: int, gamma: float, beta: float, c_v: float, alpha: float, eps: float,
                 clip: float, channels_last: bool, rng):
        self.env, self.t_max, self.gamma, self.beta, self.c_v = env, t_max, gamma, beta, c_v
        self.alpha, self.eps, self.clip, self.rng, self.cl = alpha, eps, clip, rng, channels_last
        params = [p.detach() for p in net.parameters()]
        shapes = [tuple(p.shape) for p in params]
        cl = [channels_last and p.dim() == 4 for p in params]
        n = sum(p.numel() for p in params)
        self.theta = torch.empty(n)  # the shared θ
        self.local = torch.empty(n)  # θ'
        self.grad = torch.zeros(n)
        for view, p in zip(flat_views(shapes, self.theta, cl), params):
            view.copy_(p)
        self.g = torch.zeros(n)
        self.tmp = torch.empty(n)
        self.params = [torch.nn.Parameter(v) for v in flat_views(shapes, self.local, cl)]
        for p, gv in zip(self.params, flat_views(shapes, self.grad, cl)):
            p.grad = gv
        self.n_actions = env.n_actions
        self.obs_np = np.zeros((t_max + 1, *env.observation_space.shape), np.uint8)
        self.obs_t = torch.from_numpy(self.obs_np)
        self.rows = [self.obs_t[i:i + 1] for i in range(t_max + 1)]
        self.obs = env.reset(seed=0)

    def image(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().mul_(1.0 / 255.0)
        return x.contiguous(memory_format=torch.channels_last) if self.cl else x

    def torso(self, x: torch.Tensor) -> torch.Tensor:
        w1, b1, w2, b2, w3, b3 = self.params[:6]
        h = F.conv2d(self.image(x), w1, b1, stride=4).relu_()
        h = F.conv2d(h, w2, b2, stride=2).relu_()
        return torch.addmm(b3, h.flatten(1), w3.t()).relu_()

    def segment(self) -> int:
        wp, bp, wv, bv = self.params[6:10]
        rng, env = self.rng, self.env
        self.local.copy_(self.theta)  # θ' ← θ
        obs, n, actions, rewards, terminal = self.obs, 0, [], [], False
        with torch.no_grad():
            while n < self.t_max:
                self.obs_np[n] = obs
                probs = torch.softmax(torch.addmm(bp, self.torso(self.rows[n]), wp.t())[0], 0).tolist()
                u, a = rng.random(), 0
                for a, p in enumerate(probs):
                    u -= p
                    if u < 0.0:
                        break
                obs, r, term, over, final = env.step(a)
                actions.append(a)
                rewards.append(max(-1.0, min(1.0, r)))
                n += 1
                if over or term:
                    terminal = term
                    break
            self.obs_np[n] = final if over else obs
        self.obs = obs
        h = self.torso(self.obs_t[:n + 1])
        logits = torch.addmm(bp, h[:n], wp.t())
        values = torch.addmm(bv, h, wv.t()).squeeze(1)
        R, returns = 0.0 if terminal else float(values[n].detach()), [0.0] * n
        for i in range(n - 1, -1, -1):
            R = rewards[i] + self.gamma * R
            returns[i] = R
        log_probs = F.log_softmax(logits, 1)
        entropy = (log_probs.exp() * log_probs).sum()  # −H summed over the segment
        advantage = torch.tensor(returns) - values[:n]
        log_pi_a = log_probs.gather(1, torch.tensor(actions)[:, None]).squeeze(1)
        loss = -(log_pi_a * advantage.detach()).sum() + self.beta * entropy + self.c_v * advantage.pow(2).sum()
        self.grad.zero_()
        loss.backward()
        norm = float(torch.linalg.vector_norm(self.grad))
        if norm > self.clip:
            self.grad.mul_(self.clip / (norm + 1e-6))
        self.g.mul_(self.alpha).addcmul_(self.grad, self.grad, value=1.0 - self.alpha)
        torch.add(self.g, self.eps, out=self.tmp).rsqrt_()
        self.theta.addcmul_(self.grad, self.tmp, value=-1e-7)
        return n


def main() -> None:
    args = setup("Pong")
    from harness.config import make_run_config
    from harness.engine.shared import FlatOptimizer, OptimizerState, attach_flat_grad, clip_grad_norm_, flatten_into
    from harness.engine.worker import SegmentCollector
    from harness.envs import make_env
    from harness.plugins import load_algorithm

    cfg = make_run_config(algorithm="a3c", env=args.env, threads=1, frames=1)
    cls = load_algorithm("a3c")
    algo = cls(cls.Hyperparameters(**cfg.hyperparameters))
    hp, eng = algo.hp, cfg.engine
    t_max, fps_step = int(hp.t_max), cfg.env_spec.frames_per_step
    rng = np.random.default_rng(0)
    envs = {k: make_env(cfg.env_spec, cfg.env_settings) for k in ("env", "floor", "floor-cl", "harness")}
    net = algo.build_network(envs["env"].observation_space, envs["env"].n_actions)
    n_actions = envs["env"].n_actions

    envs["env"].reset(seed=0)

    def env_only():
        for _ in range(t_max):
            envs["env"].step(int(rng.integers(n_actions)))
        return t_max

    floor = HandWorker(envs["floor"], net, t_max, hp.gamma, hp.entropy_beta, hp.value_loss_coef, eng.rmsprop_alpha,
                       eng.rmsprop_eps, eng.grad_clip, False, rng)
    floor_cl = HandWorker(envs["floor-cl"], net, t_max, hp.gamma, hp.entropy_beta, hp.value_loss_coef,
                          eng.rmsprop_alpha, eng.rmsprop_eps, eng.grad_clip, True, rng)

    hnet = algo.build_network(envs["harness"].observation_space, n_actions)
    hlocal = flatten_into(hnet)
    hgrad = attach_flat_grad(hnet)
    hshared = hlocal.clone()
    opt = FlatOptimizer(OptimizerState.allocate(cfg.optimizer, hlocal.numel(), 1), 0, eng.rmsprop_alpha, eng.rmsprop_eps,
                        eng.momentum)
    collector = SegmentCollector(envs["harness"], algo, t_max, True, seed=0, rng=rng)

    def harness_segment():
        hlocal.copy_(hshared)
        seg, _ = collector.collect(hnet, 0, rng)
        loss, _ = algo.loss(hnet, None, seg)
        float(loss.detach())
        hgrad.zero_()
        loss.backward()
        clip_grad_norm_(hgrad, eng.grad_clip)
        opt.step(hshared, hgrad, 1e-7)
        return len(seg)

    print(f"{args.env}, A3C, t_max {t_max}, one core; frames/s per worker (share of the environment's pace)")
    for k in range(args.rounds):
        r = {name: fps_step * timed(args.seconds, body) for name, body in
             (("env", env_only), ("floor", floor.segment), ("floor-cl", floor_cl.segment), ("harness", harness_segment))}
        print(f"round {k + 1}: env {r['env']:,.0f}  floor {r['floor']:,.0f} ({r['floor'] / r['env']:.1%})"
              f"  floor-cl {r['floor-cl']:,.0f}  harness {r['harness']:,.0f} ({r['harness'] / r['env']:.1%})"
              f"  harness/floor {r['harness'] / r['floor']:.2f}  harness/floor-cl {r['harness'] / r['floor-cl']:.2f}")
    for env in envs.values():
        env.close()


if __name__ == "__main__":
    main()
