"""Synthetic run folders in the format of docs/RUN_FORMAT.md, for report tests and benchmarks.

``write_run`` writes one folder whose episode returns follow a given function of (frames, seconds),
so tests know the right answers; ``write_sweep`` writes a small sweep with a plausible learning model
(score rises with frames, best near lr = 7e-4, more threads = more frames per second).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

ATARI = {"Pong", "Breakout", "BeamRider", "Qbert", "SpaceInvaders", "Enduro", "Seaquest"}
# (random, human) no-op baselines, for a learning model that spans a realistic range
RANGES = {"Pong": (-20.7, 15.0), "Breakout": (1.7, 300.0), "BeamRider": (363.9, 6000.0),
          "Qbert": (163.9, 12000.0), "SpaceInvaders": (148.0, 1500.0), "CartPole-v1": (10.0, 480.0)}


def _dump(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=1))


def write_run(
    root: Path,
    name: str | None = None,
    *,
    algorithm: str = "a3c",
    game: str = "Pong",
    threads: int = 1,
    lr: float = 1e-3,
    seed: int = 0,
    optimizer: str = "shared_rmsprop",
    frames: int = 4_000_000,
    returns: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    fps: float = 1000.0,
    n_episodes: int = 200,
    state: str = "done",
    evals: int | None = None,
    oversubscribed: bool = False,
    physical_cores: int = 16,
    progress: float = 1.0,
    files: Iterable[str] = ("config.json", "status.json", "episodes.csv", "evals.csv"),
    suite: str | None = "synthetic",
    error: str | None = None,
    status_extra: dict | None = None,
) -> Path:
    """Write one run folder and return its path.

    Episodes end evenly spaced in frames over ``progress * frames``; their wall time is
    ``frames / fps``; their return is ``returns(frames, seconds)`` (default: 0).  ``evals`` writes
    that many evaluation rows with the same function (``None``: none, no evals.csv content).
    """
    name = name or f"{algorithm}-{game}-t{threads}-lr{lr:g}-s{seed}-{optimizer}"
    path = Path(root) / name
    path.mkdir(parents=True, exist_ok=True)
    files = set(files)
    is_atari = game in ATARI
    reached = int(frames * progress)
    ep_frames = np.linspace(reached / n_episodes, reached, n_episodes) if n_episodes else np.empty(0)
    ep_wall = ep_frames / fps
    fn = returns or (lambda f, t: np.zeros_like(f))
    ep_ret = np.asarray(fn(ep_frames, ep_wall), dtype=float)
    if "config.json" in files:
        _dump(path / "config.json", {
            "schema_version": 1, "algorithm": algorithm, "env": game,
            "env_id": f"ALE/{game}-v5" if is_atari else game, "game": game, "is_atari": is_atari,
            "threads": threads, "lr": lr, "seed": seed, "frames": frames, "optimizer": optimizer,
            "hyperparameters": {"gamma": 0.99, "t_max": 5, "entropy_beta": 0.01},
            "env_settings": {"frame_skip": 4, "noop_max": 30, "repeat_action_probability": 0.0},
            "eval": {"episodes": 10, "every_frames": frames // max(evals or 1, 1)},
            "suite": suite, "run_id": name})
    if "status.json" in files:
        wall = float(ep_wall[-1]) if n_episodes else 0.0
        _dump(path / "status.json", {
            "schema_version": 1, "state": state, "error": error,
            "started_at": "2026-01-01T00:00:00Z", "ended_at": None if state == "running" else "2026-01-01T06:00:00Z",
            "frames_done": reached, "wall_seconds": wall, "frames_per_second": fps,
            "host": {"hostname": "synthetic-host", "logical_cores": 2 * physical_cores,
                     "physical_cores": physical_cores, "cpu_model": "Synthetic CPU", "oversubscribed": oversubscribed},
            "versions": {"python": "3.11.7", "torch": "2.13.0", "gymnasium": "1.0.0", "ale_py": "0.10.1",
                         "harness": "0.1.0"},
            **(status_extra or {})})
    if "episodes.csv" in files:
        worker = np.arange(n_episodes) % max(threads, 1)
        lines = ["frames,wall_seconds,worker,return,length"]
        lines += [f"{int(f)},{t:.6f},{w},{r:.6f},{int(f // 4 // max(threads, 1))}"
                  for f, t, w, r in zip(ep_frames, ep_wall, worker, ep_ret)]
        (path / "episodes.csv").write_text("\n".join(lines) + "\n")
    if "evals.csv" in files:
        lines = ["frames,wall_seconds,episodes,mean_return,median_return,min_return,max_return"]
        if evals:
            ev_frames = np.linspace(reached / evals, reached, evals)
            ev_wall = ev_frames / fps
            ev_ret = np.asarray(fn(ev_frames, ev_wall), dtype=float)
            lines += [f"{int(f)},{t:.6f},10,{r:.6f},{r:.6f},{r - 1:.6f},{r + 1:.6f}"
                      for f, t, r in zip(ev_frames, ev_wall, ev_ret)]
        (path / "evals.csv").write_text("\n".join(lines) + "\n")
    return path


def lr_quality(lr: float, best: float = 7e-4, width: float = 1.0) -> float:
    """1 at the best learning rate, falling off with the distance in decades."""
    return float(np.exp(-((np.log10(lr) - np.log10(best)) / width) ** 2))


def write_sweep(
    root: Path,
    algorithms=("a3c", "n_step_q"),
    games=("Pong", "Breakout"),
    threads=(1, 2, 4),
    lrs=(1e-4, 3e-4, 7e-4, 2e-3, 6e-3),
    seeds=(0, 1),
    optimizers=("shared_rmsprop",),
    frames: int = 8_000_000,
    n_episodes: int = 120,
    base_fps: float = 800.0,
    noise: float = 0.05,
    evals: int | None = None,
    physical_cores: int = 2,
    diverge_lr: float | None = 6e-3,
) -> list[Path]:
    """A sweep with a known structure (see module doc).  Returns the run folders."""
    rng = np.random.default_rng(0)
    paths = []
    for alg in algorithms:
        for game in games:
            lo, hi = RANGES.get(game, (0.0, 100.0))
            for n in threads:
                fps = base_fps * n ** 0.9
                for opt in optimizers:
                    opt_q = {"shared_rmsprop": 1.0, "rmsprop": 0.8, "momentum_sgd": 0.6}.get(opt, 0.7)
                    for lr in lrs:
                        for seed in seeds:
                            q = lr_quality(lr) * opt_q * (0.9 + 0.1 * rng.random())
                            tau = frames / 4 / (1 + 0.1 * np.log2(n))
                            eps = noise * (hi - lo)
                            local = np.random.default_rng(rng.integers(1 << 31))

                            def fn(f, t, q=q, tau=tau, eps=eps, local=local, lo=lo, hi=hi):
                                return lo + (hi - lo) * q * (1 - np.exp(-f / tau)) + eps * local.standard_normal(f.shape)

                            diverged = diverge_lr is not None and lr >= diverge_lr and seed == 0
                            paths.append(write_run(
                                root, algorithm=alg, game=game, threads=n, lr=lr, seed=seed, optimizer=opt,
                                frames=frames, returns=fn, fps=fps, n_episodes=n_episodes,
                                state="diverged" if diverged else "done", evals=evals,
                                oversubscribed=n > physical_cores, physical_cores=physical_cores,
                                progress=0.5 if diverged else 1.0,
                                error="worker 0: loss is NaN" if diverged else None))
    return paths
