"""The arithmetic floor of a worker's step: can any implementation reach a fraction of the env's pace?

    python docs/bench/floor.py --env MinAtar/Breakout-v1 --env-module minatar.gym:register_envs --algo a3c

The paper's method fixes the work of a worker's step: one forward pass of the network at batch 1 to
act, and every t_max steps one forward and backward pass over the segment and one optimizer step. This
script times that work on one core as the torch kernels alone report it (torch.profiler's self time
of the matrix products and convolutions, with every Python, dispatch and autograd-bookkeeping cost
left out), adds the environment's own step, and prints the highest frames/s per worker that any
implementation calling those kernels could reach, as a fraction of the environment's frames/s.
When that fraction is below a target, the target cannot be met by cutting overhead: only a smaller
network, a different update, or faster kernels would move it (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

KERNELS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::mkldnn_convolution", "aten::convolution_backward",
           "aten::_convolution", "aten::thnn_conv2d", "aten::_slow_conv2d_forward", "aten::_slow_conv2d_backward")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--env", default="CartPole-v1")
    ap.add_argument("--env-module", default=None)
    ap.add_argument("--algo", default="a3c")
    ap.add_argument("--iters", type=int, default=300)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from algorithms.base import Segment
    from harness.config import make_run_config
    from harness.envs import make_env
    from harness.plugins import load_algorithm

    cfg = make_run_config(algorithm=args.algo, env=args.env, threads=1, frames=1,
                          env_modules=[args.env_module] if args.env_module else [])
    env = make_env(cfg.env_spec, cfg.env_settings)
    cls = load_algorithm(cfg.algorithm)
    algo = cls(cls.Hyperparameters(**cfg.hyperparameters))
    net = algo.build_network(env.observation_space, env.n_actions)
    t_max = int(cfg.hyperparameters.get("t_max", 5))
    fps_step = cfg.env_spec.frames_per_step

    obs = env.reset(seed=0)
    rng = np.random.default_rng(0)
    n = 3000
    t = time.perf_counter()
    for _ in range(n):
        obs, *_ = env.step(int(rng.integers(env.n_actions)))
    env_s = (time.perf_counter() - t) / n

    o = torch.from_numpy(np.asarray(obs)).unsqueeze(0)
    batch = o.repeat(t_max + 1, *([1] * (o.dim() - 1)))
    seg = Segment(obs=batch[:t_max], actions=torch.zeros(t_max, dtype=torch.int64), rewards=torch.ones(t_max),
                  next_obs=batch[t_max:], terminal=False)
    params = list(net.parameters())

    def step_forward():
        with torch.no_grad():
            net(o)

    def segment_learn():
        for p in params:
            p.grad = None
        loss, _ = algo.loss(net, net, seg)
        loss.backward()

    def kernel_seconds(fn, iters):
        for _ in range(50):
            fn()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(iters):
                fn()
        return sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in KERNELS) / iters / 1e6

    fwd = kernel_seconds(step_forward, args.iters * t_max)
    learn = kernel_seconds(segment_learn, args.iters)
    per_step = env_s + fwd + learn / t_max  # seconds per environment step, of fps_step frames
    print(f"{args.env}, {args.algo} (t_max {t_max}), one core, {torch.__version__}")
    print(f"  environment step               {env_s * 1e6:9.1f} us  ({fps_step / env_s:,.0f} frames/s)")
    print(f"  acting forward kernels         {fwd * 1e6:9.1f} us per step")
    print(f"  segment fwd+bwd kernels        {learn * 1e6:9.1f} us per segment ({learn / t_max * 1e6:.1f} us per step)")
    print(f"  floor per step                 {per_step * 1e6:9.1f} us  ->  at most {fps_step / per_step:,.0f} frames/s per worker")
    print(f"  highest reachable share of the environment's pace: {env_s / per_step:.1%}")


if __name__ == "__main__":
    main()
