"""One run of a sweep in its own process: ``python -m harness.sweep.runner RUN_DIR``.

Reads ``RUN_DIR/config.json``, trains with :func:`harness.engine.train` (resuming from
``checkpoint.pt`` when there is one) and writes ``progress.json`` (frames, frames/s) every couple
of seconds for the sweep's live display. A run that crashes takes down only this process; the
crash is recorded in ``status.json`` as ``failed`` with its traceback.

Safety:

- it holds an exclusive ``flock`` on ``RUN_DIR/.run.lock`` while it runs, so two processes never
  train the same folder (a run left over by a killed sweep finishes its shutdown first);
- it asks the kernel for SIGTERM when its parent (the sweep, or a Ray worker) dies, which the
  engine turns into a clean ``interrupted`` with a final checkpoint.

Exit codes: 0 done, 1 failed, 3 diverged, 130 interrupted, 75 the folder is busy.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from harness import store

EXIT_CODES = {"done": 0, "failed": 1, "diverged": 3, "interrupted": 130}
EXIT_BUSY = 75
PROGRESS_EVERY = 2.0
PARENT_ENV = "HARNESS_SWEEP_PARENT"
#: where the run runs, as progress.json "node" shows it (set by the Ray executor; else the host name)
NODE_ENV = "HARNESS_NODE"


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Linux: the kernel sends ``sig`` to this process when its parent dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, int(sig))  # PR_SET_PDEATHSIG
    except OSError:  # pragma: no cover - not Linux
        return
    expected = os.environ.get(PARENT_ENV)
    if expected and os.getppid() != int(expected):  # the parent died before prctl took effect
        os.kill(os.getpid(), sig)


def lock_run_dir(run_dir: Path, wait_seconds: float = 120.0) -> store.FolderLock | None:
    """The run folder's lock (``store.FolderLock``, the engine's own), or None if still busy after the wait."""
    try:
        return store.FolderLock(run_dir).acquire(wait_seconds)
    except store.LockBusy:
        return None


def run_dir_busy(run_dir: Path) -> bool:
    """True while some process holds the run folder's lock."""
    from harness.sweep.lock import is_flocked

    return is_flocked(Path(run_dir) / store.RUN_LOCK)


def _write_failed(run_dir: Path, state: str, error: str, tb: str | None, threads: int | None) -> None:
    """A final status.json for a run that ended outside the engine's own bookkeeping (OSError when the
    disk does not allow it)."""
    old = store.read_json(run_dir / "status.json") or {}
    status = {
        "schema_version": 1,
        "state": state,
        "error": error,
        "started_at": old.get("started_at") or store.utc_now(),
        "ended_at": store.utc_now(),
        "frames_done": int(old.get("frames_done") or 0),
        "wall_seconds": float(old.get("wall_seconds") or 0.0),
        "frames_per_second": old.get("frames_per_second"),
        "host": old.get("host") or store.host_info(threads),
        "versions": old.get("versions") or store.versions(),
        "pid": os.getpid(),
    }
    if tb:
        status["traceback"] = tb
    store.write_json_atomic(run_dir / "status.json", status)


class _ProgressWriter:
    def __init__(self, run_dir: Path):
        self.path = run_dir / "progress.json"
        self.last = 0.0
        self.node = os.environ.get(NODE_ENV) or os.uname().nodename

    def __call__(self, p) -> None:
        from harness import store

        now = time.time()
        if now - self.last < PROGRESS_EVERY:
            return
        self.last = now
        try:
            store.write_json_atomic(self.path, {
                "frames": int(p.frames), "budget": int(p.budget), "frames_per_second": round(float(p.frames_per_second), 1),
                "wall_seconds": round(float(p.wall_seconds), 2), "episodes": int(p.episodes),
                "recent_return": p.recent_return, "updated_at": now, "pid": os.getpid(),
                "node": self.node,
            })
        except OSError:
            pass


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _say(text: str, file=None) -> None:
    """A line for runner.log; a log the disk has no room for loses it, and the run goes on."""
    try:
        print(text, file=file or sys.stdout, flush=True)
    except OSError:
        pass


def _record(run_dir: Path, lock, state: str, error: str, tb: str | None, threads: int | None) -> None:
    if lock is None:
        return
    try:
        _write_failed(run_dir, state, error, tb, threads)
    except OSError:  # a full disk: the sweep records the outcome from the exit code and this log
        pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m harness.sweep.runner RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(argv[0])
    from harness.config import ConfigError, RunConfig
    from harness.engine.run import RunFolderError, train

    die_with_parent()
    # until the engine installs its own handlers (and after it restores them): stop promptly
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    threads = None
    lock = None
    try:
        lock = lock_run_dir(run_dir)
        if lock is None:
            print(f"{run_dir}: another process is running this folder", file=sys.stderr)
            return EXIT_BUSY
        cfg = RunConfig.load(run_dir / "config.json")
        threads = cfg.threads
        _say(f"[runner {os.getpid()}] {cfg.run_id or run_dir.name}: {cfg.algorithm} on {cfg.env}, "
             f"{cfg.threads} thread(s), lr {cfg.lr:g}, seed {cfg.seed}, {cfg.frames:,} frames")
        result = train(cfg, run_dir, resume=True, on_progress=_ProgressWriter(run_dir))
        _say(f"[runner {os.getpid()}] {result.state}: {result.frames:,} frames in {result.wall_seconds:.1f} s"
             + (f" - {result.error}" if result.error else ""))
        return EXIT_CODES.get(result.state, 1)
    except KeyboardInterrupt:
        _record(run_dir, lock, "interrupted", "interrupted before training started", None, threads)
        return 130
    except (ConfigError, RunFolderError) as exc:  # one line, as harness train prints it; no traceback
        _say(f"harness: error: {exc}", sys.stderr)
        if not (isinstance(exc, RunFolderError) and exc.exit_code == 1):  # exit code 1: the engine wrote it
            _record(run_dir, lock, "failed", str(exc), None, threads)
        return 1
    except BaseException as exc:  # noqa: BLE001 - record any crash in status.json
        tb = traceback.format_exc()
        _say(tb, sys.stderr)
        msg = f"{type(exc).__name__}: {exc}".strip().splitlines()
        _record(run_dir, lock, "failed", msg[0] if msg else type(exc).__name__, tb, threads)
        return 1
    finally:
        if lock is not None:
            (run_dir / "progress.json").unlink(missing_ok=True)
            lock.release()


if __name__ == "__main__":
    raise SystemExit(main())
