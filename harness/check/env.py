"""``harness check env``: can the harness train on this environment?

The environment is driven exactly as workers drive it (:func:`harness.envs.make_env`, the
same-step-autoreset :class:`~harness.envs.StepEnv`), so a gymnasium id registered by a third-party
module (``env_modules``) is checked with the wrapper and settings a run would use:

``api``
    it builds with a Discrete action space and a Box observation space of rank 1 (vector) or
    3 ([C, H, W] image); ``reset`` and ``step`` return what the engine expects; every observation
    (including the final one of an episode) lies inside the observation space; rewards are finite.
``gymnasium``
    gymnasium's own checker, ``gymnasium.utils.env_checker.check_env`` (render checks skipped: the
    harness never renders), on the environment as ``gymnasium.make`` builds it (for an Atari game:
    ``ALE/<Game>-v5`` with the protocol's sticky-action, action-set and frame-cap settings, without
    the preprocessing that ale-py's vector env adds). The row fails when gymnasium's checker raises,
    with its message; its warnings (``gymnasium.utils.passive_env_checker`` and the like) are
    listed in the row but do not fail it, as gymnasium does not fail on them either (CartPole-v1
    warns about its infinite bounds). The row is *advisory*: it does not change the verdict or the
    exit status, which follow the harness's own checks, because they test what training depends on;
    gymnasium also requires things the harness does not (MinAtar's ``reset`` seeds its own generator
    instead of calling ``super().reset(seed=seed)``, which gymnasium rejects, while the harness's
    seed checks pass and MinAtar trains reproducibly).
``network``
    every built-in algorithm builds its default network for this observation space (the Mnih 2013
    net for Atari-sized images, the MinAtar reference net for small grids, an MLP for vectors) and
    takes one loss and backward pass on real transitions of the environment, so an environment that
    passes can be trained.
``seed``
    ``reset(seed=s)`` followed by the same actions gives the same trajectory, in the same instance
    and in a new one; different seeds are reported (not required: some tasks start deterministically).
    The seeds are those the engine gives workers 0 and 1 of a run with seed ``seed``
    (:func:`harness.engine.worker.worker_seeds`: 32-bit integers).
``performance``
    frames per second of random play against a floor.
"""

from __future__ import annotations

import math
import re
import time
import traceback
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from harness.check.defaults import DEFAULT_STEPS
from harness.check.defaults import ENV_MIN_FPS as DEFAULT_MIN_FPS
from harness.check.defaults import ENV_STAGES as STAGES
from harness.check.report import CheckReport, CheckRow
from harness.check.runner import CheckFailure, Runner

# every algorithm the harness ships (algorithms.SHIPPED, repeated here so that the check imports torch only when
# it builds a network; a test keeps the two equal)
BUILTIN_ALGORITHMS = ("one_step_q", "one_step_sarsa", "n_step_q", "a3c", "a3c_lstm")

SEED_FIX = (
    "reset(seed=s) must seed every random source of the environment: in a gymnasium Env call "
    "super().reset(seed=seed) and draw from self.np_random, never from np.random.* or the random module"
)
NETWORK_FIX = (
    "the built-in networks take vectors [N] and images [C, H, W] or [H, W, C] of at least 3x3 pixels; for "
    "another observation write a plug-in whose build_network fits it (docs/PLUGINS.md)"
)
GYMNASIUM_FIX = (
    "follow gymnasium's API where its message points (e.g. reset calls super().reset(seed=seed); "
    "gymnasium.farama.org/introduction/create_custom_env), or report it to the environment's package; "
    "training depends only on the harness's own checks"
)
SPACE_FIX = (
    "return observations inside observation_space (same shape, within low/high, finite), or declare "
    "the space to match what the environment returns"
)


def check_env(
    env: str,
    *,
    env_modules: Sequence[str] = (),
    env_settings: dict[str, Any] | None = None,
    seed: int = 0,
    steps: int = DEFAULT_STEPS,
    min_fps: float | None = None,
    perf_seconds: float = 2.0,
    stages: Iterable[str] = STAGES,
    progress: Callable[[CheckRow], None] | None = None,
) -> CheckReport:
    """Check an environment: an Atari game name or a gymnasium id (registered by ``env_modules``).

    ``steps``: random steps of the step-contract check; ``min_fps``: the frames/s floor (default
    500); ``env_settings``: :class:`harness.envs.EnvSettings` overrides (Atari protocol).
    Raises :class:`harness.envs.EnvError` when the name does not resolve, ``ValueError`` for a seed
    outside 0 <= seed < 2**32 (:mod:`harness.seeds`).
    """
    from harness.envs import EnvSettings, resolve_env

    from harness.seeds import check_seed

    stages = tuple(stages)
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise ValueError(f"unknown check stage(s) {', '.join(unknown)}; allowed: {', '.join(STAGES)}")
    check_seed(seed)
    spec = resolve_env(env, tuple(env_modules))
    settings = EnvSettings(**(env_settings or {}))
    floor = float(DEFAULT_MIN_FPS if min_fps is None else min_fps)
    report = CheckReport("env", env, {"env_id": spec.env_id, "env_modules": list(env_modules), "seed": seed,
                                      "steps": steps, "min_fps": floor, "perf_seconds": perf_seconds,
                                      "stages": list(stages)})
    check = _EnvCheck(spec, settings, int(seed), int(steps), floor, float(perf_seconds))
    try:
        check.run(Runner(report, stages, progress))
    finally:
        check.close()
    return report


def gymnasium_warnings(caught: list) -> list[str]:
    """The warnings gymnasium's logger gave during its checks, as plain one-line text, in order, once
    each; without the one about checking a wrapped env (``gymnasium.make`` wraps every env, and the
    wrapped env is what the harness trains on) and without other libraries' warnings."""
    out: list[str] = []
    for w in caught:
        text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(w.message)).split())
        if not text.startswith("WARN: ") or "is different from the unwrapped version" in text:
            continue
        text = text[len("WARN: "):]
        if text not in out:
            out.append(text)
    return out


def describe_gymnasium_error(exc: BaseException) -> str:
    """``AssertionError in check_reset_seed_determinism: message``: the exception, the gymnasium check
    that raised it, and where, when that was the environment's own code rather than gymnasium's."""
    message = " ".join(str(exc).split())
    if len(message) > 300:
        message = message[:297] + "..."
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "gymnasium" in f.filename.replace("\\", "/").split("/")]
    checker = next((f.name for f in reversed(ours) if f.filename.endswith("env_checker.py") and f.name != "check_env"),
                   None)
    text = type(exc).__name__ + (f" in {checker}" if checker else "") + (f": {message}" if message else "")
    if frames and frames[-1] not in ours:
        text += f" (at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name})"
    return text


def in_space(obs: Any, space: Any, what: str) -> None:
    """Raise CheckFailure unless ``obs`` is an array inside the Box ``space``."""
    if not isinstance(obs, np.ndarray):
        raise CheckFailure(f"{what} is a {type(obs).__name__}, not a numpy array", SPACE_FIX)
    if obs.shape != tuple(space.shape):
        raise CheckFailure(f"{what} has shape {obs.shape}, the observation space {tuple(space.shape)}", SPACE_FIX)
    if not (np.issubdtype(obs.dtype, np.number) or obs.dtype == np.bool_):
        raise CheckFailure(f"{what} has dtype {obs.dtype}, not a number", SPACE_FIX)
    values = obs.astype(np.float64)
    if not np.isfinite(values).all():
        raise CheckFailure(f"{what} has non-finite values", SPACE_FIX)
    low = np.broadcast_to(np.asarray(space.low, dtype=np.float64), obs.shape)
    high = np.broadcast_to(np.asarray(space.high, dtype=np.float64), obs.shape)
    outside = (values < low) | (values > high)
    if outside.any():
        idx = tuple(int(i) for i in np.argwhere(outside)[0])
        raise CheckFailure(
            f"{what}[{', '.join(map(str, idx))}] = {values[idx]:g} is outside the observation space's "
            f"bounds [{low[idx]:g}, {high[idx]:g}]", SPACE_FIX)


class _EnvCheck:
    def __init__(self, spec, settings, seed: int, steps: int, min_fps: float, perf_seconds: float):
        from harness.engine.worker import worker_seeds

        self.spec, self.settings, self.steps = spec, settings, steps
        self.run_seed = seed
        self.seed = worker_seeds(seed, 0)[0]  # what worker 0 of a run with this seed resets with
        self.other_seed = worker_seeds(seed, 1)[0]
        self.min_fps, self.perf_seconds = min_fps, perf_seconds
        self.env = None
        self._opened: list = []

    def _make(self):
        from harness.envs import make_env

        env = make_env(self.spec, self.settings)
        self._opened.append(env)
        return env

    def close(self) -> None:
        for env in self._opened:
            try:
                env.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass

    def run(self, r: Runner) -> None:
        # the api checks build the environment the network, seed and performance stages use: cheap
        # prerequisites that run whenever one of those does (--only seed has an environment to check)
        needed = bool({"network", "seed", "performance"} & set(r.stages))
        r.run("api", "builds", self.builds, always=needed,
              fix=f"{self.spec.env_id} must build with gymnasium.make and a Discrete action space")
        r.run("api", "observation space", self.space, ("builds",), always=needed)
        r.run("api", "reset", self.reset, ("observation space",), always=needed,
              fix=f"reset(seed=...) must return (observation, info) as gymnasium's API defines and accept any "
                  f"seed in [0, 2**32) (the engine derives one per worker, here {self.seed})")
        r.run("api", "step contract", self.step_contract, ("reset",), always=needed,
              fix="step(action) must return (observation, reward, terminated, truncated, info)")
        r.run("gymnasium", "gymnasium check_env", self.gymnasium_checker, fix=GYMNASIUM_FIX, advisory=True)
        for name in BUILTIN_ALGORITHMS:
            r.run("network", f"{name} network and loss", lambda name=name: self.network(name), ("step contract",),
                  fix=NETWORK_FIX)
        r.run("seed", "seeded reset reproducible", self.seeded, ("reset",))
        r.run("seed", "different seeds", self.different_seeds, ("reset",))
        r.run("performance", "frames/s", self.performance, ("reset",))

    # -- api ---------------------------------------------------------------------------------
    def builds(self):
        from harness.envs import EnvBuildError, EnvError

        try:
            self.env = self._make()
        except EnvBuildError as exc:
            raise CheckFailure(str(exc), f"{self.spec.env_id} must build with gymnasium.make: install what it needs "
                                         f"(the message says what), or fix the package that provides it") from None
        except EnvError as exc:
            raise CheckFailure(str(exc), "the harness trains on Discrete action spaces only: wrap the "
                                         "environment (e.g. discretise a Box action space)") from None
        n = self.env.n_actions
        if not (isinstance(n, int) and n >= 1):
            raise CheckFailure(f"{n!r} actions", "the action space needs at least one action")
        kind = "Atari (ale-py, paper protocol)" if self.spec.is_atari else "gymnasium"
        return (f"{self.spec.env_id}: {kind}, {n} actions, {self.spec.frames_per_step} frame(s) per step",
                {"n_actions": n, "frames_per_step": self.spec.frames_per_step})

    def space(self):
        import gymnasium as gym

        space = self.env.observation_space
        if not isinstance(space, gym.spaces.Box):
            raise CheckFailure(f"observation space {space} is not a Box",
                               "the harness's networks take Box observations: flatten or one-hot encode other "
                               "spaces with a gymnasium wrapper in the registered env")
        rank = len(space.shape)
        if rank not in (1, 3):
            raise CheckFailure(f"observation shape {tuple(space.shape)} has rank {rank}",
                               "observations must be vectors [N] or images [C, H, W] or [H, W, C]: "
                               "flatten, or add the channel axis with a wrapper")
        kind = "image" if rank == 3 else "vector"
        return f"Box{tuple(space.shape)} {space.dtype} ({kind})", {"shape": list(space.shape), "kind": kind}

    def reset(self):
        obs = self.env.reset(seed=self.seed)
        in_space(obs, self.env.observation_space, "the observation from reset")
        return f"reset(seed={self.seed}): observation {obs.dtype}{list(obs.shape)} inside the space", {"seed": self.seed}

    def step_contract(self):
        env, n = self.env, self.env.n_actions
        space = env.observation_space
        rng = np.random.default_rng(self.seed)
        env.reset(seed=self.seed)
        episodes, length, lengths, rmin, rmax = 0, 0, [], math.inf, -math.inf
        for i in range(self.steps):
            out = env.step(int(rng.integers(n)))
            obs, reward, terminal, over, final = out
            in_space(obs, space, f"the observation after step {i + 1}")
            if not isinstance(reward, (int, float, np.number)) or not np.isfinite(reward):
                raise CheckFailure(f"the reward of step {i + 1} is {reward!r}",
                                   "rewards must be finite numbers")
            rmin, rmax = min(rmin, float(reward)), max(rmax, float(reward))
            length += 1
            if over:
                if final is None:
                    raise CheckFailure(f"episode ended at step {i + 1} without a final observation", SPACE_FIX)
                in_space(final, space, f"the final observation of episode {episodes + 1}")
                episodes += 1
                lengths.append(length)
                length = 0
            elif terminal and not self.settings.terminal_on_life_loss:
                raise CheckFailure(f"step {i + 1} is terminal but the episode did not end",
                                   "terminated must end the episode")
        ended = f"{episodes} episodes ended (mean length {np.mean(lengths):.0f})" if episodes else \
            "no episode ended (autoreset not exercised: raise --steps)"
        return (f"{self.steps} random steps; rewards in [{rmin:g}, {rmax:g}]; {ended}",
                {"steps": self.steps, "episodes": episodes, "reward_min": rmin, "reward_max": rmax})

    # -- gymnasium -------------------------------------------------------------------------------
    def _make_gymnasium(self):
        import gymnasium as gym

        if not self.spec.is_atari:
            return gym.make(self.spec.env_id), f"gymnasium.make({self.spec.env_id!r})"
        import ale_py

        gym.register_envs(ale_py)
        s = self.settings
        env = gym.make(self.spec.env_id, repeat_action_probability=s.repeat_action_probability,
                       full_action_space=s.full_action_space, max_num_frames_per_episode=s.max_episode_frames)
        return env, f"gymnasium.make({self.spec.env_id!r}) (without the harness's frame preprocessing)"

    def gymnasium_checker(self):
        import warnings

        import gymnasium as gym
        from gymnasium.utils.env_checker import check_env as gymnasium_check_env

        what, error = f"gymnasium {gym.__version__}'s check_env", None
        subject = f"gymnasium.make({self.spec.env_id!r})"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                env, subject = self._make_gymnasium()
                try:
                    gymnasium_check_env(env, skip_render_check=True)
                finally:
                    env.close()
            except Exception as exc:  # noqa: BLE001 - gymnasium's verdict, reported in one line
                error = exc
        notes = gymnasium_warnings(caught)
        values = {"gymnasium": gym.__version__, "warnings": notes}
        if error is not None:
            raise CheckFailure(f"{subject} fails {what}: {describe_gymnasium_error(error)}", GYMNASIUM_FIX, values)
        if not notes:
            return f"{subject} passes {what}, no warnings", values
        more = f" (+{len(notes) - 1} more in --json)" if len(notes) > 1 else ""
        return f"{subject} passes {what}; {len(notes)} warning(s), not counted: {notes[0]}{more}", values

    # -- network -----------------------------------------------------------------------------
    def network(self, name: str):
        import torch

        from harness.config import observation_kind
        from harness.engine.worker import SegmentCollector
        from harness.plugins import load_algorithm

        cls = load_algorithm(name)
        algo = cls(cls.make_hyperparameters(observation_kind(self.spec, self.settings)))
        env = self._make()
        torch.manual_seed(self.run_seed)
        rng = np.random.default_rng(self.seed)
        try:
            net = algo.build_network(env.observation_space, env.n_actions)
            target = algo.build_network(env.observation_space, env.n_actions) if algo.uses_target_network else None
            algo.init_worker(0, rng)
            collector = SegmentCollector(env, algo, int(getattr(algo.hp, "t_max", 5)), self.settings.clip_rewards,
                                         seed=self.seed, rng=rng)
            seg, _ = collector.collect(net, 0, rng)
            loss, _ = algo.loss(net, target, seg)
            loss.backward()
        except Exception as exc:  # noqa: BLE001 - whatever the mismatch, say it in one line
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise CheckFailure(f"{name}: {type(exc).__name__}: {detail}", NETWORK_FIX) from None
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        norm = float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads))) if grads else 0.0
        if not math.isfinite(float(loss.detach())) or not math.isfinite(norm):
            raise CheckFailure(f"{name}: non-finite loss or gradient on real transitions",
                               "observations must be finite numbers the network can take")
        params = sum(p.numel() for p in net.parameters())
        torso = type(getattr(net, "torso", net)).__name__
        return (f"{torso}, {params:,} parameters; loss {float(loss.detach()):.3g} on {len(seg)} transitions, "
                f"|grad| {norm:.3g}", {"torso": torso, "parameters": params})

    # -- seed ----------------------------------------------------------------------------------
    def _trajectory(self, env, seed: int, steps: int) -> list[tuple]:
        rng = np.random.default_rng(seed + 1)
        traj = [(env.reset(seed=seed).copy(),)]
        for _ in range(steps):
            obs, reward, terminal, over, _ = env.step(int(rng.integers(env.n_actions)))
            traj.append((obs.copy(), float(reward), bool(terminal), bool(over)))
        return traj

    @staticmethod
    def _first_difference(a: list[tuple], b: list[tuple]) -> int | None:
        for i, (x, y) in enumerate(zip(a, b)):
            if len(x) != len(y) or not np.array_equal(x[0], y[0]) or x[1:] != y[1:]:
                return i
        return None

    def seeded(self):
        k = min(self.steps, 200)
        first = self._trajectory(self.env, self.seed, k)
        again = self._trajectory(self.env, self.seed, k)
        other = self._trajectory(self._make(), self.seed, k)
        for label, traj in (("the same instance", again), ("a new instance", other)):
            i = self._first_difference(first, traj)
            if i is not None:
                where = "the first observation" if i == 0 else f"step {i}"
                raise CheckFailure(f"reset(seed={self.seed}) in {label} diverges at {where}", SEED_FIX)
        return f"reset(seed) + {k} steps identical (same and new instance)", {"steps": k}

    def different_seeds(self):
        k = min(self.steps, 200)
        a = self._trajectory(self.env, self.seed, k)
        b = self._trajectory(self.env, self.other_seed, k)
        i = self._first_difference(a, b)
        if i is None:
            return (f"workers 0 and 1 get the same {k} steps (fine for a deterministic task; otherwise the "
                    "seed is ignored)", {"differ": False})
        return f"workers 0 and 1 (seeds {self.seed}, {self.other_seed}) differ from step {i}", \
            {"differ": True, "first_difference": i}

    # -- performance -----------------------------------------------------------------------------
    def performance(self):
        env = self.env
        rng = np.random.default_rng(self.seed)
        actions = rng.integers(env.n_actions, size=4096)
        env.reset(seed=self.seed)
        steps, start = 0, time.perf_counter()
        while True:
            for a in actions[:256]:
                env.step(int(a))
            steps += 256
            actions = np.roll(actions, 256)
            elapsed = time.perf_counter() - start
            if elapsed >= self.perf_seconds:
                break
        frames = steps * self.spec.frames_per_step
        fps = frames / elapsed
        text = f"{fps:,.0f} frames/s over {elapsed:.1f} s (floor {self.min_fps:,.0f})"
        values = {"frames_per_second": fps, "frames": frames, "seconds": elapsed, "floor": self.min_fps}
        if fps < self.min_fps:
            raise CheckFailure(text, f"stepping runs at {fps:,.0f} frames/s, below the floor of {self.min_fps:,.0f}: "
                                     "the environment would dominate training time; profile its step(), or pass "
                                     "--min-fps if this machine is slow", values)
        return text, values
