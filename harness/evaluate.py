"""Evaluation of a trained (or snapshotted) shared model, in the supervisor after training.

Evaluation never runs while workers train, so it cannot slow the timed part of a run. The
evaluation policy is the algorithm's ``act_eval`` (ε-greedy with ε = 0.05 for the value-based
methods, the stochastic policy for A3C); returns are raw game scores over whole episodes.
"""

from __future__ import annotations

import time

import numpy as np
import torch

#: the evaluation's stream of a run's seed sequence (workers use streams 0, 1, ...: worker_seeds)
EVAL_STREAM = 1_000_003


def eval_seeds(seed: int) -> tuple[int, int]:
    """(environment seed, numpy seed) of a run's evaluation, derived from the run seed like the
    workers' (``SeedSequence([seed, EVAL_STREAM])``): 32-bit, as some environments require
    (MinAtar seeds numpy's legacy RandomState), for run seeds of any size (a sweep's are 62-bit)."""
    a, b = np.random.SeedSequence([int(seed), EVAL_STREAM]).generate_state(2)
    return int(a), int(b)


def evaluate(algo, net, env, episodes: int, seed: int, max_seconds: float = 600.0,
             should_stop=lambda: False) -> list[float]:
    """Play up to ``episodes`` whole episodes with ``net``; stop early after ``max_seconds``
    (at least one episode is always finished) or, between episodes, when ``should_stop()``."""
    env_seed, rng_seed = eval_seeds(seed)
    rng = np.random.default_rng(rng_seed)
    obs = env.reset(seed=env_seed)
    returns: list[float] = []
    ret = 0.0
    start = time.monotonic()
    recurrent = getattr(algo, "recurrent", False)
    state = algo.initial_state(net) if recurrent else None
    with torch.no_grad():
        while len(returns) < episodes:
            x = torch.from_numpy(obs).unsqueeze(0)
            if recurrent:  # the network state is carried through the episode, as in training
                out, state = net(x, state)
            else:
                out = net(x)
            a = algo.act_eval(out, rng)
            obs, r, _, over, _ = env.step(a)
            ret += r
            if over:
                returns.append(ret)
                ret = 0.0
                state = algo.initial_state(net) if recurrent else None
                if time.monotonic() - start > max_seconds or should_stop():
                    break
    return returns


def summarize(frames: int, wall_seconds: float, returns: list[float]) -> dict:
    arr = np.asarray(returns, dtype=float)
    return {
        "frames": int(frames),
        "wall_seconds": round(float(wall_seconds), 3),
        "episodes": int(arr.size),
        "mean_return": float(arr.mean()),
        "median_return": float(np.median(arr)),
        "min_return": float(arr.min()),
        "max_return": float(arr.max()),
    }
