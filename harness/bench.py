"""``harness bench``: where a worker's time goes, and how training throughput scales with workers.

Measured in one invocation, on the same machine and moment, per algorithm:

(a) ``env_fps``: the environment alone, random actions, through the same preprocessing runs use;
(b) ``act_fps``: environment plus the algorithm's forward pass and action choice per step, called as a
    worker's collector calls them;
(c) ``learn_ms``: one segment's gradient (the fast path's, or autograd's), clipping and shared-optimizer step;
    ``bound_fps`` = frames_per_step / (time per step of (b) + (c) / t_max): what one worker could do
    if the harness added nothing;
(d) full training for each thread count (the median of ``repeat`` runs, taken round-robin over
    the thread counts): ``train_fps`` (total), ``train_fps_per_worker``,
    ``efficiency`` = train_fps(n) / (n × train_fps(1)) (with repeats, the median of each round's
    own ratio), ``train_over_bound`` =
    train_fps_per_worker / bound_fps; peak resident memory per worker and for the whole run.

``bound_share`` = bound_fps / env_fps and ``train_share`` = train_fps_per_worker / env_fps: a
worker's pace as a share of its environment's, where a slower acting or learning path shows.

Every row is measured on the engine's default gradient path (``gradient`` = "fast"), and with
``gradients=("fast", "autograd")`` (``--reference``) also on the autograd reference, side by side in
the same rounds.

Ratios (``train_over_bound``, ``efficiency``, ``bound_share``) hold on a noisy machine where absolute
frames/s do not; ``--compare BASELINE.json`` gates on them (a baseline without a ratio skips it). The JSON and CSV schema is in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from algorithms.base import forward
from harness import store
from harness.config import RunConfig, make_run_config
from harness.engine import train
from harness.engine.shared import FlatOptimizer, OptimizerState, attach_flat_grad, flatten_into
from harness.engine.fast import fast_learner
from harness.engine.worker import PhaseTimes, SegmentCollector, compute_gradient, one_blas_thread
from harness.envs import make_env
from harness.plugins import load_algorithm

#: 2: the acting measurement (b) calls a fast network as a worker's collector does; a version-1 file
#: measured it through the module's call, so its fast rows' bounds are not compared (compare_rows)
SCHEMA_VERSION = 2
GATED = ("train_over_bound", "efficiency", "bound_share")
#: the worker phases reported per row as train_<phase>_ms (worker.PhaseTimes; "report" is negligible)
PHASE_KEYS = tuple(f"{name}_ms" for name in PhaseTimes.NAMES if name != "report")


@dataclass
class BenchRow:
    algorithm: str
    env: str
    threads: int
    sharing: str  # "hogwild" (the method), or "unshared" (the --unshared-control rows)
    optimizer: str  # shared_rmsprop (the paper's default), rmsprop (g per worker) or momentum_sgd
    env_fps: float
    act_fps: float
    learn_ms: float
    bound_fps: float
    train_fps: float
    train_fps_per_worker: float
    efficiency: float
    train_over_bound: float
    peak_worker_rss_mb: float
    peak_total_rss_mb: float
    oversubscribed: bool
    # where a worker's time went in (d), ms per segment (mean over workers; status.json "phases")
    train_sync_ms: float = 0.0
    train_act_ms: float = 0.0
    train_learn_ms: float = 0.0
    train_update_ms: float = 0.0
    # shares of the environment's own pace, per worker: the per-step path's cost on a scale that
    # drifts with the machine as little as the environment does (docs/BENCHMARKS.md)
    bound_share: float = 0.0  # bound_fps / env_fps
    train_share: float = 0.0  # train_fps_per_worker / env_fps
    # policy lag in (d): other workers' updates applied between a worker's sync and its own update
    # (status.json "policy_lag"; the mean is about threads - 1 by counting, the rest is the distribution)
    lag_mean: float = 0.0
    lag_median: float = 0.0
    lag_p95: float = 0.0
    lag_max: float = 0.0
    # the schedule (--schedule): hogwild, or virtual / sync (one process for every actor-learner);
    # vs_one_worker: this row's training frames/s over the 1-worker Hogwild run of the same round
    # (real frames/s: what simulating N workers, or stepping N environments in lockstep, costs here)
    schedule: str = "hogwild"
    vs_one_worker: float = 0.0
    # the gradient path (engine setting ``gradient``): "fast" (the default) or "autograd" (the reference).
    # The speed gate compares rows of one path; a row without it (files written before the fast path,
    # measured on autograd) stands for the default path of its day, as every older baseline row does
    gradient: str = "fast"


def _timed_loop(seconds: float, body) -> tuple[int, float]:
    """Run ``body`` for a warm-up of a fifth of ``seconds`` (at most 2 s), then time it."""
    warm_until = time.perf_counter() + min(2.0, seconds / 5)
    while time.perf_counter() < warm_until:
        body()
    n, start = 0, time.perf_counter()
    while True:
        body()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n, elapsed


def measure_components(cfg: RunConfig, seconds: float) -> dict[str, float]:
    """(a), (b), (c) in this process, one torch thread and one BLAS thread."""
    torch.set_num_threads(1)
    one_blas_thread()
    algo_cls = load_algorithm(cfg.algorithm)
    algo = algo_cls(algo_cls.Hyperparameters(**cfg.hyperparameters))
    env = make_env(cfg.env_spec, cfg.env_settings)
    rng = np.random.default_rng(0)
    fps_step = cfg.env_spec.frames_per_step

    env.reset(seed=0)
    n, dt = _timed_loop(seconds, lambda: env.step(int(rng.integers(env.n_actions))))
    env_fps = n * fps_step / dt

    module = algo.build_network(env.observation_space, env.n_actions)
    flat = flatten_into(module)
    grad = attach_flat_grad(module)
    target = algo.build_network(env.observation_space, env.n_actions) if algo.uses_target_network else None
    net, ftarget = fast_learner(algo, module, target, cfg.engine.gradient == "fast")  # the path a worker takes
    if net is None:
        net, ftarget = module, target
    algo.init_worker(0, rng)
    state = {"obs": env.reset(seed=0), "net": None}

    fast = net is not module

    def act_step():
        if fast:  # as a worker's collector calls it: a numpy row, its activations kept for learning
            a = algo.act(net.act_row(state["obs"][None], 0), 0, rng)
        else:
            with torch.no_grad():
                out, state["net"] = forward(algo, net, torch.from_numpy(state["obs"]).unsqueeze(0), state["net"])
                a = algo.act(out, 0, rng)
        state["obs"], _, _, over, _ = env.step(a)
        if over:
            state["net"] = None  # a recurrent network starts the next episode from its initial state

    n, dt = _timed_loop(seconds, act_step)
    act_step_s = dt / n

    opt = FlatOptimizer(OptimizerState.allocate(cfg.optimizer, flat.numel(), 1), 0,
                        cfg.engine.rmsprop_alpha, cfg.engine.rmsprop_eps, cfg.engine.momentum)
    t_max = int(cfg.hyperparameters.get("t_max", 5))
    collector = SegmentCollector(env, algo, t_max, True, seed=0)
    segments = []
    while len(segments) < 8:
        seg, _ = collector.collect(net, 0, rng)
        if len(seg) == t_max:  # with the activations acting recorded (the fast path), as a worker has them
            # its own copy of the states: seg.obs views the collector's buffer, which the next segment
            # overwrites, and a fast network reuses recorded activations only for the states it saw
            seg = dataclasses.replace(seg, obs=seg.obs.clone(), next_obs=seg.next_obs.clone())
            segments.append((seg, net.recorded() if net is not module else None))
    shared = flat.clone()

    def learn():
        seg, recorded = segments[learn.i % len(segments)]
        learn.i += 1
        if recorded is not None:
            net.restore(recorded)
        compute_gradient(algo, net, ftarget, seg, grad, cfg.engine.grad_clip, "bench")
        opt.step(shared, grad, 1e-7)

    learn.i = 0
    n, dt = _timed_loop(seconds, learn)
    learn_s = dt / n
    env.close()
    bound = fps_step / (act_step_s + learn_s / t_max)
    return {"env_fps": env_fps, "act_fps": fps_step / act_step_s, "learn_ms": learn_s * 1e3, "bound_fps": bound}


class BenchError(RuntimeError):
    """A training run inside the benchmark did not finish (its state and error are in the message)."""


def measure_training(cfg: RunConfig, seconds: float, hogwild: bool = True) -> dict:
    """(d): a real run of ``cfg`` stopped after ``seconds`` of training.

    Ctrl-C (which the run catches to stop its workers) stops the whole benchmark; a run that failed
    or diverged raises :class:`BenchError` rather than reporting a throughput."""
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
        result = train(cfg, Path(tmp), resume=False, hogwild=hogwild)
        if result.state == "interrupted":
            raise KeyboardInterrupt
        if result.state != "done":
            raise BenchError(f"{cfg.algorithm} on {cfg.env} with {cfg.threads} threads: run {result.state}: {result.error}")
        status = store.read_json(Path(tmp) / "status.json") or {}
    fps = status.get("steady_frames_per_second") or status.get("frames_per_second") or 0.0
    return {"train_fps": float(fps), "memory": status.get("memory", {}), "phases": status.get("phases") or {},
            "policy_lag": status.get("policy_lag") or {},
            "oversubscribed": bool(status.get("host", {}).get("oversubscribed", False))}


def run_bench(algorithms: list[str], env: str, threads: list[int], seconds: float,
              log=print, repeat: int = 1, unshared_control: bool = False,
              optimizer: str = "shared_rmsprop", env_modules: tuple[str, ...] = (),
              schedules: tuple[str, ...] = ("hogwild",), gradients: tuple[str, ...] = ("fast",)) -> dict:
    """``unshared_control`` adds, for every thread count above 1, rows of the same training with
    unshared θ and optimizer statistics (``sharing`` = "unshared"): the efficiency the machine
    allows without the cost of sharing them, to set beside the method's own. ``schedules`` other
    than hogwild add rows of the virtual and synchronous schedules at every thread count, with a
    1-worker Hogwild run in every round for ``vs_one_worker``. ``gradients``: the gradient paths
    measured, each row of the plan once per path, in the same rounds ("autograd" is the reference)."""
    rows: list[BenchRow] = []
    for algo in algorithms:
        comps = {}
        for g in gradients:
            base = make_run_config(algorithm=algo, env=env, threads=1, frames=10**12, optimizer=optimizer,
                                   env_modules=env_modules, engine={"gradient": g})
            comp = comps[g] = measure_components(base, seconds)
            log(f"{algo}{_path(g)}: env {comp['env_fps']:,.0f} frames/s, acting {comp['act_fps']:,.0f} frames/s, "
                f"learning {comp['learn_ms']:.2f} ms/segment, bound {comp['bound_fps']:,.0f} frames/s per worker")
        shape = ([(n, True, "hogwild") for n in threads if "hogwild" in schedules]
                 + [(n, False, "hogwild") for n in threads if unshared_control and n > 1 and "hogwild" in schedules]
                 + [(n, True, s) for s in schedules if s != "hogwild" for n in threads])
        if any(s != "hogwild" for _, _, s in shape) and (1, True, "hogwild") not in shape:
            shape.insert(0, (1, True, "hogwild"))  # the reference of vs_one_worker
        plan = [(*key, g) for g in gradients for key in shape]
        samples: dict[tuple[int, bool, str, str], list[dict]] = {key: [] for key in plan}
        for _ in range(repeat):  # round-robin, so drift on a shared machine hits every row alike
            for n, hogwild, schedule, g in plan:
                cfg = make_run_config(algorithm=algo, env=env, threads=n, frames=10**12, optimizer=optimizer,
                                      env_modules=env_modules, eval={"episodes": 0}, schedule=schedule,
                                      engine={"max_seconds": seconds, "checkpoint_seconds": 0, "gradient": g})
                samples[n, hogwild, schedule, g].append(measure_training(cfg, seconds, hogwild))
                if repeat > 1:
                    log(f"{algo} threads={n}{_variant(hogwild, schedule)}{_path(g)} run "
                        f"{len(samples[n, hogwild, schedule, g])}/{repeat}: "
                        f"{samples[n, hogwild, schedule, g][-1]['train_fps']:,.0f} frames/s")
        for n, hogwild, schedule, g in plan:
            comp = comps[g]
            first = samples[(*shape[0], g)]
            single = samples.get((1, True, "hogwild", g))
            runs = samples[n, hogwild, schedule, g]
            d = sorted(runs, key=lambda x: x["train_fps"])[len(runs) // 2]  # the median run
            d["memory"] = {k: max(x["memory"].get(k, 0.0) for x in runs) for k in ("peak_worker_rss_mb", "peak_total_rss_mb")}
            per_worker = d["train_fps"] / n
            # efficiency: the median over rounds of the ratio to the first thread count's run of the same round
            ratios = sorted(r["train_fps"] / n / (f["train_fps"] / shape[0][0]) for r, f in zip(runs, first) if f["train_fps"] > 0)
            vs_one = sorted(r["train_fps"] / f["train_fps"] for r, f in zip(runs, single or []) if f["train_fps"] > 0)
            ph = d["phases"]
            rows.append(BenchRow(
                algorithm=algo, env=env, threads=n, sharing="hogwild" if hogwild else "unshared", optimizer=optimizer,
                env_fps=round(comp["env_fps"], 1), act_fps=round(comp["act_fps"], 1),
                learn_ms=round(comp["learn_ms"], 3), bound_fps=round(comp["bound_fps"], 1),
                train_fps=round(d["train_fps"], 1), train_fps_per_worker=round(per_worker, 1),
                efficiency=round(ratios[len(ratios) // 2], 3) if ratios else 0.0,
                train_over_bound=round(per_worker / comp["bound_fps"], 3),
                peak_worker_rss_mb=d["memory"].get("peak_worker_rss_mb", 0.0),
                peak_total_rss_mb=d["memory"].get("peak_total_rss_mb", 0.0),
                oversubscribed=d["oversubscribed"],
                **{f"train_{k}": round(float(ph.get(k, 0.0)), 3) for k in PHASE_KEYS},
                bound_share=round(comp["bound_fps"] / comp["env_fps"], 4),
                train_share=round(per_worker / comp["env_fps"], 4),
                **{f"lag_{k}": float(d["policy_lag"].get(k, 0.0)) for k in ("mean", "median", "p95", "max")},
                schedule=schedule, vs_one_worker=round(vs_one[len(vs_one) // 2], 3) if vs_one else 0.0,
                gradient=g,
            ))
            log(f"{algo} threads={n}{_variant(hogwild, schedule)}{_path(g)}: {d['train_fps']:,.0f} frames/s "
                f"({per_worker:,.0f} per worker), efficiency {rows[-1].efficiency:.2f}, training/bound "
                f"{rows[-1].train_over_bound:.2f}; ms per segment: sync {rows[-1].train_sync_ms:.2f}, act "
                f"{rows[-1].train_act_ms:.2f}, learn {rows[-1].train_learn_ms:.2f}, update {rows[-1].train_update_ms:.2f}; "
                f"policy lag mean {rows[-1].lag_mean:.2f}, median {rows[-1].lag_median:.0f}, p95 {rows[-1].lag_p95:.0f}, "
                f"max {rows[-1].lag_max:.0f}" + (f"; {rows[-1].vs_one_worker:.2f}x one Hogwild worker"
                                                 if schedule != "hogwild" else "")
                + ("  [OVERSUBSCRIBED]" if d["oversubscribed"] else ""))
    return {
        "schema_version": SCHEMA_VERSION,
        "date": store.utc_now(),
        "command_seconds": seconds,
        "repeat": repeat,
        "env": env,
        "optimizer": optimizer,
        "host": store.host_info(max(threads)),
        "versions": store.versions(),
        "rows": [asdict(r) for r in rows],
    }


def _variant(hogwild: bool, schedule: str) -> str:
    return ("" if hogwild else " (unshared control)") + ("" if schedule == "hogwild" else f" ({schedule})")


def _path(gradient: str) -> str:
    return "" if gradient == "fast" else f" ({gradient})"


def _row_key(r: dict) -> tuple:
    return (r["algorithm"], r["env"], r["threads"], r.get("sharing", "hogwild"), r.get("optimizer", "shared_rmsprop"),
            r.get("schedule", "hogwild"), r.get("gradient", "fast"))  # a row without it: the default path of its day


def _row_name(r: dict) -> str:
    return (f"{r['algorithm']} {r['env']} threads={r['threads']}"
            f"{'' if r.get('sharing', 'hogwild') == 'hogwild' else ' (' + r['sharing'] + ')'}"
            f"{'' if r.get('optimizer', 'shared_rmsprop') == 'shared_rmsprop' else ' ' + r['optimizer']}"
            f"{_path(r.get('gradient', 'fast'))}")


def compare_rows(current: dict, baseline: dict, tolerance: float) -> list[dict]:
    """Per row of ``current`` that the baseline also has: its name, each gated ratio's baseline and
    current value, and the regressions beyond ``tolerance`` (relative), one message each."""
    base = {_row_key(r): r for r in baseline.get("rows", [])}
    old_bounds = baseline.get("schema_version", 1) < 2  # fast rows' bounds measured another way (SCHEMA_VERSION)
    out = []
    for r in current.get("rows", []):
        b = base.get(_row_key(r))
        if b is None:
            continue
        name = _row_name(r)
        values, problems = {}, []
        for q in GATED:
            if old_bounds and b.get("gradient", "fast") == "fast" and q in ("train_over_bound", "bound_share"):
                continue
            if b.get(q, 0) > 0 and q in r:  # a baseline written before a ratio existed does not gate it
                values[q] = (b[q], r[q])
                if r[q] < b[q] * (1 - tolerance):
                    problems.append(f"{name}: {q} {r[q]:.3f} < baseline {b[q]:.3f} − {tolerance:.0%}")
        out.append({"name": name, "algorithm": r["algorithm"], "env": r["env"], "values": values, "problems": problems})
    return out


def compare(current: dict, baseline: dict, tolerance: float) -> list[str]:
    """Regressions of the gated ratios beyond ``tolerance`` (relative), one message each."""
    return [p for row in compare_rows(current, baseline, tolerance) for p in row["problems"]]


def compare_report(current: dict, baseline: dict, tolerance: float, baseline_name: str = "baseline") -> tuple[str, list]:
    """The speed gate's Markdown summary and JUnit cases (harness.ci_output), one per compared row."""
    from harness.ci_output import Case, markdown_table

    rows = compare_rows(current, baseline, tolerance)
    bad = sum(bool(r["problems"]) for r in rows)
    text = (f"### Speed gate: {'FAILED' if bad else 'passed'} ({len(rows) - bad} of {len(rows)} configurations pass)\n\n"
            f"Against {baseline_name}; a configuration fails when a ratio fell by more than {tolerance:.0%}. "
            "Ratios, not frames/s: they hold on machines of different speeds.\n\n")
    table = [[r["name"], "**regression**" if r["problems"] else "pass"]
             + [f"{r['values'][q][0]:.3f} → {r['values'][q][1]:.3f}" if q in r["values"] else "–" for q in GATED]
             for r in rows]
    text += markdown_table(["configuration", "verdict", *GATED], table)
    cases = [Case(f"harness bench.{r['env']}", r["name"], "; ".join(r["problems"]) or None, "regression",
                  json.dumps(r["values"])) for r in rows]
    return text, cases


def write_outputs(result: dict, out: Path) -> tuple[Path, Path]:
    """``out`` as JSON (the full record) and the same rows as CSV beside it."""
    import pandas as pd

    out = Path(out)
    json_path = out if out.suffix == ".json" else out.with_suffix(".json")
    store.write_json_atomic(json_path, result)
    csv_path = json_path.with_suffix(".csv")
    pd.DataFrame(result["rows"]).to_csv(csv_path, index=False)
    return json_path, csv_path


def format_table(result: dict) -> str:
    cols = ["algorithm", "threads", "schedule", "gradient", "sharing", "env_fps", "act_fps", "learn_ms", "bound_fps",
            "train_fps", "train_fps_per_worker", "efficiency", "train_over_bound", "bound_share", "train_share", "train_act_ms",
            "train_learn_ms", "train_update_ms", "lag_mean", "lag_p95", "lag_max", "vs_one_worker", "peak_worker_rss_mb"]
    lines = [" | ".join(cols), " | ".join("---" for _ in cols)]
    for r in result["rows"]:
        lines.append(" | ".join(_cell(c, r.get(c, "")) for c in cols))
    return "\n".join(lines)


def _cell(column: str, value) -> str:
    if not isinstance(value, float):
        return str(value)
    if column in ("efficiency", "train_over_bound", "vs_one_worker", "bound_share", "train_share"):
        return f"{value:.3g}"
    if column.startswith("lag_"):
        return f"{value:.2f}" if column == "lag_mean" else f"{value:.0f}"
    return f"{value:,.2f}" if column.endswith("_ms") else f"{value:,.1f}"


def load_baseline(path: Path) -> dict:
    return json.loads(Path(path).read_text())
