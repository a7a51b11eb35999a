"""A run's fully resolved configuration: what ``config.json`` holds (schema in README)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.envs import EnvError, EnvSettings, EnvSpec, resolve_env
from harness.seeds import seed_problem

SCHEMA_VERSION = 1
OPTIMIZERS = ("shared_rmsprop", "rmsprop", "momentum_sgd")
#: how the actor-learners' updates are scheduled (README "Schedules"): real asynchronous workers, one
#: per process; N workers on N modelled cores, in one process (engine.virtual); N environments in
#: lockstep against one θ, one combined update (engine.sync)
SCHEDULES = ("hogwild", "virtual", "sync")
#: how a segment's gradient is computed (README "The fast path"): the built-in networks' numpy forward
#: and backward passes reusing the acting pass's activations (harness.engine.fast), or autograd (the
#: reference, and what every other network and recurrent methods always use)
GRADIENTS = ("fast", "autograd")


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names what is allowed."""


@dataclass(frozen=True)
class EngineSettings:
    """What the engine owns: optimizer constants, clipping, target network, checkpoints."""

    grad_clip: float = 40.0  # global-norm clip of each segment's gradient (0 disables)
    rmsprop_alpha: float = 0.99
    rmsprop_eps: float = 0.1  # θ ← θ − η Δθ / sqrt(g + ε)
    momentum: float = 0.99  # momentum_sgd: m ← αm + (1−α)Δθ; θ ← θ − ηm
    checkpoint_seconds: float = 300.0  # 0 disables checkpoints
    stop_return: float | None = None  # stop early once the mean return of the last stop_window episodes reaches it
    stop_window: int = 50
    max_seconds: float | None = None  # stop (as done, stopped_early) this long after the first update
    gradient: str = "fast"  # "fast" (where it applies) or "autograd" (GRADIENTS)

    def __post_init__(self):
        if self.gradient not in GRADIENTS:
            raise ConfigError(f"engine setting gradient must be one of {', '.join(GRADIENTS)}, got {self.gradient!r}")


@dataclass(frozen=True)
class EvalSettings:
    """Evaluation of the shared model; runs after training, outside the timed part."""

    episodes: int = 10
    every_frames: int = 0  # snapshot θ every this many frames for later evaluation (0: final only)
    max_seconds: float = 600.0  # wall-clock cap on one evaluation point


@dataclass(frozen=True)
class RunConfig:
    algorithm: str
    env: str
    threads: int
    lr: float
    seed: int
    frames: int
    optimizer: str
    hyperparameters: dict[str, Any]
    env_spec: EnvSpec
    env_settings: EnvSettings = field(default_factory=EnvSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    env_modules: tuple[str, ...] = ()
    suite: str | None = None
    run_id: str | None = None
    #: the seed the run's randomness derives from: θ's initialisation, each worker's environment
    #: seed and exploration draws (engine.worker.worker_seeds), the evaluation episodes. A single
    #: run uses ``seed``; a sweep derives one per run from the suite name and run id
    #: (:func:`derive_run_seed`), so every run of a grid is its own experiment.
    run_seed: int | None = None
    schedule: str = "hogwild"
    #: the virtual schedule's time model (harness.timemodel), fixed before the run; None otherwise
    time_model: dict[str, Any] | None = None

    def __post_init__(self):
        if self.run_seed is None:
            object.__setattr__(self, "run_seed", int(self.seed))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "algorithm": self.algorithm,
            "env": self.env,
            "env_id": self.env_spec.env_id,
            "game": self.env_spec.game,
            "is_atari": self.env_spec.is_atari,
            "threads": self.threads,
            "lr": self.lr,
            "seed": self.seed,
            "run_seed": self.run_seed,
            "frames": self.frames,
            "optimizer": self.optimizer,
            "hyperparameters": dict(self.hyperparameters),
            "env_settings": self.env_settings.to_dict() | {"frames_per_step": self.env_spec.frames_per_step},
            "engine": dataclasses.asdict(self.engine),
            "eval": dataclasses.asdict(self.eval),
            "env_modules": list(self.env_modules),
            "suite": self.suite,
            "run_id": self.run_id,
            "schedule": self.schedule,
            "time_model": None if self.time_model is None else dict(self.time_model),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        env_settings = {k: v for k, v in d.get("env_settings", {}).items() if k != "frames_per_step"}
        return make_run_config(
            algorithm=d["algorithm"],
            env=d["env"],
            threads=d["threads"],
            lr=d["lr"],
            seed=d["seed"],
            frames=d["frames"],
            optimizer=d.get("optimizer", "shared_rmsprop"),
            hyperparameters=d.get("hyperparameters", {}),
            env_settings=env_settings,
            engine=d.get("engine", {}),
            eval=d.get("eval", {}),
            env_modules=tuple(d.get("env_modules", ())),
            suite=d.get("suite"),
            run_id=d.get("run_id"),
            run_seed=d.get("run_seed"),
            schedule=d.get("schedule") or "hogwild",
            time_model=d.get("time_model"),
        )

    @classmethod
    def load(cls, path: Path) -> RunConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _dataclass_from(cls: type, values: dict[str, Any], what: str):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown {what} setting(s) {', '.join(unknown)}; allowed: {', '.join(sorted(names))}")
    return cls(**values)


def observation_kind(spec: EnvSpec, env_settings: EnvSettings) -> str:
    """``"image"`` (Atari) or ``"vector"``, without stepping the environment."""
    if spec.is_atari:
        return "image"
    from harness.envs import gym_make

    env = gym_make(spec.env_id)  # EnvError (one line) when it cannot be built
    try:
        return "image" if len(env.observation_space.shape or ()) == 3 else "vector"
    finally:
        env.close()


def make_run_config(
    *,
    algorithm: str,
    env: str,
    threads: int = 1,
    lr: float | None = None,
    seed: int = 0,
    frames: int | float = 1_000_000,
    optimizer: str = "shared_rmsprop",
    hyperparameters: dict[str, Any] | None = None,
    env_settings: dict[str, Any] | None = None,
    engine: dict[str, Any] | None = None,
    eval: dict[str, Any] | None = None,
    env_modules: tuple[str, ...] = (),
    suite: str | None = None,
    run_id: str | None = None,
    run_seed: int | None = None,
    schedule: str = "hogwild",
    time_model: dict[str, Any] | str | Path | None = None,
) -> RunConfig:
    """Validate every value and fill in defaults. Raises :class:`ConfigError` with one line."""
    from harness.plugins import AlgorithmError, load_algorithm  # imports torch: only when a run is configured

    try:
        algo_cls = load_algorithm(algorithm)
        spec = resolve_env(env, tuple(env_modules))
    except (AlgorithmError, EnvError) as exc:
        raise ConfigError(str(exc)) from None
    if not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads must be an integer >= 1, got {threads!r}")
    problem = seed_problem(seed)
    if problem:
        raise ConfigError(f"seed: {problem}")
    if frames is None or float(frames) <= 0 or float(frames) != int(float(frames)):
        raise ConfigError(f"frames must be a positive whole number of emulator frames, got {frames!r}")
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {optimizer!r}; allowed: {', '.join(OPTIMIZERS)}")
    env_s = _dataclass_from(EnvSettings, env_settings or {}, "environment")
    engine_s = _dataclass_from(EngineSettings, engine or {}, "engine")
    eval_s = _dataclass_from(EvalSettings, eval or {}, "eval")
    try:
        kind = observation_kind(spec, env_s)
    except EnvError as exc:
        raise ConfigError(str(exc)) from None
    try:
        hp = algo_cls.make_hyperparameters(kind, hyperparameters)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    if lr is None:
        lr = algo_cls.default_lr[kind]
    if not lr > 0:
        raise ConfigError(f"learning rate must be > 0, got {lr!r}")
    if schedule not in SCHEDULES:
        raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    seed_of_run = int(seed) if run_seed is None else int(run_seed)
    model = _time_model(schedule, time_model, algorithm, spec, seed_of_run, threads, engine_s.gradient)
    return RunConfig(
        algorithm=algorithm,
        env=env,
        threads=threads,
        lr=float(lr),
        seed=int(seed),
        frames=int(float(frames)),
        optimizer=optimizer,
        hyperparameters=dataclasses.asdict(hp),
        env_spec=spec,
        env_settings=env_s,
        engine=engine_s,
        eval=eval_s,
        env_modules=tuple(env_modules),
        suite=suite,
        run_id=run_id,
        run_seed=None if run_seed is None else int(run_seed),
        schedule=schedule,
        time_model=model,
    )


def _time_model(schedule: str, model, algorithm: str, spec: EnvSpec, run_seed: int,
                threads: int, gradient: str = "fast") -> dict[str, Any] | None:
    """The virtual schedule's time model: given (a dict, as config.json holds it), from a ``harness
    bench`` record (a path), or the defaults for the kind of task and method."""
    from harness import timemodel

    if schedule != "virtual":
        if model is not None:
            raise ConfigError(f"a time model applies to schedule virtual only, not {schedule}: drop it or use "
                              "--schedule virtual")
        return None
    try:
        if isinstance(model, dict):
            return timemodel.validate(model, threads)
        if model is not None:
            return timemodel.from_bench(model, algorithm, spec.frames_per_step, run_seed, gradient)
        return timemodel.default(timemodel.task_kind(spec.is_atari, _observation_shape(spec)), algorithm, run_seed)
    except timemodel.TimeModelError as exc:
        raise ConfigError(str(exc)) from None


def _observation_shape(spec: EnvSpec) -> tuple[int, ...]:
    if spec.is_atari:
        return (4, 84, 84)
    from harness.envs import gym_make

    env = gym_make(spec.env_id)  # EnvError (one line) when it cannot be built
    try:
        return tuple(env.observation_space.shape or ())
    finally:
        env.close()


#: What makes two configurations the same run (everything that changes the result). Evaluation,
#: checkpoint and stopping settings may change between a run and its resumption.
IDENTITY_KEYS = ("algorithm", "env_id", "threads", "lr", "seed", "run_seed", "frames", "optimizer",
                 "hyperparameters", "env_settings", "schedule", "time_model")


def identity_differences(on_disk: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """What differs between a run folder's ``config.json`` and the configuration of a new command,
    one ``key: <disk> on disk, <wanted> now`` item per differing key (empty: the same run).

    Mappings (hyperparameters, env_settings) are compared on the keys both sides have, so a folder
    written before a new setting existed (with its default) still counts as the same run; a folder
    from before ``run_seed`` existed was seeded with ``seed``."""
    def norm(obj: Any) -> Any:
        return json.loads(json.dumps(obj, default=str))

    have = {k: norm(on_disk.get(k)) for k in IDENTITY_KEYS}
    want = {k: norm(wanted.get(k)) for k in IDENTITY_KEYS}
    if have["run_seed"] is None:
        have["run_seed"] = have["seed"]
    if have["schedule"] is None:  # written before schedules existed: a Hogwild run
        have["schedule"] = "hogwild"
    out = []
    for key in IDENTITY_KEYS:
        w, h = want[key], have[key]
        if isinstance(w, dict) and isinstance(h, dict):
            out += [f"{key}.{k}: {h[k]!r} on disk, {w[k]!r} now" for k in sorted(set(w) & set(h)) if w[k] != h[k]]
        elif w != h:
            out.append(f"{key}: {h!r} on disk, {w!r} now")
    return out


def derive_run_seed(suite: str, run_id: str) -> int:
    """The run seed of one run of a sweep: a stable hash of the suite name and the run id (which
    names the run's place in the grid: algorithm, game, threads, learning rate, replicate, optimizer).
    The same suite always gives a run the same seed (so resuming and rerunning map to the same
    experiment), and no two runs of a grid share one. 62 bits: exact in JSON, pandas and torch."""
    import hashlib

    digest = hashlib.sha256(f"{suite}\0{run_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 2
