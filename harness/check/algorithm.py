"""``harness check algorithm``: a conformance kit for algorithms (built-in or plug-in).

In the manner of PettingZoo's ``api_test``, ``seed_test`` and ``performance_benchmark``, three
stages, each a list of checks that pass, fail (with what to fix) or are skipped because a check
they depend on failed:

``api``
    the contract of :mod:`algorithms.base` is met; the network builds for image ([4, 84, 84] uint8)
    and vector observations; ``act``/``act_eval`` return valid actions for random states; the loss
    is a finite scalar with a non-zero gradient; a short real run with 2 asynchronous workers
    changes the shared parameters θ, and so does one of the synchronous schedule (2 environments in
    lockstep, one combined update): every schedule works for a plug-in without code of its own.
``seed``
    the network's initialisation follows ``torch.manual_seed``; ``act`` draws randomness only from
    the generator it is given; a single-worker run repeated with the same seed gives identical
    episodes (and θ), and a different seed gives different ones; two runs of the virtual schedule
    (2 actor-learners in one process) with the same seed give identical episodes and θ.
``performance``
    frames per second of one worker (act + loss + backward + optimizer step, in this process)
    against a floor.

The training checks run the real engine (:func:`harness.engine.train`) on ``env`` (CartPole-v1 by
default) with a budget of ``frames`` emulator frames per run, in a temporary folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import tempfile
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from algorithms.base import forward
from harness.check.defaults import ALGORITHM_MIN_FPS as DEFAULT_MIN_FPS
from harness.check.defaults import ALGORITHM_STAGES as STAGES
from harness.check.defaults import DEFAULT_ENV, DEFAULT_FRAMES
from harness.check.report import CheckReport, CheckRow, describe_exception
from harness.check.runner import CheckFailure, Runner

IMAGE_SHAPE, IMAGE_ACTIONS = (4, 84, 84), 6  # the Atari protocol's observations; Pong's 6 actions
VECTOR_SHAPE, VECTOR_ACTIONS = (4,), 3  # three actions, so nothing binary slips through

SEED_ADVICE = (
    "draw every random number from the np.random.Generator passed to init_worker/act/act_eval, or "
    "from torch's global RNG (the engine seeds both from the run seed); never from "
    "np.random.default_rng() without a seed, the random module, or np.random.* functions"
)
GRADIENT_ADVICE = (
    "return a loss computed from the outputs of net(...) (no .detach(), no torch.no_grad(), not "
    "multiplied by 0): the engine applies only the gradient of the loss you return"
)


def observation_space(kind: str):
    import gymnasium as gym

    if kind == "image":
        return gym.spaces.Box(0, 255, IMAGE_SHAPE, np.uint8)
    return gym.spaces.Box(-np.inf, np.inf, VECTOR_SHAPE, np.float32)


def _n_actions(kind: str) -> int:
    return IMAGE_ACTIONS if kind == "image" else VECTOR_ACTIONS


def random_obs(kind: str, rng: np.random.Generator, n: int) -> torch.Tensor:
    """``n`` random states as the engine feeds them: uint8 images or float32 vectors."""
    if kind == "image":
        return torch.from_numpy(rng.integers(0, 256, (n, *IMAGE_SHAPE), dtype=np.uint8))
    return torch.from_numpy((rng.standard_normal((n, *VECTOR_SHAPE)) * 2).astype(np.float32))


def _tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    return []


def _shapes(out: Any) -> str:
    ts = _tensors(out)
    text = ", ".join("[" + ", ".join(str(d) for d in t.shape) + "]" for t in ts)
    return f"({text})" if len(ts) > 1 else text


def _flat(net: nn.Module) -> torch.Tensor:
    ps = [p.detach().reshape(-1).float() for p in net.parameters()]
    return torch.cat(ps) if ps else torch.zeros(0)


@contextlib.contextmanager
def _one_torch_thread():
    """Workers run with one torch thread; measure (and keep the caller's setting) the same way."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _valid_action(a: Any, n: int, where: str) -> int:
    if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)):
        raise CheckFailure(
            f"{where} returned {a!r} of type {type(a).__name__}, not an int",
            f"{where.split('(')[0]}() must return a Python int in [0, n_actions), e.g. int(q.argmax())",
        )
    if not 0 <= int(a) < n:
        raise CheckFailure(
            f"{where} returned action {int(a)} for a state with {n} actions",
            f"{where.split('(')[0]}() must return an action in [0, n_actions) = [0, {n}); "
            f"got {int(a)} (actions are 0-based indices into the network's n_actions outputs)",
        )
    return int(a)


def _algorithm_name(algorithm: str | type) -> str:
    if isinstance(algorithm, str):
        return algorithm
    module, qual = getattr(algorithm, "__module__", ""), getattr(algorithm, "__qualname__", "")
    if module == "__main__" or "<locals>" in qual or not module:
        raise ValueError(
            f"{algorithm!r} cannot be imported by worker processes; define it in an importable module "
            "and pass 'module:Class'"
        )
    return f"{module}:{qual}"


def check_algorithm(
    algorithm: str | type,
    *,
    env: str = DEFAULT_ENV,
    env_modules: Sequence[str] = (),
    frames: int = DEFAULT_FRAMES,
    seed: int = 0,
    hyperparameters: dict[str, Any] | None = None,
    min_fps: float | None = None,
    perf_seconds: float = 2.0,
    stages: Iterable[str] = STAGES,
    workdir: str | Path | None = None,
    progress: Callable[[CheckRow], None] | None = None,
) -> CheckReport:
    """Check an algorithm given by registered name, entry-point name, ``module:Class`` or class.

    ``env``/``env_modules``: the environment of the training checks; ``frames``: the budget of each
    training run (3 single-worker runs and one 2-worker run); ``min_fps``: the performance floor
    (default: 200 frames/s for vector observations, 50 for images); ``stages``: a subset of
    ``("api", "seed", "performance")``; ``workdir``: keep the run folders there (default: a temporary
    folder, deleted); ``progress``: called with each row as it finishes.

    The training runs happen one after another, never in threads of this process: the engine seeds
    torch's global RNG in the calling process before building θ, so concurrent runs would draw each
    other's initial weights.

    Raises :class:`harness.plugins.AlgorithmError` (a ``ValueError``) when the name does not resolve,
    :class:`harness.envs.EnvError` when ``env`` does not, and ``ValueError`` for an unknown
    hyperparameter, stage or budget or a seed outside 0 <= seed < 2**32; every problem of the algorithm
    itself is a failed row of the returned :class:`CheckReport`.
    """
    from harness.config import observation_kind
    from harness.envs import EnvSettings, resolve_env
    from harness.plugins import AlgorithmError, load_algorithm
    from harness.seeds import check_seed

    name = _algorithm_name(algorithm)
    stages = tuple(stages)
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise ValueError(f"unknown check stage(s) {', '.join(unknown)}; allowed: {', '.join(STAGES)}")
    if int(frames) <= 0 or perf_seconds <= 0:
        raise ValueError(f"frames and perf_seconds must be > 0, got {frames!r} and {perf_seconds!r}")
    check_seed(seed)
    try:
        cls = load_algorithm(name)
    except AlgorithmError:
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. a SyntaxError in the plug-in's module
        raise AlgorithmError(f"cannot import algorithm {name!r}: {describe_exception(exc)}") from None
    hp_cls = getattr(cls, "Hyperparameters", None)
    if hyperparameters and isinstance(hp_cls, type) and dataclasses.is_dataclass(hp_cls):
        names = {f.name for f in dataclasses.fields(hp_cls)}
        extra = sorted(set(hyperparameters) - names)
        if extra:
            raise ValueError(f"unknown hyperparameter(s) {', '.join(extra)} for {name}; "
                             f"allowed: {', '.join(sorted(names))}")
    spec = resolve_env(env, tuple(env_modules))
    env_kind = observation_kind(spec, EnvSettings())
    floor = float(min_fps if min_fps is not None else DEFAULT_MIN_FPS[env_kind])
    report = CheckReport("algorithm", name, {
        "env": env, "env_modules": list(env_modules), "frames": int(frames), "seed": int(seed),
        "hyperparameters": dict(hyperparameters or {}), "min_fps": floor, "perf_seconds": perf_seconds,
        "stages": list(stages),
    })
    ctx = _AlgorithmCheck(name, cls, env, tuple(env_modules), env_kind, int(frames), int(seed),
                          dict(hyperparameters or {}), floor, float(perf_seconds))
    runner = Runner(report, stages, progress)
    with contextlib.ExitStack() as stack:
        if workdir is None:
            ctx.workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="harness-check-")))
        else:
            ctx.workdir = Path(workdir)
            ctx.workdir.mkdir(parents=True, exist_ok=True)
        stack.enter_context(torch.random.fork_rng())  # leave the caller's torch RNG as it was
        stack.enter_context(_one_torch_thread())
        ctx.run(runner)
    return report


@dataclasses.dataclass
class _AlgorithmCheck:
    name: str
    cls: type
    env: str
    env_modules: tuple[str, ...]
    env_kind: str
    frames: int
    seed: int
    overrides: dict[str, Any]
    min_fps: float
    perf_seconds: float
    workdir: Path = Path(".")
    nets: dict[str, nn.Module] = dataclasses.field(default_factory=dict)
    grads: dict[str, list] = dataclasses.field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    # -- the plan ---------------------------------------------------------------------------
    def run(self, r: Runner) -> None:
        # the in-process API checks are cheap prerequisites of every stage: they always run
        r.run("api", "contract", self.contract, always=True)
        for kind in ("image", "vector"):
            r.run("api", f"network builds ({kind})", lambda k=kind: self.network(k), ("contract",), always=True,
                  fix=f"build_network(obs_space, n_actions) must return an nn.Module whose forward accepts a "
                      f"batch of {kind} observations ({self._obs_text(kind)})")
            r.run("api", f"actions valid ({kind})", lambda k=kind: self.actions(k), (f"network builds ({kind})",),
                  always=True,
                  fix="act(out, frames, rng) and act_eval(out, rng) must accept net(obs[None]) and return an int action")
            r.run("api", f"loss finite ({kind})", lambda k=kind: self.loss(k), (f"network builds ({kind})",),
                  always=True,
                  fix="loss(net, target_net, segment) must return (scalar tensor, dict of floats) for any segment")
            r.run("api", f"loss has a gradient ({kind})", lambda k=kind: self.gradient(k), (f"loss finite ({kind})",),
                  always=True)
        k = self.env_kind
        training = ("contract", f"network builds ({k})", f"actions valid ({k})", f"loss finite ({k})")
        r.run("api", "fast gradient equals the loss's", self.fast_gradient, (f"loss finite ({k})",),
              fix="loss_gradient(out, target, seg) must return loss's value and its gradient with respect to the "
                  "network's outputs (docs/PLUGINS.md, 'The fast path: opting in')")
        r.run("api", "async updates change θ", self.async_updates, training)
        r.run("api", "sync updates change θ", self.sync_updates, training)
        r.run("seed", "network init follows the seed", self.init_seeded, (f"network builds ({k})",))
        r.run("seed", "act draws only from its rng", self.act_seeded, (f"actions valid ({k})",))
        r.run("seed", "same seed, same episodes", self.same_seed, training)
        r.run("seed", "different seed, different episodes", self.different_seed, training)
        r.run("seed", "virtual schedule repeats exactly", self.virtual_repeats, training)
        r.run("performance", "frames/s (1 worker)", self.performance, training)

    # -- helpers ----------------------------------------------------------------------------
    @staticmethod
    def _obs_text(kind: str) -> str:
        return "[B, 4, 84, 84] uint8" if kind == "image" else "[B, 4] float32"

    def _algo(self, kind: str):
        return self.cls(self.cls.make_hyperparameters(kind, self.overrides))

    def _build(self, algo, kind: str, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return algo.build_network(observation_space(kind), _n_actions(kind))

    def _segment(self, algo, net, kind: str, n: int, terminal: bool, rng: np.random.Generator):
        from algorithms.base import Segment

        obs = random_obs(kind, rng, n + 1)
        seg = Segment(
            obs=obs[:n], actions=torch.from_numpy(rng.integers(0, _n_actions(kind), n)).long(),
            rewards=torch.from_numpy(rng.uniform(-1, 1, n).astype(np.float32)), next_obs=obs[n:], terminal=terminal,
            state=algo.initial_state(net, 1) if algo.recurrent else None,  # recurrent: the episode's start
        )
        if algo.needs_next_action and not terminal:
            with torch.no_grad():
                seg.next_action = _valid_action(algo.act(net(seg.next_obs), 0, rng), _n_actions(kind), "act(...)")
        return seg

    def _target(self, algo, net, kind: str):
        if not algo.uses_target_network:
            return None
        target = self._build(algo, kind, self.seed + 1)
        target.load_state_dict(net.state_dict())
        target.requires_grad_(False)
        return target

    def _config(self, threads: int, seed: int, schedule: str = "hogwild"):
        from harness.config import make_run_config

        return make_run_config(
            algorithm=self.name, env=self.env, threads=threads, seed=seed, frames=self.frames,
            hyperparameters=self.overrides, env_modules=self.env_modules,
            eval={"episodes": 1, "max_seconds": 0.0}, engine={"checkpoint_seconds": 0}, schedule=schedule,
        )

    RUNS = {"async": (2, "hogwild"), "seed-a": (1, "hogwild"), "seed-b": (1, "hogwild"), "seed-c": (1, "hogwild"),
            "sync": (2, "sync"), "virtual-a": (2, "virtual"), "virtual-b": (2, "virtual")}  # label -> workers, schedule

    def _run_seed(self, label: str) -> int:
        from harness.seeds import SEED_LIMIT

        return (self.seed + 1) % SEED_LIMIT if label == "seed-c" else self.seed  # another seed, in range

    def _train(self, label: str) -> dict[str, Any]:
        """A real run (once per label); its result, episodes and final θ, or CheckFailure."""
        if label not in self.runs:
            try:
                self.runs[label] = self._train_once(label)
            except CheckFailure as exc:
                self.runs[label] = {"failure": exc}
        if "failure" in self.runs[label]:
            raise self.runs[label]["failure"]
        return self.runs[label]

    def _train_once(self, label: str) -> dict[str, Any]:
        from harness.engine import train

        (threads, schedule), seed = self.RUNS[label], self._run_seed(label)
        cfg = self._config(threads, seed, schedule)
        out = self.workdir / label
        result = train(cfg, out, resume=False)
        if result.state == "interrupted":
            raise KeyboardInterrupt
        status = json.loads((out / "status.json").read_text())
        if result.state != "done":
            tb = status.get("traceback") or ""
            values = {"state": result.state, "error": result.error, "traceback": tb}
            where = (f"the {threads}-worker run{'' if schedule == 'hogwild' else f' ({schedule} schedule)'} "
                     f"(seed {seed}) ended '{result.state}': {result.error}")
            if result.state == "diverged":
                fix = ("the loss or its gradient became non-finite during training; make the loss finite for "
                       "every segment the engine can produce (log of 0, division by 0, unbounded values)")
            elif "unknown algorithm" in (result.error or "") or "cannot import algorithm" in (result.error or ""):
                fix = ("worker processes could not load the algorithm by its name: name it by import path "
                       "(my_pkg.module:MyAlgo) or register it through the 'harness.algorithms' entry point; "
                       "a class registered with @register in a module the workers never import is invisible to them")
            else:
                fix = f"a worker raised during training; the worker's traceback ends: {_tail(tb)}"
            raise CheckFailure(where, fix, values)
        episodes = _read_episodes(out / "episodes.csv")
        ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
        return {"result": result, "episodes": episodes, "params": ckpt["params"], "status": status}

    # -- api ---------------------------------------------------------------------------------
    def contract(self):
        from algorithms import SHIPPED
        from algorithms.base import Algorithm

        cls, problems = self.cls, []
        if not isinstance(getattr(cls, "name", None), str) or not cls.name:
            problems.append("set a non-empty class attribute `name`")
        hp_cls = getattr(cls, "Hyperparameters", None)
        fields: list[str] = []
        if not (isinstance(hp_cls, type) and dataclasses.is_dataclass(hp_cls)):
            problems.append("`Hyperparameters` must be a @dataclass")
        else:
            fields = [f.name for f in dataclasses.fields(hp_cls)]
            for kind in ("image", "vector"):
                try:
                    hp = cls.make_hyperparameters(kind, self.overrides)
                except (TypeError, ValueError) as exc:
                    hint = " (every hyperparameter needs a default)" if "required" in str(exc) else ""
                    problems.append(f"make_hyperparameters() raised {exc}{hint}")
                    continue
                try:
                    json.dumps(dataclasses.asdict(hp))
                except TypeError as exc:
                    problems.append(f"hyperparameters must be JSON numbers, strings, booleans or lists (they are "
                                    f"written to config.json): {exc}")
                try:
                    cls(hp)
                except Exception as exc:  # noqa: BLE001
                    problems.append(f"{cls.__qualname__}(hp) raised {type(exc).__name__}: {exc}")
            t_max = getattr(hp_cls, "t_max", 5) if "t_max" in fields else 5
            if "t_max" in fields and not (isinstance(t_max, int) and t_max >= 1):
                problems.append(f"t_max must be an int >= 1, got {t_max!r}")
        lr = getattr(cls, "default_lr", None)
        if not (isinstance(lr, dict) and all(isinstance(lr.get(k), (int, float)) and lr[k] > 0 for k in ("image", "vector"))):
            problems.append(f"`default_lr` must map 'image' and 'vector' to learning rates > 0, got {lr!r}")
        for flag in ("uses_target_network", "needs_next_action", "recurrent"):
            if not isinstance(getattr(cls, flag, None), bool):
                problems.append(f"`{flag}` must be True or False")
        for method in ("build_network", "act", "act_eval", "loss"):
            if getattr(cls, method, None) is getattr(Algorithm, method):
                problems.append(f"implement `{method}`")
        plugin = ":" in self.name or self.name in SHIPPED or self.name in {ep.name for ep in entry_points(group="harness.algorithms")}
        if not plugin:
            problems.append(f"{self.name!r} is registered only in this process (@register); worker processes "
                            "cannot find it: use the import path module:Class or the 'harness.algorithms' entry point")
        problems = list(dict.fromkeys(problems))  # the same problem for both observation kinds once
        if problems:
            raise CheckFailure("; ".join(problems), "; ".join(problems))
        flags = [f for f in ("uses_target_network", "needs_next_action") if getattr(cls, f)]
        return (f"{cls.__module__}:{cls.__qualname__}, {len(fields)} hyperparameters"
                + (f", {', '.join(flags)}" if flags else ""), {"hyperparameters": fields})

    def network(self, kind: str):
        algo = self._algo(kind)
        net = self._build(algo, kind, self.seed)
        if not isinstance(net, nn.Module):
            raise CheckFailure(f"build_network returned {type(net).__name__}",
                               "build_network must return a torch.nn.Module")
        n_params = sum(p.numel() for p in net.parameters())
        if n_params == 0:
            raise CheckFailure("the network has no parameters",
                               "the network must have trainable parameters (nn.Parameter / nn.Linear ...) for the engine to share")
        if not all(p.is_floating_point() for p in net.parameters()):
            raise CheckFailure("the network has non-float parameters", "make every parameter a float tensor")
        if not torch.isfinite(_flat(net)).all():
            raise CheckFailure("initial parameters are not finite", "initialise every parameter to finite values")
        rng = np.random.default_rng(self.seed)
        with torch.no_grad():
            out1, _ = forward(algo, net, random_obs(kind, rng, 1))
            out5, _ = forward(algo, net, random_obs(kind, rng, 5))
        for out, b in ((out1, 1), (out5, 5)):
            ts = _tensors(out)
            if not ts:
                raise CheckFailure(f"forward returned {type(out).__name__}, no tensors",
                                   "the network's forward must return a tensor or a tuple/dict of tensors")
            if not all(torch.isfinite(t).all() for t in ts if t.is_floating_point()):
                raise CheckFailure(f"forward on a batch of {b} random states gave non-finite outputs",
                                   "make the forward pass finite for any observation (scale uint8 images to [0, 1])")
        self.nets[kind] = net
        return (f"{n_params:,} parameters; batch of 5 {self._obs_text(kind).split(' ', 4)[-1]} "
                f"-> {_shapes(out5)}", {"parameters": n_params})

    def actions(self, kind: str):
        algo, net, n = self._algo(kind), self.nets[kind], _n_actions(kind)
        rng = np.random.default_rng(self.seed)
        algo.init_worker(0, rng)
        states = random_obs(kind, rng, 40 if kind == "vector" else 10)
        seen, seen_eval = set(), set()
        claims_numpy = bool(getattr(algo, "act_takes_numpy", False)) and not algo.recurrent
        with torch.no_grad():
            outs = [forward(algo, net, o.unsqueeze(0))[0] for o in states]
            for out in outs:
                for frames in (0, 100_000, 50_000_000):
                    seen.add(_valid_action(algo.act(out, frames, rng), n, f"act(out, frames={frames}, rng)"))
                seen_eval.add(_valid_action(algo.act_eval(out, rng), n, "act_eval(out, rng)"))
            # numpy outputs are compared only where act is a function of its rng (the seed checks test that)
            as_numpy = claims_numpy and self._acts_by_its_rng(algo, outs)
            if as_numpy:
                for k, out in enumerate(outs):
                    for frames in (0, 100_000, 50_000_000):
                        self._same_from_numpy(algo, out, frames, k)
        numpy_text = "; from numpy outputs the same actions" if as_numpy else ""
        return (f"{len(states)} random states, {n} actions: act chose {sorted(seen)}, act_eval {sorted(seen_eval)}"
                f"{numpy_text}", {"act": sorted(seen), "act_eval": sorted(seen_eval), "act_takes_numpy": claims_numpy,
                                  "numpy_outputs_compared": as_numpy})

    @staticmethod
    def _acts_by_its_rng(algo, outs) -> bool:
        """Whether act chooses the same action from the same output and identically seeded rngs."""
        for k, out in enumerate(outs[:10]):
            for frames in (0, 50_000_000):
                if len({algo.act(out, frames, np.random.default_rng(k)) for _ in range(3)}) > 1:
                    return False
        return True

    @staticmethod
    def _same_from_numpy(algo, out, frames: int, k: int) -> None:
        """``act_takes_numpy``: act chooses from the outputs as numpy arrays what it chooses from the
        tensors, with the same random draws (the fast path hands it numpy)."""
        arrays = out.numpy() if isinstance(out, torch.Tensor) else type(out)(t.numpy() for t in out)
        r1, r2 = np.random.default_rng(k), np.random.default_rng(k)
        try:
            a_np = algo.act(arrays, frames, r1)
        except Exception as exc:  # noqa: BLE001 - reported as the check's failure
            raise CheckFailure(f"act_takes_numpy is set, but act(out, frames={frames}, rng) raised "
                               f"{type(exc).__name__}: {exc} on numpy outputs",
                               "make act accept numpy arrays in the layout the network returns, or leave "
                               "act_takes_numpy False") from None
        a_t = algo.act(out, frames, r2)
        if a_np != a_t or r1.random() != r2.random():
            raise CheckFailure(f"act_takes_numpy is set, but act(out, frames={frames}, rng) chose {a_np} from numpy "
                               f"outputs and {a_t} from the same tensors (or took other random draws)",
                               "act must choose the same action from numpy arrays as from tensors, with the same "
                               "draws, or leave act_takes_numpy False")

    def loss(self, kind: str):
        algo = self._algo(kind)
        net = self.nets[kind]
        rng = np.random.default_rng(self.seed + 7)
        algo.init_worker(0, rng)
        target = self._target(algo, net, kind)
        t_max = int(getattr(algo.hp, "t_max", 5))
        values, grads = [], []
        for n, terminal in ((max(1, min(t_max, 5)), False), (1, True)):
            seg = self._segment(algo, net, kind, n, terminal, rng)
            what = f"a {n}-step {'terminal' if terminal else 'non-terminal'} segment"
            out = algo.loss(net, target, seg)
            if not (isinstance(out, tuple) and len(out) == 2):
                raise CheckFailure(f"loss returned {type(out).__name__} on {what}, not (loss, stats)",
                                   "loss(...) must return a tuple (loss tensor, dict of float statistics)")
            loss, stats = out
            if not isinstance(loss, torch.Tensor):
                raise CheckFailure(f"loss returned a {type(loss).__name__} as the loss on {what}",
                                   "the loss must be a torch.Tensor that depends on the network's outputs")
            if loss.numel() != 1:
                raise CheckFailure(f"the loss has shape {list(loss.shape)} on {what}, not a scalar",
                                   "reduce the loss to a scalar (sum over the segment, as the paper accumulates)")
            value = float(loss.detach())
            if not math.isfinite(value):
                raise CheckFailure(f"the loss is {value} on {what} of random states",
                                   "the loss must be finite for every segment: look for log(0), 0/0, inf*0 or NaN "
                                   "constants; the engine stops a run as 'diverged' at the first non-finite loss")
            if not isinstance(stats, dict):
                raise CheckFailure(f"stats is a {type(stats).__name__}, not a dict",
                                   "return statistics as a dict of floats (may be empty)")
            bad = [k for k, v in stats.items() if not isinstance(v, (int, float, np.number))
                   and not (isinstance(v, torch.Tensor) and v.numel() == 1)]
            if bad:
                raise CheckFailure(f"stats[{bad[0]!r}] is not a number",
                                   "each statistic must be a float (use float(x.detach()))")
            if loss.requires_grad:
                net.zero_grad(set_to_none=True)
                loss.backward()
                grads.append([None if p.grad is None else p.grad.detach().clone() for p in net.parameters()])
            else:
                grads.append([None for _ in net.parameters()])
            values.append(value)
        net.zero_grad(set_to_none=True)
        self.grads[kind] = grads
        return (f"scalar, finite: {values[0]:.4g} ({max(1, min(t_max, 5))} steps), {values[1]:.4g} (1 step, terminal)",
                {"losses": values})

    def gradient(self, kind: str):
        norms = []
        for grads in self.grads[kind]:
            gs = [g for g in grads if g is not None]
            if any(not torch.isfinite(g).all() for g in gs):
                raise CheckFailure("the loss has a non-finite gradient",
                                   "make the loss differentiable with finite gradients (e.g. clamp before log/sqrt)")
            norms.append(float(torch.sqrt(sum((g.double() ** 2).sum() for g in gs))) if gs else 0.0)
        n_tensors = len(self.grads[kind][0])
        reached = sum(1 for g in self.grads[kind][0] if g is not None and bool((g != 0).any()))
        if max(norms) == 0.0:
            raise CheckFailure("the gradient of the loss is zero for every parameter (θ would never change)",
                               GRADIENT_ADVICE, {"grad_norms": norms})
        return (f"|∇θ| = {norms[0]:.3g}; {reached} of {n_tensors} parameter tensors get a gradient",
                {"grad_norms": norms, "tensors_with_gradient": reached})

    def fast_gradient(self):
        """An algorithm that opts into the fast path (``loss_gradient`` and a built-in network): the fast
        gradient equals autograd's gradient of ``loss`` in float64 on random segments of the run's kind."""
        import copy

        from harness.engine.fast import fast_learner, supports
        from harness.engine.shared import attach_flat_grad, flatten_into
        from harness.engine.worker import compute_gradient

        kind = self.env_kind
        algo = self._algo(kind)
        if not supports(algo):
            return ("not opted in (no loss_gradient, or recurrent): trained through autograd of loss",
                    {"fast_path": False})
        net = self._build(algo, kind, self.seed)
        flatten_into(net)
        grad = attach_flat_grad(net)
        target = self._target(algo, net, kind)
        fnet, ftarget = fast_learner(algo, net, target)
        if fnet is None:
            return ("loss_gradient given, but the network is not a built-in QNetwork or ActorCriticNetwork: "
                    "trained through autograd of loss", {"fast_path": False})
        net64 = copy.deepcopy(net).double()
        grad64 = attach_flat_grad(net64)
        target64 = None if target is None else copy.deepcopy(target).double()
        rng = np.random.default_rng(self.seed)
        worst = 0.0
        for n, terminal in ((5, False), (3, True), (1, False)):
            seg = self._segment(algo, net, kind, n, terminal, rng)
            compute_gradient(algo, fnet, ftarget, seg, grad, 0.0, "fast path")
            compute_gradient(algo, net64, target64, seg, grad64, 0.0, "autograd")
            norm = float(torch.linalg.vector_norm(grad64))
            worst = max(worst, float(torch.linalg.vector_norm(grad.double() - grad64)) / max(norm, 1e-300))
        values = {"fast_path": True, "relative_error": worst}
        if not worst <= 1e-5:
            raise CheckFailure(f"the fast path's gradient differs from autograd's gradient of loss: relative "
                               f"error {worst:.2e} (at most 1e-5)",
                               "loss_gradient must return loss's value and its gradient with respect to the network's "
                               "outputs (docs/PLUGINS.md, 'The fast path: opting in'); or remove it", values)
        return f"equals autograd of loss (float64) to {worst:.1e}", values

    def async_updates(self):
        theta0 = self._theta0()
        run = self._train("async")
        theta = run["params"]
        frames, fps = run["result"].frames, run["status"].get("frames_per_second") or 0.0
        workers = sorted({int(e[0]) for e in run["episodes"]})
        base = {"frames": frames, "frames_per_second": fps, "workers_with_episodes": workers}
        if theta.shape != theta0.shape:
            raise CheckFailure(f"θ has {theta.numel()} elements, a fresh network {theta0.numel()}",
                               "build_network must build the same architecture every time for the same spaces", base)
        if not torch.isfinite(theta).all():
            raise CheckFailure(f"θ is not finite after {frames:,} frames", GRADIENT_ADVICE, base)
        delta = (theta - theta0).abs()
        max_delta = float(delta.max()) if delta.numel() else 0.0
        changed = float((delta > 0).float().mean()) if delta.numel() else 0.0
        values = base | {"max_abs_delta": max_delta, "fraction_changed": changed}
        if max_delta == 0.0:
            raise CheckFailure(
                f"θ unchanged after {frames:,} frames with 2 workers (every applied gradient was zero)",
                GRADIENT_ADVICE, values)
        return (f"max |Δθ| {max_delta:.2g}, {changed:.0%} of {theta.numel():,} changed; {frames:,} frames, "
                f"2 workers, {fps:,.0f} frames/s", values)

    def sync_updates(self):
        run = self._train("sync")
        frames, theta = run["result"].frames, run["params"]
        workers = sorted({int(e[0]) for e in run["episodes"]})
        values = {"frames": frames, "environments_with_episodes": workers}
        if not torch.isfinite(theta).all():
            raise CheckFailure(f"θ is not finite after {frames:,} frames of the synchronous schedule", GRADIENT_ADVICE,
                               values)
        start = self._theta0()
        max_delta = float((theta - start).abs().max()) if theta.numel() else 0.0
        if max_delta == 0.0:
            raise CheckFailure(f"θ unchanged after {frames:,} frames of the synchronous schedule (2 environments)",
                               GRADIENT_ADVICE, values | {"max_abs_delta": max_delta})
        return (f"max |Δθ| {max_delta:.2g}; {frames:,} frames, 2 environments in lockstep",
                values | {"max_abs_delta": max_delta})

    def _theta0(self) -> torch.Tensor:
        """The engine's shared θ at frame 0 for this check's seed."""
        from harness.engine.run import initial_network
        from harness.engine.shared import flatten_into
        from harness.envs import make_env

        cfg = self._config(2, self.seed)
        algo = self.cls(self.cls.Hyperparameters(**cfg.hyperparameters))
        probe = make_env(cfg.env_spec, cfg.env_settings)
        try:
            return flatten_into(initial_network(cfg, algo, probe)).detach().clone()
        finally:
            probe.close()

    # -- seed ---------------------------------------------------------------------------------
    def virtual_repeats(self):
        a, b = self._train("virtual-a"), self._train("virtual-b")
        same_theta = torch.equal(a["params"], b["params"])
        values = {"episodes": [len(a["episodes"]), len(b["episodes"])], "theta_identical": same_theta}
        if a["episodes"] != b["episodes"] or not same_theta:
            raise CheckFailure(f"two virtual-schedule runs with seed {self.seed} (2 actor-learners) differ",
                               SEED_ADVICE + "; each actor-learner's draws must come from its own generator", values)
        return (f"2 runs x {self.frames:,} frames, 2 actor-learners in one process: {len(a['episodes'])} identical "
                "episodes, identical θ", values)

    def init_seeded(self):
        kind = self.env_kind
        a = _flat(self._build(self._algo(kind), kind, self.seed))
        b = _flat(self._build(self._algo(kind), kind, self.seed))
        if a.shape != b.shape or not torch.equal(a, b):
            raise CheckFailure(
                "two networks built after torch.manual_seed(seed) differ",
                "build_network must draw its initial weights only from torch's global RNG (the engine calls "
                "torch.manual_seed(seed) before building the shared network)")
        return f"identical after torch.manual_seed({self.seed})", {}

    def act_seeded(self):
        kind = self.env_kind
        net, n = self.nets[kind], _n_actions(kind)
        states = random_obs(kind, np.random.default_rng(self.seed + 11), 30)

        def actions() -> list[int]:
            torch.manual_seed(self.seed)
            algo = self._algo(kind)
            algo.init_worker(0, np.random.default_rng(self.seed))
            rng = np.random.default_rng(self.seed + 1)
            with torch.no_grad():
                outs = [forward(algo, net, o.unsqueeze(0))[0] for o in states]
            acts = [algo.act(out, f, rng) for out in outs for f in (0, 100_000, 50_000_000)]
            acts += [algo.act_eval(out, rng) for out in outs]
            return [_valid_action(a, n, "act(...)") for a in acts]

        first, second = actions(), actions()
        if first != second:
            i = next(i for i, (x, y) in enumerate(zip(first, second)) if x != y)
            raise CheckFailure(
                f"two fresh instances given identically seeded rngs chose different actions "
                f"(call {i}: {first[i]} vs {second[i]})", SEED_ADVICE)
        return f"{len(first)} actions identical with identically seeded rngs", {}

    def same_seed(self):
        a, b = self._train("seed-a"), self._train("seed-b")
        ea, eb = a["episodes"], b["episodes"]
        same_theta = torch.equal(a["params"], b["params"])
        values = {"episodes": [len(ea), len(eb)], "theta_identical": same_theta}
        if ea != eb:
            i = next((i for i, (x, y) in enumerate(zip(ea, eb)) if x != y), min(len(ea), len(eb)))
            detail = (f"episode {i + 1}: return {ea[i][1]:g}, length {ea[i][2]} vs return {eb[i][1]:g}, length {eb[i][2]}"
                      if i < min(len(ea), len(eb)) else f"{len(ea)} vs {len(eb)} episodes")
            raise CheckFailure(f"two 1-worker runs with seed {self.seed} differ at {detail}", SEED_ADVICE, values)
        if not same_theta:
            raise CheckFailure(f"two 1-worker runs with seed {self.seed} gave identical episodes but different θ",
                               SEED_ADVICE + "; the loss too must be deterministic", values)
        episodes = f"{len(ea)} identical episodes" if ea else "no episode ended (raise --frames to compare episodes)"
        return (f"2 runs x {self.frames:,} frames, seed {self.seed}: {episodes}, identical θ", values)

    def different_seed(self):
        a, c = self._train("seed-a"), self._train("seed-c")
        episodes_differ = a["episodes"] != c["episodes"]
        if not episodes_differ and torch.equal(a["params"], c["params"]):
            raise CheckFailure(
                f"runs with seeds {self.seed} and {self._run_seed('seed-c')} gave identical episodes and θ",
                "the run seed has no effect: seed every random choice from the generators the engine passes "
                "(init_worker/act rng) and torch's global RNG")
        what = "episodes" if episodes_differ else "θ (no episode differs)"
        return f"seeds {self.seed} and {self._run_seed('seed-c')} give different {what}", {"episodes_differ": episodes_differ}

    # -- performance ----------------------------------------------------------------------------
    def performance(self):
        fps, frames, seconds = measure_worker_fps(self._config(1, self.seed), self.perf_seconds)
        values = {"frames_per_second": fps, "frames": frames, "seconds": seconds, "floor": self.min_fps}
        text = f"{fps:,.0f} frames/s over {seconds:.1f} s (floor {self.min_fps:,.0f})"
        if fps < self.min_fps:
            raise CheckFailure(
                text,
                f"one worker (act + loss + backward + update) runs at {fps:,.0f} frames/s, below the floor of "
                f"{self.min_fps:,.0f}: profile act/loss (python -m cProfile), avoid per-step Python loops over "
                "the network, or pass --min-fps if this machine is slow", values)
        return text, values


def measure_worker_fps(cfg, seconds: float) -> tuple[float, int, float]:
    """Frames/s of one worker's loop (the engine's, in this process, without other workers):
    sync θ' ← θ, collect a segment, loss, backward, clip, optimizer step. The first segment is not timed."""
    from harness.engine.shared import FlatOptimizer, OptimizerState, attach_flat_grad, clip_grad_norm_, flatten_into, linear_lr
    from harness.engine.worker import SegmentCollector, worker_seeds
    from harness.envs import make_env
    from harness.plugins import load_algorithm

    env_seed, seed = worker_seeds(cfg.run_seed, 0)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cls = load_algorithm(cfg.algorithm)
    algo = cls(cls.Hyperparameters(**cfg.hyperparameters))
    env = make_env(cfg.env_spec, cfg.env_settings)
    try:
        net = algo.build_network(env.observation_space, env.n_actions)
        local = flatten_into(net)
        params = local.detach().clone()
        grad = attach_flat_grad(net)
        target_net = None
        if algo.uses_target_network:
            target_net = algo.build_network(env.observation_space, env.n_actions)
            flatten_into(target_net, params.clone())
            target_net.requires_grad_(False)
        opt = FlatOptimizer(OptimizerState.allocate(cfg.optimizer, params.numel(), 1), 0,
                            cfg.engine.rmsprop_alpha, cfg.engine.rmsprop_eps, cfg.engine.momentum)
        algo.init_worker(0, rng)
        collector = SegmentCollector(env, algo, int(cfg.hyperparameters.get("t_max", 5)),
                                     cfg.env_settings.clip_rewards, seed=env_seed, rng=rng)
        budget = max(cfg.frames, 10**9)
        T, frames, start = 0, 0, None
        while True:
            local.copy_(params)
            seg, _ = collector.collect(net, T, rng)
            loss, _ = algo.loss(net, target_net, seg)
            grad.zero_()
            loss.backward()
            clip_grad_norm_(grad, cfg.engine.grad_clip)
            n = len(seg) * cfg.env_spec.frames_per_step
            T += n
            opt.step(params, grad, linear_lr(cfg.lr, T, budget))
            if start is None:
                start = time.perf_counter()
                continue
            frames += n
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                return frames / elapsed, frames, elapsed
    finally:
        env.close()


def _read_episodes(path: Path) -> list[tuple[int, float, int, int]]:
    """(worker, return, length, frames) of every episode, in file order."""
    import csv

    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [(int(r["worker"]), float(r["return"]), int(r["length"]), int(r["frames"])) for r in csv.DictReader(f)]


def _tail(tb: str, lines: int = 3) -> str:
    rows = [ln.strip() for ln in tb.strip().splitlines() if ln.strip()]
    return " | ".join(rows[-lines:]) if rows else "(no traceback)"
