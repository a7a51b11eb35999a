"""Fidelity to the paper's experimental design: every run of a sweep is its own experiment (own
initialisation and exploration draws), ε is resampled as the paper describes, and Atari logs count
whole games also when a life loss is terminal for the learner."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn

from algorithms.base import Algorithm
from harness.config import derive_run_seed, make_run_config
from harness.engine.run import initial_network
from harness.engine.shared import flatten_into
from harness.engine.worker import SegmentCollector, worker_seeds
from harness.envs import EnvSettings, make_env, resolve_env
from harness.plugins import load_algorithm
from harness.suite import parse_yaml, validate

PAPER_EPS, PAPER_PROBS = (0.1, 0.01, 0.5), (0.4, 0.3, 0.3)


def _suite(tmp_path, body: str):
    return validate(parse_yaml(body, tmp_path / "s.yaml"), tmp_path / "s.yaml")


def _grid_suite(tmp_path, game: str, algorithms: str, threads: str, name: str = "fidelity"):
    return _suite(tmp_path, f"""
name: {name}
games: [{game}]
algorithms: [{algorithms}]
threads: [{threads}]
learning_rates: {{loguniform: [1.0e-4, 1.0e-2], count: 50, seed: 2016}}
seeds: 1
frames: 1000000
""")


def test_fifty_learning_rates_with_one_seed_are_fifty_initialisations(tmp_path):
    suite = _grid_suite(tmp_path, "CartPole-v1", "a3c", "1")
    runs = suite.runs()
    assert len(runs) == 50 and {r.config.seed for r in runs} == {0}  # the seed axis is the replicate index
    assert len({r.config.run_seed for r in runs}) == 50
    algo_cls = load_algorithm("a3c")
    env = make_env(runs[0].config.env_spec, runs[0].config.env_settings)
    checksums = set()
    for r in runs:
        algo = algo_cls(algo_cls.Hyperparameters(**r.config.hyperparameters))
        theta0 = flatten_into(initial_network(r.config, algo, env)).detach()
        checksums.add(round(float(theta0.double().sum()), 9))
    env.close()
    assert len(checksums) == 50  # 50 distinct parameter vectors at frame 0


def test_run_seeds_are_stable_recorded_and_depend_on_the_suite(tmp_path):
    a = _grid_suite(tmp_path, "CartPole-v1", "a3c, one_step_q", "1, 2")
    again = _grid_suite(tmp_path, "CartPole-v1", "a3c, one_step_q", "1, 2")
    other = _grid_suite(tmp_path, "CartPole-v1", "a3c, one_step_q", "1, 2", name="fidelity2")
    seeds = {r.run_id: r.config.run_seed for r in a.runs()}
    assert seeds == {r.run_id: r.config.run_seed for r in again.runs()}  # resume maps to the same experiment
    assert not set(seeds.values()) & {r.config.run_seed for r in other.runs()}
    assert len(set(seeds.values())) == len(seeds) == 200
    run = a.runs()[0]
    assert run.config.to_dict()["run_seed"] == derive_run_seed("fidelity", run.run_id) == seeds[run.run_id]
    assert 0 <= run.config.run_seed < 2**62
    # a single `harness train` run keeps its --seed as its run seed
    assert make_run_config(algorithm="a3c", env="CartPole-v1", seed=7).run_seed == 7


def _first_final_epsilon(cfg, rank: int) -> float:
    """The final ε worker ``rank`` of a run explores with in its first episode, drawn exactly as the
    worker draws it (init_worker, then start_episode from the collector)."""
    cls = load_algorithm(cfg.algorithm)
    algo = cls(cls.Hyperparameters(**cfg.hyperparameters))
    _, seed = worker_seeds(cfg.run_seed, rank)
    rng = np.random.default_rng(seed)
    algo.init_worker(rank, rng)
    algo.start_episode(rng)
    return algo.final_epsilon


def test_workers_final_epsilon_follows_the_paper_over_the_runs_of_a_sweep(tmp_path):
    suite = _grid_suite(tmp_path, "Pong", "one_step_q", "1, 2, 4, 8, 16")
    by_threads: dict[int, list[list[float]]] = {}
    for r in suite.runs():
        eps = [_first_final_epsilon(r.config, k) for k in range(r.config.threads)]
        by_threads.setdefault(r.config.threads, []).append(eps)
    # with seed 0 for every run, 1 thread always got 0.01 and 2 or 4 threads never got a 0.5 worker
    assert {e[0] for e in by_threads[1]} == set(PAPER_EPS)
    assert any(0.5 in e for e in by_threads[2]) and any(0.5 in e for e in by_threads[4])
    assert len({tuple(e) for e in by_threads[16]}) == 50
    draws = Counter(e for runs in by_threads.values() for eps in runs for e in eps)
    n = sum(draws.values())  # 50 x 31 = 1,550 workers
    chi2 = sum((draws[e] - n * p) ** 2 / (n * p) for e, p in zip(PAPER_EPS, PAPER_PROBS))
    assert chi2 < 13.8  # chi-square, 2 degrees of freedom, p = 0.001


class _OneDimEnv:
    """Episodes of `length` steps with a 1-d observation."""

    n_actions = 2

    def __init__(self, length=3):
        self.length, self.t = length, 0

    def reset(self, seed=None):
        self.t = 0
        return np.zeros(1, dtype=np.float32)

    def step(self, a):
        self.t += 1
        obs = np.full(1, float(self.t), dtype=np.float32)
        if self.t == self.length:
            return self.reset(), 1.0, True, True, obs
        return obs, 1.0, False, False, None


@pytest.mark.parametrize("resample", ["episode", "worker"])
def test_final_epsilon_is_resampled_at_each_episode_start_or_kept_per_worker(resample):
    cls = load_algorithm("one_step_q")
    algo = cls(cls.make_hyperparameters("image", {"epsilon_resample": resample}))
    rng = np.random.default_rng(0)
    algo.init_worker(0, rng)
    col = SegmentCollector(_OneDimEnv(length=3), algo, t_max=5, clip_rewards=True, rng=rng)
    net = nn.Linear(1, 2)
    per_episode = []
    for _ in range(600):
        per_episode.append(algo.final_epsilon)  # each segment is one whole 3-step episode
        _, finished = col.collect(net, 0, rng)
        assert len(finished) == 1
    counts = Counter(per_episode)
    if resample == "worker":
        assert len(counts) == 1
    else:
        assert set(counts) == set(PAPER_EPS)
        for e, p in zip(PAPER_EPS, PAPER_PROBS):
            assert abs(counts[e] / 600 - p) < 0.08
        changes = sum(a != b for a, b in zip(per_episode, per_episode[1:]))
        assert changes > 300  # a new draw per episode, not a fixed per-worker value


def test_epsilon_resample_default_and_validation():
    cls = load_algorithm("one_step_sarsa")
    assert cls.make_hyperparameters("image").epsilon_resample == "episode"
    assert cls.make_hyperparameters("vector").epsilon_resample == "episode"
    with pytest.raises(ValueError, match="epsilon_resample"):
        cls.make_hyperparameters("image", {"epsilon_resample": "segment"})
    with pytest.raises(ValueError, match="same, non-zero length"):
        cls.make_hyperparameters("image", {"final_epsilons": (0.1, 0.2), "final_epsilon_probs": (1.0,)})


class _RandomPlay(Algorithm):
    name = "random_play_test"

    def act(self, out, frames, rng):
        return int(rng.integers(out.shape[-1]))


class _Zeros(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.n = n

    def forward(self, x):
        return torch.zeros(x.shape[0], self.n)


def _play(terminal_on_life_loss: bool, steps: int = 4000):
    env = make_env(resolve_env("Breakout"), EnvSettings(terminal_on_life_loss=terminal_on_life_loss))
    try:
        rng = np.random.default_rng(0)
        col = SegmentCollector(env, _RandomPlay(), t_max=5, clip_rewards=True, seed=11)
        net = _Zeros(env.n_actions)
        games, life_terminals, taken = [], [], 0
        while taken < steps:
            seg, finished = col.collect(net, 0, rng)
            taken += len(seg)
            if seg.terminal and not finished:
                life_terminals.append(taken)
            games.extend(finished)
        return games, life_terminals
    finally:
        env.close()


def test_breakout_with_life_loss_terminals_logs_whole_games():
    whole, no_life_terminals = _play(False)
    games, life_terminals = _play(True)
    assert not no_life_terminals
    # the same random play gives the same games: 5 lives each, not one game per life
    assert len(games) >= 10 and games == whole
    assert 4 * len(games) <= len(life_terminals) <= 4 * (len(games) + 1)  # 4 life losses per game (and the one in progress)
