"""The floor of a Python-driven worker on CartPole (docs/BENCHMARKS.md, "second pass").

One-step Q-learning's work with the harness's compiled kernels called directly: t_max 5, θ' ← θ, the
batch-1 forward pass and ε-greedy choice (ε fixed at 0.5), θ⁻'s forward pass on the successors, the
loss, the backward pass, the gradient's norm and shared RMSProp, without the collector, segments,
algorithm objects, counters or timers. Prints the pace as a share of the environment's own, measured
the way ``harness bench`` measures it. Run from the repository root:

    python docs/bench/minimal_loop.py
"""

import math
import os
import sys
import time

sys.path.insert(0, os.getcwd())
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np, torch
torch.set_num_threads(1)
from harness.config import make_run_config
from harness.envs import make_env
from harness.engine import kernels as K
from algorithms.base import squared_error_gradient
cfg = make_run_config(algorithm="one_step_q", env="CartPole-v1", threads=1, frames=10000)
env = make_env(cfg.env_spec, cfg.env_settings)
rng = np.random.default_rng(0)
def layer(o, i): return (np.random.randn(o, i).astype(np.float32) * 0.1, np.zeros(o, np.float32))
P = [*layer(128, 4), *layer(128, 128), *layer(2, 128)]
theta = np.concatenate([p.ravel() for p in P]); shared = theta.copy(); tgt = theta.copy(); g = np.zeros_like(theta); grad = np.zeros_like(theta)
def views(buf):
    out, o = [], 0
    for p in P:
        out.append(buf[o:o + p.size].reshape(p.shape)); o += p.size
    return out
W, T, G = views(theta), views(tgt), views(grad)
# env pace
env.reset(seed=0); n=0; t=time.perf_counter()
while time.perf_counter()-t < 3:
    env.step(int(rng.integers(2))); n+=1
env_fps = n/(time.perf_counter()-t)
obs = env.reset(seed=0)
buf = np.zeros((6, 4), np.float32); frames = 0; eps = 0.5
t = time.perf_counter()
while frames < 100_000:
    theta[:] = shared
    acts, rews = [], []; term = False
    for i in range(5):
        buf[i] = obs
        q = K.mlp_forward(buf[i:i+1], *W)[2]
        u = rng.random()
        a = min(int(u / eps * 2), 1) if u < eps else int(q.argmax())
        obs, r, te, over, fin = env.step(a)
        acts.append(a); rews.append(r)
        if over:
            buf[i+1] = fin; term = te; break
    n = len(acts)
    if not over: buf[n] = obs
    x = buf[:n]
    h1, h2, q = K.mlp_forward(x, *W)
    qn = K.mlp_forward(buf[1:n+1], *T)[2].max(axis=1)
    if term: qn[-1] = 0
    y = np.array(rews, np.float32) + 0.99 * qn
    loss, dq = squared_error_gradient(q, np.array(acts), y)
    K.mlp_backward(x, h1, h2, dq, W[2], W[4], G[0], G[1], G[2], G[3], G[4], G[5])
    norm = math.sqrt(K.sum_of_squares(grad))
    K.rmsprop_step(shared, grad, g, 0.99, 0.1, 1e-4)
    frames += n
dt = time.perf_counter() - t
print(f"env {env_fps:,.0f}/s; minimal loop {frames/dt:,.0f}/s = {frames/dt/env_fps:.1%} of the env's pace")
