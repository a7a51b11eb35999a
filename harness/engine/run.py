"""The supervisor: one run from a :class:`RunConfig` to a finished run folder.

It owns the processes and the shared memory: it builds the model, puts θ, θ⁻, the optimizer
statistics and the frame counter T in shared memory, starts ``threads`` workers (``start_method``), writes their
episodes to ``episodes.csv`` as they arrive, checkpoints, and decides how the run ends:

- ``done``: T reached the frame budget (or ``stop_return`` was reached);
- ``failed``: a worker raised or died (the message names it), within a fraction of a second;
- ``diverged``: a worker saw a non-finite loss or gradient (normal at high learning rates);
- ``interrupted``: SIGINT or SIGTERM.

In every case it stops all workers (stop event, then terminate, then kill), so no process outlives
the run; workers also ask the kernel to kill them if the supervisor itself dies. After training,
with the workers gone and the clock stopped, it evaluates the final model and any snapshots.
"""

from __future__ import annotations

import collections
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.multiprocessing as mp

from algorithms.base import forward
from harness import store
from harness.config import RunConfig, identity_differences
from harness.engine import lag
from harness.engine.shared import OptimizerState, flatten_into
from harness.engine.sync import sync_main
from harness.engine.virtual import virtual_main
from harness.engine.worker import SharedState, worker_main
from harness.envs import EnvError, make_env
from harness.evaluate import evaluate, summarize
from harness.plugins import load_algorithm

CHECKPOINT = "checkpoint.pt"
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"  # the one before, kept as a fallback for a corrupt latest
POLL_SECONDS = 0.05
JOIN_SECONDS = 5.0


@dataclass
class Progress:
    frames: int
    budget: int
    wall_seconds: float
    frames_per_second: float
    recent_return: float | None
    episodes: int

    @property
    def eta_seconds(self) -> float | None:
        if self.frames_per_second <= 0:
            return None
        return max(0.0, (self.budget - self.frames) / self.frames_per_second)


@dataclass
class RunResult:
    state: str
    error: str | None
    frames: int
    wall_seconds: float
    out_dir: Path
    already_finished: bool = False  # the folder held this run, finished: nothing was done

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.wall_seconds if self.wall_seconds > 0 else 0.0


class _Signals:
    """SIGINT/SIGTERM set a flag instead of raising, while the supervisor runs."""

    def __init__(self):
        self.received: int | None = None
        self._old: dict[int, object] = {}

    def __enter__(self):
        if hasattr(signal, "SIGTERM") and _main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.received = signum

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


#: environment variable that forces the workers' start method (fork, spawn or forkserver)
START_METHOD_ENV = "HARNESS_START_METHOD"


def start_method() -> str:
    """How workers are started: ``fork`` on Linux when this process runs a single thread, else
    ``spawn``; ``$HARNESS_START_METHOD`` overrides.

    A forked worker starts in milliseconds with torch, the environment's modules and the plug-in
    already imported; a spawned one imports them again in a fresh interpreter (about 2-3 s of a core
    per worker on the 2-core VM, most of a short run's start-up: docs/BENCHMARKS.md). Forking a
    process that runs other threads (a Ray driver, a test runner with helper threads) can copy a lock
    some thread holds, so such processes spawn."""
    import threading

    forced = os.environ.get(START_METHOD_ENV)
    if forced:
        if forced not in mp.get_all_start_methods():
            raise RunFolderError(f"${START_METHOD_ENV}={forced!r} is not a start method here: use one of "
                                 f"{', '.join(mp.get_all_start_methods())}, or unset it")
        return forced
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return "fork"
    return "spawn"


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class RunFolderError(RuntimeError):
    """The run folder cannot be used as asked, or a file in it is broken: one line naming the file and
    what to do. ``exit_code`` 2: nothing was started (busy folder, another run's folder, an --out that
    cannot be written); 1: the run was marked ``failed`` in its status.json (as far as the disk allowed)."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


def _warn(message: str) -> None:
    print(f"harness: warning: {message}", file=sys.stderr, flush=True)


def train(
    cfg: RunConfig,
    out_dir: Path,
    *,
    resume: bool = True,
    on_progress: Callable[[Progress], None] | None = None,
    progress_every: float = 1.0,
    hogwild: bool = True,
    warn: Callable[[str], None] = _warn,
) -> RunResult:
    """Train one run into ``out_dir``; resume from its checkpoint when one exists.

    One process at a time per folder (``store.FolderLock``); resuming only continues the same run
    (``config.identity_differences``); a finished run is left as it is. Raises
    :class:`RunFolderError` (one line, ``exit_code``) when the folder cannot be used or a file in it is
    broken; a file system error while training ends the run as ``failed`` with a one-line error.

    ``hogwild=False`` is a benchmark control, not a way to train (``harness bench
    --unshared-control``): every worker does the same work on a private copy of θ and of the
    optimizer statistics, so the difference in throughput is what sharing them costs the machine.
    """
    out_dir = Path(out_dir)
    elsewhere = "choose another --out"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        lock = store.FolderLock(out_dir).acquire()
    except store.LockBusy as exc:
        raise RunFolderError(str(exc)) from None
    except OSError as exc:
        raise RunFolderError(store.describe_os_error(exc, "creating the run folder", elsewhere)) from None
    try:
        if lock.stale:
            warn(f"{out_dir}: taking over the lock of pid {lock.stale.get('pid')}, which is gone")
        if resume:
            finished = _finished_run(cfg, out_dir)
            if finished is not None:
                return finished
        try:
            store.write_json_atomic(out_dir / "config.json", cfg.to_dict())
        except OSError as exc:
            raise RunFolderError(store.describe_os_error(exc, "writing config.json", elsewhere)) from None
        return _train(cfg, out_dir, resume, on_progress, progress_every, hogwild, warn)
    finally:
        store.SpaceReserve.discard(out_dir)  # whichever way _train ended
        lock.release()


def _finished_run(cfg: RunConfig, out_dir: Path) -> RunResult | None:
    """Before resuming: the folder must hold this same run (else RunFolderError); a finished run
    (done or diverged) is returned as it is, with ``already_finished`` set."""
    path = out_dir / "config.json"
    if not path.exists():
        return None
    on_disk = store.read_json(path)
    if on_disk is None:
        raise RunFolderError(f"{path} is unreadable (corrupt?): rerun with --fresh to start this run over in "
                             f"{out_dir}, or restore the file")
    diffs = identity_differences(on_disk, cfg.to_dict())
    if diffs:
        raise RunFolderError(f"{out_dir} holds another run ({'; '.join(diffs)}): rerun with --fresh to replace "
                             f"it with this one, or choose another --out")
    status = store.read_json(out_dir / "status.json") or {}
    if status.get("state") in ("done", "diverged") and status.get("phase") is None:
        return RunResult(status["state"], status.get("error"), int(status.get("frames_done") or 0),
                         float(status.get("wall_seconds") or 0.0), out_dir, already_finished=True)
    return None


def _load_checkpoint(out_dir: Path, numel: int, warn) -> dict | None:
    """The newest readable checkpoint: ``checkpoint.pt``, else the previous one kept beside it (with a
    warning); None when there is none; RunFolderError when there are checkpoints but none is usable."""
    problems = []
    for path in (out_dir / CHECKPOINT, out_dir / PREVIOUS_CHECKPOINT):
        if not path.exists():
            continue
        try:
            ckpt = torch.load(path, weights_only=False)
            if not isinstance(ckpt, dict) or ckpt["params"].numel() != numel:
                raise ValueError(f"it does not hold this run's {numel:,} parameters")
            int(ckpt["frames"]), float(ckpt["wall_seconds"]), list(ckpt["snapshots"]), ckpt["opt_stats"].shape
        except Exception as exc:  # noqa: BLE001 - truncated zip, unpickling error, missing keys, ...
            problems.append(f"{path.name} is unreadable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'truncated?'})")
            continue
        if problems:
            warn(f"{'; '.join(problems)}; resuming from {path.name} ({int(ckpt['frames']):,} frames)")
        return ckpt
    if problems:
        raise RunFolderError(f"{out_dir}: {'; '.join(problems)}: rerun with --fresh to start over, or restore "
                             f"{CHECKPOINT}", exit_code=1)
    return None


def _mark_failed(out_dir: Path, error: str, status: dict | None = None, tb: str | None = None) -> None:
    """status.json says ``failed`` with ``error`` (and ``traceback``), as far as the disk allows."""
    status = dict(status or store.read_json(out_dir / "status.json") or {"schema_version": 1})
    status.pop("phase", None)
    status.update(state="failed", error=error, ended_at=store.utc_now())
    status.pop("traceback", None)  # an earlier attempt's
    if tb:
        status["traceback"] = tb
    try:
        store.write_json_atomic(out_dir / "status.json", status)
    except OSError:
        pass


def _train(cfg, out_dir, resume, on_progress, progress_every, hogwild, warn) -> RunResult:
    method = start_method()  # before anything is touched: a bad $HARNESS_START_METHOD changes no file
    torch.set_num_threads(1)

    previous = store.read_json(out_dir / "status.json") or {}
    probe_env = None
    try:  # building the method, its environment and network: any failure is one line and a failed run
        algo_cls = load_algorithm(cfg.algorithm)
        algo = algo_cls(algo_cls.Hyperparameters(**cfg.hyperparameters))
        probe_env = make_env(cfg.env_spec, cfg.env_settings)
        net = initial_network(cfg, algo, probe_env)
        with torch.no_grad():  # one forward pass on a real observation: a network that does not fit fails here
            forward(algo, net, torch.from_numpy(probe_env.reset(seed=0)).unsqueeze(0))
        params = flatten_into(net).share_memory_()
        target = params.clone().share_memory_() if algo.uses_target_network else None
        opt_state = OptimizerState.allocate(cfg.optimizer, params.numel(), cfg.threads)
    except Exception as exc:  # noqa: BLE001 - a plug-in's or an environment's error, whatever it is
        if probe_env is not None:
            probe_env.close()
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        msg = str(exc) if isinstance(exc, EnvError) else (
            f"setting up {cfg.algorithm} on {cfg.env} failed: {type(exc).__name__}: {detail} "
            f"(harness check env {cfg.env} / harness check algorithm {cfg.algorithm} say more)")
        _mark_failed(out_dir, msg, previous or {"schema_version": 1, "started_at": store.utc_now()},
                     traceback.format_exc())  # for whoever debugs the plug-in or environment
        raise RunFolderError(msg, exit_code=1) from None

    frames0, elapsed0, snapshots, virtual0 = 0, 0.0, [], 0.0
    ckpt_path = out_dir / CHECKPOINT
    try:
        ckpt = _load_checkpoint(out_dir, params.numel(), warn) if resume else None
        if ckpt is not None:
            params.copy_(ckpt["params"])
            if target is not None and ckpt.get("target") is not None:
                target.copy_(ckpt["target"])
            opt_state.stats.copy_(ckpt["opt_stats"])
            frames0, elapsed0, snapshots = int(ckpt["frames"]), float(ckpt["wall_seconds"]), list(ckpt["snapshots"])
            virtual0 = float(ckpt.get("virtual_seconds") or 0.0)
            try:
                dropped = store.truncate_csv_after(out_dir / "episodes.csv", frames0, store.EPISODE_COLUMNS)
            except store.CsvError as exc:
                raise RunFolderError(f"{exc}: fix or delete that line, or rerun with --fresh to start over",
                                     exit_code=1) from None
            if dropped:
                warn(f"{out_dir / 'episodes.csv'}: dropped a half-written last line (the run was killed while "
                     f"writing it); the episodes up to the checkpoint are kept")
        else:
            for name in ("episodes.csv", "evals.csv", CHECKPOINT, PREVIOUS_CHECKPOINT):
                (out_dir / name).unlink(missing_ok=True)
        (out_dir / "evals.csv").unlink(missing_ok=True)
        for stray in [*out_dir.glob(".*.tmp"), *out_dir.glob("checkpoint*.tmp")]:  # writes cut short by a kill
            stray.unlink()
        episodes_log = store.CsvLog(out_dir / "episodes.csv", store.EPISODE_COLUMNS)
    except RunFolderError as exc:
        probe_env.close()
        if exc.exit_code == 1:
            _mark_failed(out_dir, str(exc), previous)
        raise
    except OSError as exc:
        probe_env.close()
        msg = store.describe_os_error(exc, "preparing the run folder", "rerun the same command")
        _mark_failed(out_dir, msg, previous)
        raise RunFolderError(msg, exit_code=1) from None

    started_at = store.utc_now()
    status = {
        "schema_version": 1,
        "state": "running",
        "error": None,
        "started_at": started_at,
        "ended_at": None,
        "frames_done": frames0,
        "wall_seconds": elapsed0,
        "frames_per_second": None,
        "resumed_from_frames": frames0 or None,
        # wall seconds from the run's start to its first update (kept from the first start on resume)
        "startup_seconds": previous.get("startup_seconds") if frames0 else None,
        # one process runs every virtual or synchronous actor-learner: only Hogwild can oversubscribe
        "host": store.host_info(cfg.threads if cfg.schedule == "hogwild" else 1),
        "schedule": cfg.schedule,
        "versions": store.versions(),
        "pid": os.getpid(),
        "hogwild": hogwild,
    }
    resume_hint = "rerun the same command to resume from the last checkpoint"
    try:
        store.write_json_atomic(out_dir / "status.json", status)
    except OSError as exc:
        probe_env.close()
        msg = store.describe_os_error(exc, "writing status.json", resume_hint)
        _mark_failed(out_dir, msg, status)
        raise RunFolderError(msg, exit_code=1) from None
    # held until the final status.json, so that it can be written even once the disk has filled up
    reserve = store.SpaceReserve(out_dir)

    ctx = mp.get_context(method)
    status["start_method"] = method
    counter = ctx.Value("q", frames0)
    # The supervisor reads T without the lock: the lock's owner may be a worker killed inside it (the
    # OOM killer, kill -9), and an aligned 64-bit load is atomic; only workers write T, under the lock.
    T_raw = counter.get_obj()
    stop = ctx.Event()
    msgs, channel = ctx.Pipe(duplex=False)  # workers write (worker.send), the supervisor reads
    t_start = time.time()
    clock = ctx.Value("d", virtual0)  # the virtual schedule's clock (engine.virtual)
    virtual = cfg.schedule == "virtual"
    shared = SharedState(params, target, opt_state.stats, cfg.optimizer, counter, stop, channel, t_start - elapsed0,
                         ctx.Value("q", 0), clock, hogwild)

    state, error = "running", None
    recent = collections.deque(maxlen=max(cfg.engine.stop_window, 1))
    n_episodes = 0
    every = cfg.eval.every_frames
    next_snapshot = (frames0 // every + 1) * every if every else None
    last_ckpt = last_progress = time.monotonic()
    procs = []
    steady: tuple[int, float] | None = None
    first_update: float | None = None  # wall time of the first update (workers started)
    memory = {"peak_worker_rss_mb": 0.0, "peak_total_rss_mb": 0.0}
    phases: dict[int, dict] = {}  # rank -> where that worker's time went (worker.PhaseTimes)
    lags: dict[int, list] = {}  # rank -> that worker's policy-lag histogram (engine.lag)

    def save_checkpoint(frames: int, wall: float) -> None:
        """Atomically (store.write_atomic), keeping the current checkpoint as the previous one. A write
        that fails leaves no temporary file and the older checkpoints intact, and raises OSError."""
        ckpt = {"frames": frames, "wall_seconds": wall, "params": params.clone(),
                "target": None if target is None else target.clone(), "opt_stats": opt_state.stats.clone(),
                "snapshots": snapshots, "virtual_seconds": clock.value}
        store.write_atomic(ckpt_path, lambda f: torch.save(ckpt, f), keep_previous=out_dir / PREVIOUS_CHECKPOINT)

    def rerun() -> str:
        return resume_hint if ckpt_path.exists() else "rerun the same command (no checkpoint yet: it starts over)"

    def write_failed(exc: OSError) -> None:
        """A write of the run's files failed (disk full, read-only, ...): the run ends as failed, with
        the first such error; nothing more is written to episodes.csv."""
        nonlocal state, error, episodes_log
        episodes_log = None
        if state != "failed":
            state, error = "failed", store.describe_os_error(exc, "writing the run's files", rerun())

    def drain(block_seconds: float) -> None:
        nonlocal state, error, n_episodes
        rows = []
        deadline = time.monotonic() + block_seconds
        while True:
            try:
                if not msgs.poll(max(0.0, deadline - time.monotonic())):
                    break
                kind, *payload = msgs.recv()
            except (EOFError, OSError):  # every writer gone
                break
            if kind == "episode":
                rows.append(payload[0])
                recent.append(payload[0]["return"])
            elif kind == "error" and state in ("running", "done"):
                state, error = "failed", f"worker {payload[0]} raised: {payload[1].strip().splitlines()[-1]}"
                status["traceback"] = payload[1]
            elif kind == "diverged" and state in ("running", "done"):
                state, error = "diverged", payload[1]
            elif kind == "phases":
                phases[payload[0]] = payload[1]
            elif kind == "lag":
                lags[payload[0]] = payload[1]
            elif kind == "memory":  # a worker's own peak, reported as it ends
                memory["peak_worker_rss_mb"] = max(memory["peak_worker_rss_mb"], payload[1])
            elif kind == "started" and frames0 == 0 and status.get("startup_seconds") is None:
                status["startup_seconds"] = payload[1]  # the first update of any worker ends start-up
        if rows and episodes_log is not None:
            try:
                episodes_log.append(rows)
            except OSError as exc:  # also while shutting down, with episodes still in flight
                write_failed(exc)
                return
            n_episodes += len(rows)

    with _Signals() as signals:
        try:
            if frames0 < cfg.frames:
                entry, processes = SCHEDULE_ENTRIES[cfg.schedule], cfg.threads if cfg.schedule == "hogwild" else 1
                for rank in range(processes):
                    p = ctx.Process(target=entry, args=(rank, cfg.to_dict(), shared), name=f"harness-worker-{rank}", daemon=True)
                    p.start()
                    procs.append(p)
            while state == "running":
                drain(POLL_SECONDS)
                T = T_raw.value
                now = time.monotonic()
                wall = time.time() - shared.t0
                if state != "running":
                    break
                if signals.received is not None:
                    state, error = "interrupted", f"received {signal.Signals(signals.received).name}"
                    break
                dead = [(i, p.exitcode) for i, p in enumerate(procs) if p.exitcode not in (None, 0)]
                if dead:
                    drain(0.2)  # a worker that raised has already sent its traceback
                    if state == "running":
                        i, code = dead[0]
                        state, error = "failed", f"worker {i} died ({_exit_reason(code)}) at frame {T}"
                    break
                if T >= cfg.frames or (procs and all(p.exitcode == 0 for p in procs)) or not procs:
                    state = "done"
                    break
                if cfg.engine.stop_return is not None and len(recent) == recent.maxlen and sum(recent) / len(recent) >= cfg.engine.stop_return:
                    state, status["stopped_early"] = "done", f"mean return of the last {len(recent)} episodes reached {cfg.engine.stop_return}"
                    break
                if first_update is None and T > frames0:
                    first_update = wall
                if cfg.engine.max_seconds is not None and first_update is not None and wall - first_update >= cfg.engine.max_seconds:
                    state, status["stopped_early"] = "done", f"time limit of {cfg.engine.max_seconds} s reached"
                    break
                if steady is None and T > frames0 + cfg.threads * 1000 * cfg.env_spec.frames_per_step:
                    steady = (T, wall)  # every worker is past start-up: measure throughput from here
                if next_snapshot is not None and T >= next_snapshot:
                    snapshots.append((T, clock.value if virtual else wall, params.clone()))
                    next_snapshot = (T // every + 1) * every
                if cfg.engine.checkpoint_seconds and now - last_ckpt >= cfg.engine.checkpoint_seconds:
                    save_checkpoint(T, wall)
                    last_ckpt = now
                if now - last_progress >= progress_every:
                    last_progress = now
                    _sample_memory(procs, memory)
                    if on_progress is None:
                        continue
                    done_wall = wall - elapsed0
                    fps = (T - frames0) / done_wall if done_wall > 0 else 0.0
                    on_progress(Progress(T, cfg.frames, wall, fps, (sum(recent) / len(recent)) if recent else None, n_episodes))
        except OSError as exc:  # disk full, read-only, ...: the run stops as failed, with what and where
            write_failed(exc)
        finally:
            _sample_memory(procs, memory)  # once more while the workers are alive: short runs end between samples
            stop.set()
            wall = time.time() - shared.t0
            _shutdown(procs, drain)
            if state == "running":  # an exception in the supervisor itself
                state, error = "failed", "supervisor error"
        T = T_raw.value
        status.update(frames_done=T, wall_seconds=round(wall, 3),
                      frames_per_second=round((T - frames0) / (wall - elapsed0), 1) if wall > elapsed0 else None,
                      steady_frames_per_second=round((T - steady[0]) / (wall - steady[1]), 1) if steady and wall > steady[1] else None,
                      memory=memory, phases=_mean_phases(phases), policy_lag=_policy_lag(lags))
        if virtual:  # what N cores would have taken under the time model (README "Schedules")
            status.update(virtual_seconds=round(clock.value, 3),
                          virtual_frames_per_second=round((T - frames0) / (clock.value - virtual0), 1)
                          if clock.value > virtual0 else None)
        try:
            if state in ("done", "interrupted") and T > frames0:
                save_checkpoint(T, wall)
            if state == "done":
                status["phase"] = "evaluating"  # state stays "running" until evals.csv is complete
                store.write_json_atomic(out_dir / "status.json", status)
                interrupted = _evaluate_all(cfg, algo, net, params, probe_env, snapshots, T,
                                            clock.value if virtual else wall, out_dir, signals)
                if interrupted:
                    state, error = "interrupted", "interrupted during evaluation"
        except OSError as exc:
            write_failed(exc)
    probe_env.close()
    status.pop("phase", None)
    status.update(state=state, error=error, ended_at=store.utc_now())
    reserve.release()  # the space it held is for this write
    try:
        store.write_json_atomic(out_dir / "status.json", status)
    except OSError as exc:  # the disk allows not even that: say so on the way out
        still = (store.read_json(out_dir / "status.json") or {}).get("state")
        says = f"it still says {still!r}" if still else "there is none"
        if state != "failed":
            state, error = "failed", f"{store.describe_os_error(exc, 'writing status.json', rerun())}; {says}"
        else:
            error = f"{error}; {out_dir / 'status.json'} could not be written either ({exc.strerror or exc}): {says}"
    return RunResult(state, error, T, wall, out_dir)


#: the process entry point of each schedule (config.SCHEDULES): Hogwild starts one per worker, the
#: others one in all
SCHEDULE_ENTRIES = {"hogwild": worker_main, "virtual": virtual_main, "sync": sync_main}


def initial_network(cfg: RunConfig, algo, env) -> torch.nn.Module:
    """The network whose parameters become the shared θ at frame 0: built right after seeding
    torch from the run seed, so each run of a sweep starts from its own initialisation."""
    torch.manual_seed(cfg.run_seed)
    return algo.build_network(env.observation_space, env.n_actions)


def _mean_phases(phases: dict[int, dict]) -> dict | None:
    """Milliseconds per segment of each phase over all workers (weighted by their segments), and
    each worker's own figures under ``workers``; None if no worker reported."""
    if not phases:
        return None
    total = sum(p["segments"] for p in phases.values())
    keys = [k for k in next(iter(phases.values())) if k.endswith("_ms")]
    mean = {k: round(sum(p[k] * p["segments"] for p in phases.values()) / max(total, 1), 4) for k in keys}
    mean.update(segments=total, steps=sum(p["steps"] for p in phases.values()),
                workers=[{"worker": r, **phases[r]} for r in sorted(phases)])
    return mean


def _policy_lag(lags: dict[int, list]) -> dict | None:
    """status.json ``policy_lag``: the summary of every worker's lags together, its histogram, and
    each worker's own summary (``engine.lag``); ``None`` when no worker reported (a run that ended
    before its workers did)."""
    merged = lag.merge(lags.values())
    total = lag.summary(merged)
    if total is None:
        return None
    return {**total, "histogram": merged,
            "workers": [{"worker": r, **(lag.summary(lags[r]) or {"updates": 0})} for r in sorted(lags)]}


def _sample_memory(procs, memory: dict) -> None:
    """Track the peak resident memory of one worker and of the whole run (supervisor included)."""
    import psutil

    total = psutil.Process().memory_info().rss
    for p in procs:
        try:
            rss = psutil.Process(p.pid).memory_info().rss
        except (psutil.Error, TypeError):
            continue
        total += rss
        memory["peak_worker_rss_mb"] = max(memory["peak_worker_rss_mb"], round(rss / 2**20, 1))
    memory["peak_total_rss_mb"] = max(memory["peak_total_rss_mb"], round(total / 2**20, 1))


def _shutdown(procs, drain) -> None:
    """Stop event already set: give workers a moment, then terminate, then kill."""
    deadline = time.monotonic() + JOIN_SECONDS
    while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
        drain(0.05)  # keep the pipe flowing so no worker blocks on a full pipe while exiting
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(2.0)
        if p.is_alive():
            p.kill()
            p.join(2.0)
    drain(0.0)


def _evaluate_all(cfg, algo, net, params, env, snapshots, T, wall, out_dir, signals) -> bool:
    """Evaluate each snapshot and the final model into evals.csv. True if interrupted."""
    if cfg.eval.episodes <= 0:
        return False
    log = store.CsvLog(out_dir / "evals.csv", store.EVAL_COLUMNS)
    points = [(f, w, p) for f, w, p in snapshots if f < T] + [(T, wall, params.clone())]
    local = flatten_into(net)
    for frames, wall_s, snapshot in points:
        if signals.received is not None:
            return True
        local.copy_(snapshot)
        returns = evaluate(algo, net, env, cfg.eval.episodes, cfg.run_seed, cfg.eval.max_seconds,
                           should_stop=lambda: signals.received is not None)
        if signals.received is not None:
            return True  # an evaluation cut short is not written
        log.append([summarize(frames, wall_s, returns)])
    return False
