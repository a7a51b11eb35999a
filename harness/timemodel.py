"""The time model of the virtual schedule: how long each actor-learner's segment would take on a
core of its own, fixed before the run starts (README "Schedules").

A segment of n agent steps takes ``n * step_ms + update_ms`` (acting; then θ' ← θ, loss, backward
and the shared update), times ``exp(jitter * z)`` with z a standard normal drawn from the model's
own seeded stream, one draw per segment in the order segments start. Worker w starts at
``start_ms * u_w`` with u_w uniform on [0, 1) from the same stream, or at ``start_ms[w]`` when
``start_ms`` lists one offset per worker. Nothing is measured during the
run, so the order in which updates land does not depend on how busy the machine is, and the same
command gives the same run. The defaults come from the harness's own measurements of one worker per
kind of task and method (``DEFAULTS``, with their sources); ``from_bench`` takes them from a
``harness bench`` record instead.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

#: (kind, algorithm) -> (step_ms, update_ms): one worker's ms per agent step (environment, forward,
#: action choice) and per segment (sync + loss and backward + shared update), measured on the 2-vCPU
#: AMD EPYC VM of docs/BENCHMARKS.md:
#: atari: Pong, `harness bench` with phases, 1 worker (docs/bench/pong-2core-phases.json);
#: small_image: MinAtar Breakout, the 1-thread runs of the 2-core study (docs/reproduction/runs.csv);
#: vector: CartPole-v1, the 1-thread runs of the demo suite (2026-12-06).
DEFAULTS: dict[tuple[str, str], tuple[float, float]] = {
    ("atari", "a3c"): (0.560, 2.911),
    ("atari", "one_step_q"): (0.550, 3.046),
    ("atari", "one_step_sarsa"): (0.529, 2.933),
    ("atari", "n_step_q"): (0.580, 3.001),
    ("small_image", "a3c"): (0.363, 2.723),
    ("small_image", "one_step_q"): (0.349, 3.041),
    ("small_image", "one_step_sarsa"): (0.302, 2.711),
    ("small_image", "n_step_q"): (0.329, 2.569),
    ("vector", "a3c"): (0.154, 1.632),
    ("vector", "one_step_q"): (0.119, 0.732),
    ("vector", "one_step_sarsa"): (0.109, 0.680),
    ("vector", "n_step_q"): (0.096, 0.538),
}
DEFAULT_JITTER = 0.1  # the spread of one worker's segment times (a standard deviation of log time)
KEYS = ("step_ms", "update_ms", "jitter", "start_ms", "seed", "source")


class TimeModelError(ValueError):
    """A time model that cannot be used; the message names the fix."""


def task_kind(is_atari: bool, obs_shape: tuple[int, ...]) -> str:
    """``atari``, ``small_image`` (images under 36 pixels a side: MinAtar's network) or ``vector``."""
    if is_atari:
        return "atari"
    if len(obs_shape) == 3:
        from algorithms.networks import SMALL_IMAGE, image_layout  # the rule that picks the network

        _, _, h, w = image_layout(tuple(obs_shape))
        return "small_image" if min(h, w) < SMALL_IMAGE else "atari"
    return "vector"


def default(kind: str, algorithm: str, run_seed: int) -> dict[str, Any]:
    """The shipped model for a kind of task and method; a method without its own figures (A3C-LSTM,
    plug-ins) gets A3C's, and ``source`` says so."""
    key = (kind, algorithm) if (kind, algorithm) in DEFAULTS else (kind, "a3c")
    step, update = DEFAULTS[key]
    source = f"defaults for {kind} tasks, {key[1]}" + ("" if key[1] == algorithm else f" (no figures for {algorithm})")
    return {"step_ms": step, "update_ms": update, "jitter": DEFAULT_JITTER, "start_ms": update,
            "seed": run_seed, "source": source}


def from_bench(path: str | Path, algorithm: str, frames_per_step: int, run_seed: int,
               gradient: str = "fast") -> dict[str, Any]:
    """The model from a ``harness bench`` record: its 1-thread Hogwild row for ``algorithm`` on the
    run's ``gradient`` path (a ``bench --reference`` record holds both; a row without the key is fast)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise TimeModelError(f"time model {path}: cannot read a harness bench record ({exc}): "
                             "name a JSON file written by harness bench --out") from None
    rows = [r for r in data.get("rows", []) if isinstance(r, dict) and r.get("algorithm") == algorithm
            and r.get("threads") == 1 and r.get("sharing", "hogwild") == "hogwild"
            and r.get("gradient", "fast") == gradient]
    if not rows or not rows[0].get("act_fps"):
        raise TimeModelError(f"time model {path}: no 1-thread row for {algorithm} on the {gradient} gradient path: "
                             f"run harness bench --algo {algorithm} --threads 1 --out FILE (with --reference for the "
                             "autograd path) and name that file")
    r = rows[0]
    update = float(r.get("train_sync_ms") or 0) + float(r["learn_ms"]) + float(r.get("train_update_ms") or 0)
    step = 1000.0 * frames_per_step / float(r["act_fps"])
    return {"step_ms": round(step, 4), "update_ms": round(update, 4), "jitter": DEFAULT_JITTER, "start_ms": update,
            "seed": run_seed, "source": f"harness bench record {Path(path).name} ({data.get('date', 'undated')})"}


def validate(model: dict[str, Any], workers: int | None = None) -> dict[str, Any]:
    unknown = sorted(set(model) - set(KEYS))
    if unknown:
        raise TimeModelError(f"unknown time model key(s) {', '.join(unknown)}; allowed: {', '.join(KEYS)}")
    out = dict(model)
    for key in ("step_ms", "update_ms"):
        v = out.get(key)
        if not isinstance(v, (int, float)) or not v > 0 or not math.isfinite(v):
            raise TimeModelError(f"time model {key} must be a positive number of milliseconds, got {v!r}")
    for key in ("jitter", "start_ms"):
        v = out.get(key, 0.0)
        values = v if key == "start_ms" and isinstance(v, list) else [v]
        if any(not isinstance(x, (int, float)) or isinstance(x, bool) or x < 0 or not math.isfinite(x) for x in values):
            raise TimeModelError(f"time model {key} must be a number >= 0" + (" or a list of one per worker" if
                                 key == "start_ms" else "") + f", got {v!r}")
    if isinstance(out.get("start_ms"), list) and workers is not None and len(out["start_ms"]) != workers:
        raise TimeModelError(f"time model start_ms lists {len(out['start_ms'])} offsets for {workers} workers: "
                             "give one per worker, or one number (the spread of random offsets)")
    if not isinstance(out.get("seed", 0), int):
        raise TimeModelError(f"time model seed must be an integer, got {out.get('seed')!r}")
    return out
