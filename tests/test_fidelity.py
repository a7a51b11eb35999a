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


class _TimeLimitEnv:
    """Rewards 1 per step; a real terminal at step `terminal_at`, else the time limit cuts at `limit`."""

    n_actions = 2

    def __init__(self, limit, terminal_at=None):
        self.limit, self.terminal_at, self.t = limit, terminal_at, 0

    def reset(self, seed=None):
        self.t = 0
        return np.zeros(1, dtype=np.float32)

    def step(self, a):
        self.t += 1
        obs = np.full(1, float(self.t), dtype=np.float32)
        if self.t == self.terminal_at:
            return self.reset(), 1.0, True, True, obs
        if self.t == self.limit:  # truncated: over, not terminal
            return self.reset(), 1.0, False, True, obs
        return obs, 1.0, False, False, None


@pytest.mark.parametrize("resample", ["episode", "worker"])
def test_final_epsilon_is_resampled_at_each_episode_start_or_kept_per_worker(resample):
    cls = load_algorithm("one_step_q")
    algo = cls(cls.make_hyperparameters("image", {"epsilon_resample": resample}))
    rng = np.random.default_rng(0)
    algo.init_worker(0, rng)
    col = SegmentCollector(_TimeLimitEnv(limit=100, terminal_at=3), algo, t_max=5, clip_rewards=True, rng=rng)
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


def test_target_network_is_refreshed_exactly_when_t_crosses_a_multiple_of_the_period():
    from harness.engine.worker import crosses_multiple

    assert crosses_multiple(39_980, 40_000, 40_000)  # lands on the multiple
    assert crosses_multiple(39_990, 40_010, 40_000)  # steps over it within one segment
    assert not crosses_multiple(40_000, 40_020, 40_000)  # already refreshed at 40,000
    assert not crosses_multiple(0, 39_999, 40_000)
    assert crosses_multiple(79_990, 80_010, 40_000) and not crosses_multiple(80_010, 80_030, 40_000)
    # over a run of 5-step Atari segments (20 frames) two workers interleaving, θ⁻ is refreshed once per period
    T, refreshes = 0, []
    for _ in range(10_000):
        before, T = T, T + 20
        if crosses_multiple(before, T, 40_000):
            refreshes.append(T)
    assert refreshes == [40_000, 80_000, 120_000, 160_000, 200_000]


def test_engine_copies_theta_into_the_target_network_at_the_period(tmp_path):
    """One worker, θ⁻ every 1,000 frames, a budget of 5,000: the last segment crosses 5,000, a
    multiple of the period, so θ⁻ is refreshed after the last update and equals the final θ exactly."""
    from harness.engine import train

    cfg = make_run_config(algorithm="one_step_q", env="CartPole-v1", threads=1, seed=3, frames=5_000,
                          hyperparameters={"target_update_frames": 1_000}, eval={"episodes": 0})
    assert train(cfg, tmp_path).state == "done"
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert ckpt["frames"] >= 5_000
    initial = flatten_into(initial_network(cfg, load_algorithm("one_step_q")(), make_env(cfg.env_spec, cfg.env_settings)))
    assert not torch.equal(ckpt["target"], initial.detach())  # θ⁻ was refreshed during the run
    assert torch.equal(ckpt["target"], ckpt["params"])


@pytest.mark.parametrize("terminal", [False, True])
def test_time_limit_is_bootstrapped_and_a_real_terminal_is_not(terminal):
    cls = load_algorithm("one_step_q")
    algo = cls(cls.make_hyperparameters("vector", {"gamma": 0.5}))
    env = _TimeLimitEnv(limit=3, terminal_at=3 if terminal else None)
    col = SegmentCollector(env, algo, t_max=5, clip_rewards=True)
    net = nn.Linear(1, 2)
    with torch.no_grad():
        net.weight.fill_(1.0)
        net.bias.zero_()  # Q(s, ·) = s for both actions
    seg, finished = col.collect(net, 0, np.random.default_rng(0))
    assert finished == [(3.0, 3)] and len(seg) == 3 and seg.terminal is terminal
    assert seg.next_obs.tolist() == [[3.0]]  # the last state of the episode, not the next one's first
    loss, _ = algo.loss(net, net, seg)
    # targets r + γ max Q(s') for s' = 1, 2, 3 (the last one cut by the time limit) or 0 after a terminal
    q = torch.tensor([0.0, 1.0, 2.0])
    y = torch.tensor([1 + 0.5 * 1, 1 + 0.5 * 2, 1.0 if terminal else 1 + 0.5 * 3])
    assert float(loss.detach()) == pytest.approx(float(((y - q) ** 2).sum()))


def test_atari_network_shapes_are_the_mnih_2013_net():
    import gymnasium as gym

    from algorithms.networks import ActorCriticNetwork, AtariTorso, QNetwork

    space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    torso = AtariTorso()
    conv1, conv2 = torso.conv[0], torso.conv[2]
    assert (conv1.in_channels, conv1.out_channels, conv1.kernel_size, conv1.stride) == (4, 16, (8, 8), (4, 4))
    assert (conv2.in_channels, conv2.out_channels, conv2.kernel_size, conv2.stride) == (16, 32, (4, 4), (2, 2))
    assert torso.fc[0].in_features == 32 * 9 * 9 and torso.fc[0].out_features == 256  # 84 -> 20 -> 9
    x = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    q = QNetwork(space, 6)
    assert q(x).shape == (3, 6)
    ac = ActorCriticNetwork(space, 6)
    logits, v = ac(x)
    assert logits.shape == (3, 6) and v.shape == (3,)
    assert ac.value_torso is None  # images: one torso under both heads, as in the paper
    n_torso = sum(p.numel() for p in torso.parameters())
    assert n_torso == (4 * 16 * 64 + 16) + (16 * 32 * 16 + 32) + (2592 * 256 + 256)
    assert sum(p.numel() for p in ac.parameters()) == n_torso + (256 * 6 + 6) + (256 + 1)


@pytest.mark.parametrize("shape,dtype", [((4, 84, 84), np.uint8), ((10, 10, 4), bool), ((4,), np.float32)])
def test_functional_forwards_equal_the_layer_chains(shape, dtype):
    """The torsos' and heads' ``forward`` call the functional ops on their layers (module calls cost
    as much as the layers at batch 1); they compute exactly what calling the layers in order does,
    with gradients equal too."""
    import gymnasium as gym

    from algorithms.networks import ActorCriticNetwork, AtariTorso, MLPTorso, QNetwork, SmallImageTorso, as_image_batch

    def chain(torso, x):
        if isinstance(torso, MLPTorso):
            return torso.net(x.float())
        assert isinstance(torso, (AtariTorso, SmallImageTorso))
        return torso.fc(torso.conv(as_image_batch(x, torso.channels_last)))

    space = gym.spaces.Box(0, 255 if dtype == np.uint8 else 1, shape, dtype)
    torch.manual_seed(0)
    x = torch.as_tensor(np.stack([space.sample() for _ in range(3)]))
    q, ac = QNetwork(space, 5), ActorCriticNetwork(space, 5)
    assert torch.equal(q(x), q.q(chain(q.torso, x)))
    logits, v = ac(x)
    (logits.sum() + v.sum()).backward()
    g1 = [p.grad.clone() for p in ac.parameters()]
    ac.zero_grad()
    h = chain(ac.torso, x)
    hv = h if ac.value_torso is None else chain(ac.value_torso, x)
    logits2, v2 = ac.policy(h), ac.value(hv).squeeze(-1)
    assert torch.equal(logits, logits2) and torch.equal(v, v2)
    (logits2.sum() + v2.sum()).backward()
    assert all(torch.equal(a, b.grad) for a, b in zip(g1, ac.parameters()))


# ---------------------------------------------------------------------------------------------- small images
GRIDS = ("tests.fixtures_check_envs:register_small_grids",)


def test_small_channel_last_boolean_images_get_the_minatar_network():
    import gymnasium as gym

    from algorithms.networks import AtariTorso, SmallImageTorso, build_torso, image_layout

    assert image_layout((10, 10, 4)) == (True, 4, 10, 10) and image_layout((4, 84, 84)) == (False, 4, 84, 84)
    torso = build_torso(gym.spaces.Box(0, 1, (10, 10, 4), bool))
    assert isinstance(torso, SmallImageTorso) and torso.out_dim == 128
    conv = torso.conv[0]
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride) == (4, 16, (3, 3), (1, 1))
    assert torso.fc[0].in_features == 16 * 8 * 8
    x = torch.zeros(2, 10, 10, 4, dtype=torch.bool)
    x[0, 3, 4, 1] = True
    out = torso(x)
    assert out.shape == (2, 128) and not torch.equal(out[0], out[1])
    assert isinstance(build_torso(gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)), AtariTorso)


def test_env_modules_accept_module_colon_function_and_check_env_builds_every_network():
    from harness.check.env import check_env
    from harness.envs import EnvError, import_env_modules

    report = check_env("HarnessCheck/SmallGrid-v0", env_modules=GRIDS, steps=200, perf_seconds=0.1)
    assert report.passed, report
    assert report["a3c network and loss"].values["torso"] == "SmallImageTorso"
    assert report["a3c_lstm network and loss"].values["torso"] == "SmallImageTorso"  # the recurrent one too
    assert report["observation space"].values == {"shape": [10, 10, 3], "kind": "image"}
    tiny = check_env("HarnessCheck/TinyImage-v0", env_modules=GRIDS, steps=50, perf_seconds=0.1)
    failed = {row.name for row in tiny.rows if not row.passed}
    assert failed == {f"{a} network and loss" for a in ("one_step_q", "one_step_sarsa", "n_step_q", "a3c", "a3c_lstm")}
    assert "plug-in" in tiny["a3c network and loss"].fix
    with pytest.raises(EnvError, match="has no function 'nope'"):
        import_env_modules(["tests.fixtures_check_envs:nope"])


def test_check_env_builds_the_network_of_every_shipped_algorithm():
    import algorithms
    from harness.check.env import BUILTIN_ALGORITHMS

    assert BUILTIN_ALGORITHMS == algorithms.SHIPPED


def test_training_on_a_small_grid_and_a_failing_set_up_is_one_line(tmp_path):
    from click.testing import CliRunner

    from harness.cli import cli

    res = CliRunner().invoke(cli, ["train", "--algo", "n_step_q", "--env", "HarnessCheck/SmallGrid-v0",
                                   "--env-module", GRIDS[0], "--frames", "3000", "--eval-episodes", "1",
                                   "--out", str(tmp_path / "grid")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["train", "--algo", "a3c", "--env", "HarnessCheck/TinyImage-v0",
                                   "--env-module", GRIDS[0], "--frames", "3000", "--out", str(tmp_path / "tiny")])
    assert res.exit_code == 1 and "Traceback" not in res.output
    (line,) = [ln for ln in res.output.splitlines() if ln.startswith("harness: error:")]
    assert "setting up a3c on HarnessCheck/TinyImage-v0 failed" in line
    import json

    status = json.loads((tmp_path / "tiny" / "status.json").read_text())
    assert status["state"] == "failed" and status["error"] in line


def test_minatar_breakout_trains_through_module_function_registration(tmp_path):
    """The real MinAtar (the `minatar` extra, installed by make)."""
    from harness.engine import train

    # a sweep's 62-bit run seed: MinAtar takes only 32-bit seeds, in training and in evaluation
    cfg = make_run_config(algorithm="a3c", env="MinAtar/Breakout-v1", env_modules=("minatar.gym:register_envs",),
                          frames=4_000, eval={"episodes": 1}, run_seed=derive_run_seed("minatar2", "a3c-run"))
    assert cfg.env_spec.frames_per_step == 1 and not cfg.env_spec.is_atari and cfg.run_seed >= 2**32
    result = train(cfg, tmp_path)
    assert result.state == "done", result.error
    import json

    import pandas as pd

    assert len(pd.read_csv(tmp_path / "episodes.csv")) > 10
    assert len(pd.read_csv(tmp_path / "evals.csv")) == 1  # the final model was evaluated
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "done"


def test_evaluation_seeds_are_32_bit_and_differ_from_the_workers():
    from harness.engine.worker import worker_seeds
    from harness.evaluate import eval_seeds

    for seed in (0, 1, 2**31, 2**62 - 1):
        env_seed, rng_seed = eval_seeds(seed)
        assert 0 <= env_seed < 2**32 and 0 <= rng_seed < 2**32
        assert eval_seeds(seed) == (env_seed, rng_seed)  # deterministic
        assert env_seed not in {worker_seeds(seed, w)[0] for w in range(16)}
    assert eval_seeds(1) != eval_seeds(2)
