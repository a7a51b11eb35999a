"""Suite files: the experiment grid of a sweep (a public contract; annotated example in the README).

A suite is a YAML mapping loaded with ``yaml.safe_load`` semantics (no object construction, and
duplicate keys are an error), checked by pydantic models that forbid unknown keys, then checked
against what is installed (algorithms, games, hyperparameters, settings). Every problem becomes one
line::

    suites/x.yaml: threads[2]: must be an integer >= 1, got 0; allowed: a list of integers >= 1, e.g. [1, 2, 4, 8, 16]

Axes (their product is the set of runs): ``algorithms`` x ``games`` x ``threads`` x
``learning_rates`` x ``seeds`` (x ``optimizers`` and x ``schedules`` when given), less the combinations that
``exclude`` names (as a GitHub Actions matrix's ``exclude``). ``learning_rates`` is a list or
``{loguniform: [low, high], count: N, seed: S}``; the sample is reproducible (numpy
``default_rng(S)``, values rounded to 4 significant digits, redrawn on a collision or when rounding
leaves the bounds) and written to ``results/<name>/suite.json`` with everything else resolved.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, ValidationError,
                      field_validator)
from pydantic_core import PydanticCustomError

from harness.seeds import SEED_LIMIT, seed_problem

SUITE_SCHEMA_VERSION = 1
LR_DIGITS = 4  # significant digits of sampled learning rates
MAX_LR_COUNT = 10_000
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class SuiteError(ValueError):
    """A suite that cannot be used. ``str()`` is the one-line ``FILE: key.path: problem`` message."""

    def __init__(self, file: str | Path | None, path: str, problem: str, allowed: str | None = None):
        self.file, self.path, self.problem, self.allowed = str(file or "<suite>"), path, problem, allowed
        text = f"{self.file}: {path}: {problem}" if path else f"{self.file}: {problem}"
        if allowed and "allowed" not in problem:
            text += f"; allowed: {allowed}"
        super().__init__(text)


# ------------------------------------------------------------------------------------------------
# Scalars as YAML writes them. PyYAML (YAML 1.1) reads 1e-3 and 4e6 as *strings* (a float needs a
# dot: 1.0e-3), so numbers written as strings are accepted; booleans are never numbers.
_SUFFIX = {"k": 1_000, "K": 1_000, "M": 1_000_000, "G": 1_000_000_000, "B": 1_000_000_000}


def _number(v: Any, what: str) -> float:
    if isinstance(v, bool) or v is None:
        raise ValueError(f"must be {what}, got {v!r}")
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        s = v.strip().replace("_", "")
        mult = 1
        if s and s[-1] in _SUFFIX:
            s, mult = s[:-1], _SUFFIX[s[-1]]
        try:
            return float(s) * mult
        except ValueError:
            pass
    raise ValueError(f"must be {what}, got {v!r}")


def _whole(v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v  # as written: exact at any size (a float holds integers exactly only up to 2**53)
    f = _number(v, "a whole number")
    if not math.isfinite(f) or f != int(f):
        raise ValueError(f"must be a whole number, got {v!r}")
    return int(f)


def _real(v: Any) -> float:
    f = _number(v, "a number")
    if not math.isfinite(f):
        raise ValueError(f"must be a finite number, got {v!r}")
    return f


Whole = Annotated[int, BeforeValidator(_whole)]
Real = Annotated[float, BeforeValidator(_real)]
PosWhole = Annotated[Whole, Field(ge=1)]
PosReal = Annotated[Real, Field(gt=0)]


def _kind(v: Any) -> str:
    return "#mapping" if isinstance(v, dict) else "#list" if isinstance(v, list) else "#scalar"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _distinct(values: list) -> list:
    """A list axis names each value once (a value listed twice would run the same experiment twice)."""
    for i, v in enumerate(values):
        if v in values[:i]:
            raise PydanticCustomError("listed_twice", "{shown} is listed twice",
                                      {"index": i, "shown": repr(v) if isinstance(v, str) else v})
    return values


def _schedule(name: str) -> str:
    from harness.config import SCHEDULES

    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}")
    return name


def _optimizer(name: str) -> str:
    from harness.config import OPTIMIZERS

    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}{_did_you_mean(name, OPTIMIZERS)}")
    return name


def Axis(item: Any) -> Any:  # noqa: N802 - a type alias with a parameter
    """A non-empty list of distinct values: one axis of the grid."""
    return Annotated[list[item], Field(min_length=1), AfterValidator(_distinct)]


def _seed(v: int) -> int:
    problem = seed_problem(v)
    if problem:
        raise ValueError(problem)
    return v


def _seed_count(n: int) -> int:
    if n > SEED_LIMIT:
        raise ValueError(f"a count of {n} seeds goes past the largest seed, {SEED_LIMIT - 1}: use a count from 1 to "
                         f"{SEED_LIMIT} (seeds 0..N-1), or list the seeds")
    return n


Seed = Annotated[Whole, AfterValidator(_seed)]  # 0 <= seed < 2**32 (harness.seeds)


class LogUniform(_Strict):
    loguniform: tuple[PosReal, PosReal]
    count: Annotated[Whole, Field(ge=1, le=MAX_LR_COUNT)]
    seed: Seed = 0

    @field_validator("loguniform")
    @classmethod
    def _ordered(cls, bounds: tuple[float, float]) -> tuple[float, float]:
        if not bounds[0] < bounds[1]:
            raise ValueError(f"low must be < high, got [{bounds[0]}, {bounds[1]}]")
        return bounds


LearningRates = Annotated[
    Union[Annotated[Axis(PosReal), Tag("#list")], Annotated[LogUniform, Tag("#mapping")],
          Annotated[PosReal, Tag("#scalar")]],
    Discriminator(_kind),
]
Seeds = Annotated[
    Union[Annotated[Axis(Seed), Tag("#list")], Annotated[PosWhole, AfterValidator(_seed_count), Tag("#scalar")]],
    Discriminator(lambda v: "#scalar" if not isinstance(v, (list, dict)) else "#list"),
]


class SuiteModel(_Strict):
    """The keys of a suite file: structure, types, ranges, and axes of distinct values. Names of
    games, algorithms, hyperparameters and settings are checked against the installation after."""

    name: Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)]
    description: str = ""
    games: Annotated[list[str], Field(min_length=1)]
    algorithms: Axis(str)
    threads: Axis(PosWhole)
    learning_rates: LearningRates
    seeds: Seeds = 1
    frames: PosWhole
    optimizers: Axis(Annotated[str, AfterValidator(_optimizer)]) | None = None
    schedules: Axis(Annotated[str, AfterValidator(_schedule)]) | None = None
    time_model: Union[dict[str, Any], str, None] = None
    exclude: list[dict[str, Any]] = []
    hyperparameters: dict[str, Any] = {}
    algorithm_hyperparameters: dict[str, dict[str, Any]] = {}
    env_settings: dict[str, Any] = {}
    engine: dict[str, Any] = {}
    eval: dict[str, Any] = {}
    reference_scores: dict[str, Real] = {}
    env_modules: list[str] = []


KEYS = tuple(SuiteModel.model_fields)
REQUIRED = tuple(k for k, f in SuiteModel.model_fields.items() if f.is_required())

ALLOWED = {
    "name": "letters, digits, '_', '.', '-' (it names the folder results/<name>/)",
    "description": "free text",
    "games": "a non-empty list of Atari short names (Pong, SpaceInvaders), ALE/<Game>-v5 ids or gymnasium ids (CartPole-v1)",
    "algorithms": "a non-empty list of registered algorithm names or import paths module:Class",
    "threads": "a non-empty list of integers >= 1, e.g. [1, 2, 4, 8, 16]",
    "learning_rates": "a list of numbers > 0, or {loguniform: [low, high], count: N, seed: S}",
    "seeds": "a count >= 1 (seeds 0..N-1) or a list of distinct seeds, 0 <= seed < 2**32",
    "frames": "a whole number of emulator frames > 0 per run (4e6, 40M, 40_000_000)",
    "optimizers": "a list of shared_rmsprop, rmsprop, momentum_sgd",
    "schedules": "a list of hogwild, virtual, sync (README 'Schedules')",
    "time_model": "for virtual runs: a mapping of step_ms, update_ms, jitter, start_ms, seed, source, or the path of a "
                  "harness bench record (JSON)",
    "exclude": "a list of mappings axis -> value or list of values (algorithms, games, threads, learning_rates, seeds, "
               "optimizers, schedules); a run matching every key of one mapping is not planned",
    "hyperparameters": "a mapping hyperparameter -> value, applied to every algorithm that has it",
    "algorithm_hyperparameters": "a mapping algorithm -> {hyperparameter: value}",
    "env_settings": "a mapping of environment protocol settings",
    "engine": "a mapping of engine settings",
    "eval": "a mapping of evaluation settings",
    "reference_scores": "a mapping game -> score (a number), for games of the suite",
    "env_modules": "a list of importable module names that register gymnasium environments on import, "
                   "or module:function entries whose function registers them (minatar.gym:register_envs)",
}


# ------------------------------------------------------------------------------------------------
class _SafeLoader(yaml.SafeLoader):
    """safe_load, plus: a key written twice in one mapping is an error (not silently the last)."""


def _construct_mapping(loader: _SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {mark.line + 1})", mark)
        seen[key] = True
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_SafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _did_you_mean(word: Any, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(close)}?" if close else ""


def _loc(parts: tuple) -> str:
    out = ""
    for p in parts:
        if isinstance(p, str) and p.startswith("#"):
            continue  # discriminator tags, not keys of the file
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


def _pydantic_error(file: str, exc: ValidationError) -> SuiteError:
    errs = exc.errors(include_url=False)
    # most useful first: unknown and missing keys, then the rest in file order
    errs.sort(key=lambda e: {"extra_forbidden": 0, "missing": 1}.get(e["type"], 2))
    e = errs[0]
    loc = tuple(e["loc"])
    path = _loc(loc)
    top = next((p for p in loc if isinstance(p, str) and not p.startswith("#")), "")
    more = f" (and {len(errs) - 1} more problem(s))" if len(errs) > 1 else ""
    if e["type"] == "extra_forbidden":
        key = loc[-1]
        if len(loc) == 1:
            return SuiteError(file, path, f"unknown key {key!r}{_did_you_mean(key, KEYS)}{more}", ", ".join(KEYS))
        if top == "learning_rates":
            return SuiteError(file, path, f"unknown key {key!r}{_did_you_mean(key, ('loguniform', 'count', 'seed'))}{more}",
                              "loguniform, count, seed")
        return SuiteError(file, path, f"unknown key {key!r}{more}", ALLOWED.get(top))
    if e["type"] == "missing" and isinstance(loc[-1], int):
        return SuiteError(file, _loc(loc[:-1]), f"too few values (expected {loc[-1] + 1} or more){more}", ALLOWED.get(top))
    if e["type"] == "missing":
        return SuiteError(file, path, f"required key is missing{more}", ALLOWED.get(top))
    msg = e["msg"]
    if e["type"] == "listed_twice":
        path = f"{path}[{e['ctx']['index']}]"
    elif e["type"] == "too_short" and e.get("input") == []:
        msg = "is empty"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    else:
        msg = f"{msg[:1].lower()}{msg[1:]}, got {e.get('input')!r}"
    if top == "learning_rates" and e["type"] == "list_type":
        msg = f"cannot be a mapping of numbers, got {e.get('input')!r}"
    return SuiteError(file, path, msg + more, ALLOWED.get(top))


def read_yaml(path: Path) -> Any:
    """The YAML document in ``path`` (safe loader, duplicate keys rejected); SuiteError otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError(path, "", f"cannot read the suite file: {exc.strerror or exc}") from None
    return parse_yaml(text, path)


def parse_yaml(text: str, file: str | Path = "<suite>") -> Any:
    try:
        return yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(YAML)"
        problem = exc.problem or str(exc)
        if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in problem:
            problem = f"YAML tags that build objects are not allowed ({problem})"
        raise SuiteError(file, where, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise SuiteError(file, "(YAML)", f"invalid YAML: {exc}") from None


# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlannedRun:
    """One point of the grid: its stable id and its fully resolved configuration."""

    run_id: str
    config: Any  # harness.config.RunConfig

    @property
    def threads(self) -> int:
        return self.config.threads

    @property
    def frames(self) -> int:
        return self.config.frames


@dataclass
class Suite:
    """A validated suite with every axis expanded to explicit values."""

    name: str
    description: str
    games: list[str]
    algorithms: list[str]
    threads: list[int]
    learning_rates: list[float]
    seeds: list[int]
    frames: int
    optimizers: list[str] | None = None
    schedules: list[str] | None = None
    time_model: dict[str, Any] | str | None = None
    exclude: list[dict[str, list]] = field(default_factory=list)  # each: axis -> values; a run matching all is dropped
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    algorithm_hyperparameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    env_settings: dict[str, Any] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)
    reference_scores: dict[str, float] = field(default_factory=dict)
    env_modules: list[str] = field(default_factory=list)
    learning_rate_sampling: dict[str, Any] | None = None  # {loguniform: [lo, hi], count, seed} when sampled
    source: str | None = None  # the file it was read from
    _runs: list[PlannedRun] | None = field(default=None, repr=False, compare=False)

    # -- the grid -----------------------------------------------------------------------------
    @property
    def axes(self) -> dict[str, list]:
        axes: dict[str, list] = {"algorithms": self.algorithms, "games": self.games, "threads": self.threads,
                                 "learning_rates": self.learning_rates, "seeds": self.seeds}
        if self.optimizers is not None:
            axes["optimizers"] = self.optimizers
        if self.schedules is not None:
            axes["schedules"] = self.schedules
        return axes

    @property
    def n_runs(self) -> int:
        return len(self.runs()) if self.exclude else math.prod(len(v) for v in self.axes.values())

    def points(self) -> list[dict[str, Any]]:
        """The grid's points (axis -> value) that ``exclude`` leaves, in the product's order."""
        points = (dict(zip(self.axes, p)) for p in itertools.product(*self.axes.values()))
        return [p for p in points if not self.excluded(p)]

    def excluded(self, point: dict[str, Any]) -> bool:
        """Whether a grid point (axis -> value) matches every key of one ``exclude`` entry."""
        return any(all(point.get(axis) in values for axis, values in entry.items()) for entry in self.exclude)

    def runs(self) -> list[PlannedRun]:
        """Every run of the grid, in a fixed order (algorithm, game, threads, lr, seed, optimizer)."""
        if self._runs is None:
            self._runs = _expand(self)
        return self._runs

    # -- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """What ``suite.json`` holds: a valid suite itself (explicit values), plus bookkeeping keys."""
        d = {
            "name": self.name, "description": self.description, "games": list(self.games),
            "algorithms": list(self.algorithms), "threads": list(self.threads),
            "learning_rates": list(self.learning_rates), "seeds": list(self.seeds), "frames": self.frames,
        }
        if self.optimizers is not None:
            d["optimizers"] = list(self.optimizers)
        if self.schedules is not None:
            d["schedules"] = list(self.schedules)
        if self.time_model is not None:
            d["time_model"] = self.time_model
        if self.exclude:
            d["exclude"] = [dict(e) for e in self.exclude]
        d.update(hyperparameters=self.hyperparameters, algorithm_hyperparameters=self.algorithm_hyperparameters,
                 env_settings=self.env_settings, engine=self.engine, eval=self.eval,
                 reference_scores=self.reference_scores, env_modules=list(self.env_modules))
        meta = {"schema_version": SUITE_SCHEMA_VERSION, "source": self.source,
                "learning_rate_sampling": self.learning_rate_sampling,
                "total_runs": self.n_runs, "total_frames": self.n_runs * self.frames}
        return d | {"_meta": meta}


# ------------------------------------------------------------------------------------------------
def sample_loguniform(low: float, high: float, count: int, seed: int, digits: int = LR_DIGITS) -> list[float]:
    """``count`` distinct values from LogUniform(low, high), reproducible from ``seed``, sorted.

    Each value is rounded to ``digits`` significant digits (so the run id shows it exactly);
    a draw that rounds onto an earlier value, or outside [low, high], is replaced by the next draw.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    out: list[float] = []
    seen: set[float] = set()
    tries = 0
    while len(out) < count:
        tries += 1
        if tries > 100 * count + 1000:
            raise ValueError(f"cannot draw {count} distinct learning rates in [{low}, {high}] at {digits} digits")
        v = float(f"{math.exp(rng.uniform(math.log(low), math.log(high))):.{digits - 1}e}")
        if low <= v <= high and v not in seen:
            seen.add(v)
            out.append(v)
    return sorted(out)


def format_lr(lr: float, digits: int = LR_DIGITS) -> str:
    """7e-04, 7.031e-04: scientific, up to ``digits`` significant digits, trailing zeros dropped."""
    mant, exp = f"{lr:.{digits - 1}e}".split("e")
    if "." in mant:
        mant = mant.rstrip("0").rstrip(".")
    return f"{mant}e{exp}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text.replace(":", ".")).strip("_") or "x"


def run_id(algorithm: str, game: str, threads: int, lr: str, seed: int, optimizer: str | None = None,
           schedule: str | None = None) -> str:
    """``a3c-Pong-t04-lr7e-04-s0`` (``-rmsprop`` appended when the suite has an optimizers axis,
    ``-virtual`` when it has a schedules axis)."""
    rid = f"{_slug(algorithm)}-{_slug(game)}-t{threads:02d}-lr{lr}-s{seed}"
    return rid + (f"-{optimizer}" if optimizer else "") + (f"-{schedule}" if schedule else "")


def _lr_labels(lrs: list[float]) -> dict[float, str]:
    digits = LR_DIGITS
    while True:
        labels = {lr: format_lr(lr, digits) for lr in lrs}
        if len(set(labels.values())) == len(labels) or digits >= 17:
            return labels
        digits += 1


def _expand(suite: Suite) -> list[PlannedRun]:
    from harness.config import derive_run_seed, make_run_config

    labels = _lr_labels(suite.learning_rates)
    optimizers = suite.optimizers or [None]
    runs = []
    for algo, game, opt, schedule in itertools.product(suite.algorithms, suite.games, optimizers,
                                                       suite.schedules or [None]):
        base = make_run_config(
            algorithm=algo, env=game, threads=1, lr=suite.learning_rates[0], seed=0, frames=suite.frames,
            optimizer=opt or "shared_rmsprop", hyperparameters=_hp_for(suite, algo),
            env_settings=suite.env_settings, engine=suite.engine, eval=suite.eval,
            env_modules=tuple(suite.env_modules), suite=suite.name, schedule=schedule or "hogwild",
            time_model=suite.time_model if schedule == "virtual" else None,
        )
        game_name = base.env_spec.game
        for threads in suite.threads:
            for lr in suite.learning_rates:
                for seed in suite.seeds:
                    if suite.exclude and suite.excluded({"algorithms": algo, "games": game, "threads": threads,
                                                          "learning_rates": lr, "seeds": seed, "optimizers": opt,
                                                          "schedules": schedule}):
                        continue
                    rid = run_id(algo, game_name, threads, labels[lr], seed, opt, schedule)
                    run_seed = derive_run_seed(suite.name, rid)
                    model = base.time_model
                    if model is not None and not (isinstance(suite.time_model, dict) and "seed" in suite.time_model):
                        model = model | {"seed": run_seed}  # each run its own jitter draws
                    cfg = dataclasses.replace(base, threads=threads, lr=float(lr), seed=int(seed), run_id=rid,
                                              run_seed=run_seed, time_model=model)
                    runs.append(PlannedRun(rid, cfg))
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):  # e.g. two games that resolve to the same short name
        dup = next(i for i in ids if ids.count(i) > 1)
        raise SuiteError(suite.source, "games", f"two runs would share the id {dup!r}")
    return runs


def _hp_for(suite: Suite, algorithm: str) -> dict[str, Any]:
    from harness.plugins import load_algorithm

    names = {f.name for f in dataclasses.fields(load_algorithm(algorithm).Hyperparameters)}
    hp = {k: v for k, v in suite.hyperparameters.items() if k in names}
    hp.update(suite.algorithm_hyperparameters.get(algorithm, {}))
    return {k: tuple(v) if isinstance(v, list) else v for k, v in hp.items()}


# ------------------------------------------------------------------------------------------------
def _check_value(file: str, path: str, value: Any, default: Any, optional_float: bool = False) -> Any:
    """Coerce ``value`` to the type of ``default`` (bool, int, float, str, tuple of numbers)."""
    def bad(what: str):
        return SuiteError(file, path, f"must be {what}, got {value!r}")

    if optional_float or default is None:
        if value is None:
            return None
        try:
            return _real(value)
        except ValueError:
            raise bad("a number or null") from None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(default, int):
        try:
            return _whole(value)
        except ValueError:
            raise bad("a whole number") from None
    if isinstance(default, float):
        try:
            return _real(value)
        except ValueError:
            raise bad("a number") from None
    if isinstance(default, (tuple, list)):
        if not isinstance(value, list):
            raise bad("a list")
        try:
            return [_real(x) for x in value]
        except ValueError:
            raise bad("a list of numbers") from None
    if isinstance(default, str):
        if not isinstance(value, str):
            raise bad("a string")
        return value
    return value


def _defaults_of(cls: type) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
        else:
            out[f.name] = None
    return out


def _check_settings(file: str, key: str, values: dict[str, Any], cls: type) -> dict[str, Any]:
    defaults = _defaults_of(cls)
    out = {}
    for name, value in values.items():
        if name not in defaults:
            raise SuiteError(file, f"{key}.{name}", f"unknown setting {name!r}{_did_you_mean(name, list(defaults))}",
                             ", ".join(sorted(defaults)))
        out[name] = _check_value(file, f"{key}.{name}", value, defaults[name], optional_float=(name == "stop_return"))
    return out


def validate(data: Any, file: str | Path = "<suite>") -> Suite:
    """Check a parsed suite document; return the expanded :class:`Suite` or raise :class:`SuiteError`.

    The model (:class:`SuiteModel`) carries every rule a suite file holds by itself; what follows checks
    it against the installation, in the order a reader would: environment modules (they may register the
    games), games, algorithms, their hyperparameters and settings, reference scores, and last whatever
    the run configuration itself still rejects."""
    from harness.config import EngineSettings, EvalSettings
    from harness.envs import EnvSettings

    file = str(file)
    m = _model(data, file)
    _import_env_modules(m, file)
    specs = _resolve_games(m, file)
    algo_classes = _load_algorithms(m, file)
    lrs, sampling = _learning_rates(m, file)
    hyper, per_algo = _hyperparameters(m, algo_classes, file)
    suite = Suite(
        name=m.name, description=m.description.strip(), games=list(m.games), algorithms=list(m.algorithms),
        threads=list(m.threads), learning_rates=lrs,
        seeds=list(range(m.seeds)) if isinstance(m.seeds, int) else list(m.seeds), frames=int(m.frames),
        optimizers=list(m.optimizers) if m.optimizers is not None else None,
        schedules=list(m.schedules) if m.schedules is not None else None, time_model=m.time_model,
        hyperparameters=hyper, algorithm_hyperparameters=per_algo,
        env_settings=_check_settings(file, "env_settings", m.env_settings, EnvSettings),
        engine=_check_settings(file, "engine", m.engine, EngineSettings),
        eval=_check_settings(file, "eval", m.eval, EvalSettings),
        reference_scores=_reference_scores(m, specs, file), env_modules=list(m.env_modules),
        learning_rate_sampling=sampling, source=file,
    )
    suite.exclude = _exclude(m, suite, file)
    _check_run_configs(suite, file)
    return suite


def _model(data: Any, file: str) -> SuiteModel:
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise SuiteError(file, "(top level)", f"expected a mapping of suite keys, got {got}",
                         f"{', '.join(KEYS)} (required: {', '.join(REQUIRED)})")
    data = {k: v for k, v in data.items() if k != "_meta"}  # suite.json's bookkeeping
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        raise SuiteError(file, repr(bad_keys[0]), "keys must be strings", ", ".join(KEYS))
    try:
        return SuiteModel.model_validate(data)
    except ValidationError as exc:
        raise _pydantic_error(file, exc) from None


def _import_env_modules(m: SuiteModel, file: str) -> None:
    from harness.envs import EnvError, import_env_modules

    for i, mod in enumerate(m.env_modules):
        try:
            import_env_modules([mod])
        except EnvError as exc:
            raise SuiteError(file, f"env_modules[{i}]", str(exc), ALLOWED["env_modules"]) from None


def _resolve_games(m: SuiteModel, file: str) -> list:
    """Each game's EnvSpec; two names of one environment (Pong and ALE/Pong-v5) are one game listed twice."""
    from harness.envs import EnvError, resolve_env

    specs = []
    for i, game in enumerate(m.games):
        try:
            spec = resolve_env(game, tuple(m.env_modules))
        except EnvError as exc:
            raise SuiteError(file, f"games[{i}]", str(exc)) from None
        if any(s.env_id == spec.env_id for s in specs):
            raise SuiteError(file, f"games[{i}]", f"{game!r} is listed twice (as {spec.env_id})")
        specs.append(spec)
    return specs


def _load_algorithms(m: SuiteModel, file: str) -> dict[str, type]:
    from harness.plugins import AlgorithmError, available_algorithms, load_algorithm

    classes: dict[str, type] = {}
    for i, algo in enumerate(m.algorithms):
        try:
            classes[algo] = load_algorithm(algo)
        except AlgorithmError as exc:
            msg = str(exc)
            if ":" not in algo and "did you mean" not in msg:
                msg += _did_you_mean(algo, available_algorithms())
            raise SuiteError(file, f"algorithms[{i}]", msg) from None
        except Exception as exc:  # noqa: BLE001 - a plug-in that fails to import
            raise SuiteError(file, f"algorithms[{i}]", f"cannot import algorithm {algo!r}: {type(exc).__name__}: {exc}") from None
    return classes


def _learning_rates(m: SuiteModel, file: str) -> tuple[list[float], dict[str, Any] | None]:
    """The learning-rate axis as explicit values, and the sampling that drew them (None when listed)."""
    if not isinstance(m.learning_rates, LogUniform):
        return ([m.learning_rates] if isinstance(m.learning_rates, float) else list(m.learning_rates)), None
    lo, hi = m.learning_rates.loguniform
    count, seed = m.learning_rates.count, m.learning_rates.seed
    try:
        lrs = sample_loguniform(lo, hi, count, seed)
    except ValueError as exc:
        raise SuiteError(file, "learning_rates.count", str(exc)) from None
    return lrs, {"loguniform": [lo, hi], "count": count, "seed": seed, "digits": LR_DIGITS}


def _hyperparameters(m: SuiteModel, algo_classes: dict[str, type], file: str) -> tuple[dict, dict]:
    """``hyperparameters`` (each must belong to some algorithm of the suite) and ``algorithm_hyperparameters``
    (each to its algorithm), coerced to the types of the algorithms' defaults."""
    defaults: dict[str, dict[str, Any]] = {a: _defaults_of(c.Hyperparameters) for a, c in algo_classes.items()}
    all_hp = sorted({k for d in defaults.values() for k in d})
    hyper = {}
    for k, v in m.hyperparameters.items():
        owners = [a for a in m.algorithms if k in defaults[a]]
        if not owners:
            raise SuiteError(file, f"hyperparameters.{k}",
                             f"no algorithm of the suite has a hyperparameter {k!r}{_did_you_mean(k, all_hp)}",
                             ", ".join(all_hp))
        hyper[k] = _check_value(file, f"hyperparameters.{k}", v, defaults[owners[0]][k])
    per_algo: dict[str, dict[str, Any]] = {}
    for a, values in m.algorithm_hyperparameters.items():
        if a not in algo_classes:
            raise SuiteError(file, f"algorithm_hyperparameters.{a}",
                             f"{a!r} is not one of the suite's algorithms{_did_you_mean(a, m.algorithms)}",
                             ", ".join(m.algorithms))
        per_algo[a] = {}
        for k, v in values.items():
            if k not in defaults[a]:
                raise SuiteError(file, f"algorithm_hyperparameters.{a}.{k}",
                                 f"{a} has no hyperparameter {k!r}{_did_you_mean(k, list(defaults[a]))}",
                                 ", ".join(sorted(defaults[a])))
            per_algo[a][k] = _check_value(file, f"algorithm_hyperparameters.{a}.{k}", v, defaults[a][k])
    return hyper, per_algo


EXCLUDE_AXES = ("algorithms", "games", "threads", "learning_rates", "seeds", "optimizers", "schedules")


def _exclude(m: SuiteModel, suite: Suite, file: str) -> list[dict[str, list]]:
    """``exclude`` entries as axis -> list of values, each value one of its axis's (a value the grid does
    not have would exclude nothing: a typo); entries that leave no run at all are an error too."""
    axes = suite.axes
    out = []
    for i, entry in enumerate(m.exclude):
        if not isinstance(entry, dict) or not entry:
            raise SuiteError(file, f"exclude[{i}]", f"must be a non-empty mapping of axes to values, got {entry!r}",
                             ALLOWED["exclude"])
        clean: dict[str, list] = {}
        for axis, raw in entry.items():
            if axis not in EXCLUDE_AXES:
                raise SuiteError(file, f"exclude[{i}].{axis}", f"unknown axis {axis!r}{_did_you_mean(axis, EXCLUDE_AXES)}",
                                 ", ".join(EXCLUDE_AXES))
            if axis not in axes:
                raise SuiteError(file, f"exclude[{i}].{axis}", f"the suite has no {axis} axis to exclude from")
            values = raw if isinstance(raw, list) else [raw]
            have = axes[axis]
            picked = []
            for v in values:
                try:
                    key = (_real(v) if axis == "learning_rates" else _whole(v) if axis in ("threads", "seeds") else v)
                except ValueError:
                    key = v
                if key not in have:
                    raise SuiteError(file, f"exclude[{i}].{axis}", f"{v!r} is not a value of the suite's {axis}",
                                     ", ".join(str(x) for x in have))
                picked.append(key)
            clean[axis] = picked
        out.append(clean)
    if out and not dataclasses.replace(suite, exclude=out, _runs=None).points():
        raise SuiteError(file, "exclude", "excludes every run of the grid")
    return out


def _reference_scores(m: SuiteModel, specs: list, file: str) -> dict[str, float]:
    """Reference scores keyed by each game's short name; any name of a suite's game is accepted."""
    from harness.envs import EnvError, resolve_env

    games_by_name: dict[str, str] = {}
    for given, spec in zip(m.games, specs):
        for alias in (given, spec.game, spec.env_id):
            games_by_name.setdefault(alias, spec.game)
    refs = {}
    for g, score in m.reference_scores.items():
        key = games_by_name.get(g)
        if key is None:
            try:
                key = resolve_env(g, tuple(m.env_modules)).game
            except EnvError:
                key = None
            if key not in games_by_name.values():
                raise SuiteError(file, f"reference_scores.{g}",
                                 f"{g!r} is not a game of the suite{_did_you_mean(g, [s.game for s in specs])}",
                                 ", ".join(s.game for s in specs))
        refs[key] = float(score)
    return refs


def _check_run_configs(suite: Suite, file: str) -> None:
    """Whatever ``make_run_config`` still objects to (values out of range, hyperparameter types, ...),
    once per (algorithm, game, optimizer): the other axes do not change what it checks."""
    from harness.config import ConfigError, make_run_config

    virtual = "virtual" in (suite.schedules or [])
    if suite.time_model is not None and not virtual:
        raise SuiteError(file, "time_model", "a time model applies to virtual runs only: add virtual to schedules, "
                                             "or drop time_model")
    listed = isinstance(suite.time_model, dict) and isinstance(suite.time_model.get("start_ms"), list)
    for algo in suite.algorithms:
        for game in suite.games:
            for opt in suite.optimizers or ["shared_rmsprop"]:
                try:
                    for threads in (suite.threads if listed else [1]) if virtual else [None]:
                        make_run_config(algorithm=algo, env=game, threads=threads or 1, lr=suite.learning_rates[0], seed=0,
                                        frames=suite.frames, optimizer=opt, hyperparameters=_hp_for(suite, algo),
                                        env_settings=suite.env_settings, engine=suite.engine, eval=suite.eval,
                                        env_modules=tuple(suite.env_modules), schedule="virtual" if virtual else "hogwild",
                                        time_model=suite.time_model)
                except ConfigError as exc:
                    raise SuiteError(file, f"(algorithm {algo}, game {game})", str(exc)) from None
                except Exception as exc:  # noqa: BLE001 - e.g. a plug-in's hyperparameters rejecting a value
                    raise SuiteError(file, f"(algorithm {algo}, game {game})", f"{type(exc).__name__}: {exc}") from None


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file (YAML, or a ``suite.json`` written by a sweep)."""
    path = Path(path)
    if path.is_dir():
        for name in ("suite.json", "suite.yaml"):
            if (path / name).is_file():
                return load_suite(path / name)
        raise SuiteError(path, "", "no suite.json or suite.yaml in this directory")
    data = read_yaml(path)  # JSON is YAML
    if isinstance(data, dict) and isinstance(data.get("_meta"), dict) and data["_meta"].get("source"):
        suite = validate(data, path)
        suite.source = str(data["_meta"]["source"])
        suite.learning_rate_sampling = data["_meta"].get("learning_rate_sampling")
        return suite
    return validate(data, path)


def write_suite_files(suite: Suite, suite_dir: Path, yaml_text: str | None = None) -> None:
    """``suite_dir/suite.json`` (the expanded suite; the report reads ``reference_scores`` from it)
    and ``suite_dir/suite.yaml`` (a copy of the file as written), both replaced atomically."""
    from harness import store

    suite_dir = Path(suite_dir)
    store.write_json_atomic(suite_dir / "suite.json", suite.to_dict())
    if yaml_text is None and suite.source and Path(suite.source).is_file() and not str(suite.source).endswith(".json"):
        yaml_text = Path(suite.source).read_text(encoding="utf-8")
    if yaml_text is not None:
        data = yaml_text.encode("utf-8")
        store.write_atomic(suite_dir / "suite.yaml", lambda f: f.write(data))


def suite_json_text(suite: Suite) -> str:
    return json.dumps(suite.to_dict(), indent=2)


__all__ = ["Suite", "SuiteError", "PlannedRun", "load_suite", "validate", "parse_yaml", "read_yaml",
           "sample_loguniform", "format_lr", "run_id", "write_suite_files", "KEYS"]
