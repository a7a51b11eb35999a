"""The local executor: runs packed onto this machine's cores, one subprocess each.

Each run is ``python -m harness.sweep.runner RUN_DIR`` in its own process group, so a crash (even a
segfault) takes down only that run, and stopping a run stops every process it started.

Packing: a run with N threads reserves N cores; runs start largest first into the cores that are
free (first-fit decreasing), so the machine is never oversubscribed. A run that needs more threads
than the machine has cores waits until the machine is empty, then runs alone (with a warning; the
engine records ``host.oversubscribed`` in its status.json).

Stopping (Ctrl-C / SIGTERM): every run gets SIGINT (the engine stops its workers, checkpoints, and
writes ``interrupted``); runs still alive after ``grace_seconds`` — or at a second Ctrl-C — are
killed with their whole process group, and their status is set to ``interrupted``.
If the sweep itself is killed (SIGKILL), each runner gets SIGTERM from the kernel
(PR_SET_PDEATHSIG) and interrupts itself the same way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from harness import store
from harness.sweep import plan
from harness.sweep.plan import RunRecord
from harness.sweep.runner import EXIT_BUSY, PARENT_ENV, _write_failed

POLL_SECONDS = 0.2
PROGRESS_SECONDS = 1.0


class Stopper:
    """SIGINT/SIGTERM counter while a sweep runs (main thread only): 1 = stop cleanly, 2 = kill now."""

    def __init__(self):
        self.count = 0
        self._old: dict[int, object] = {}

    def _handle(self, signum, frame):
        self.count += 1

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def exit_description(rc: int) -> str:
    if rc < 0:
        try:
            return f"killed by signal {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exited with code {rc}"


def log_tail(path: Path, lines: int = 1) -> str | None:
    try:
        text = Path(path).read_text(errors="replace").strip().splitlines()
    except OSError:
        return None
    text = [ln for ln in text if ln.strip()]
    return " | ".join(text[-lines:]) if text else None


def settle(rec: RunRecord, rc: int | None, stopping: bool, how: str | None = None) -> None:
    """After a run's process ended: make sure its status.json holds a final state."""
    plan.read_record(rec)
    if rec.state in store.FINAL_STATES:
        return
    if rc == EXIT_BUSY:  # a runner of an earlier, killed sweep still owns the folder: leave it to it
        rec.state = "interrupted"
        rec.error = "its folder was still in use by a process of an earlier sweep; run the sweep again"
        return
    if stopping:
        record_outcome(rec, "interrupted", how or "stopped by the sweep")
    else:
        why = how or (f"runner {exit_description(rc)}" if rc is not None else "runner lost")
        tail = log_tail(rec.dir / plan.RUNNER_LOG)
        record_outcome(rec, "failed", why + (f"; last output: {tail}" if tail else ""))


def record_outcome(rec: RunRecord, state: str, why: str) -> None:
    """Write the final ``state`` of a run whose process ended without doing so into its status.json.
    Where the disk refuses (full, read-only), the sweep keeps it for its summary and exit code, and
    the error says that status.json could not be written."""
    try:
        _write_failed(rec.dir, state, why, None, rec.threads)
    except OSError as exc:
        rec.state, rec.unrecorded = state, True
        rec.error = f"{why}; {rec.dir / 'status.json'} could not be written ({exc.strerror or exc})"
        return
    plan.read_record(rec)


def prepare(rec: RunRecord) -> None:
    """Create the run folder with its config.json (the runner reads it)."""
    rec.dir.mkdir(parents=True, exist_ok=True)
    store.write_json_atomic(rec.dir / "config.json", rec.run.config.to_dict())


def start_order(todo: list[RunRecord]) -> list[RunRecord]:
    """Largest runs first (first-fit decreasing); plan order among equals."""
    return sorted(todo, key=lambda r: -r.cores)


def pick(pending: list[RunRecord], free: int, cores: int, n_active: int,
         max_parallel: int | None = None) -> list[tuple[RunRecord, int]]:
    """Which of ``pending`` (in start order) to start now, with the cores each reserves.

    First fit: a run starts when its threads fit in the free cores. A run with more threads than
    the machine has cores waits for the machine to be empty (nothing after it starts meanwhile)
    and then reserves every core.
    """
    out: list[tuple[RunRecord, int]] = []
    for rec in pending:
        if max_parallel and n_active + len(out) >= max_parallel:
            break
        if rec.cores > cores:
            if n_active or out:
                break  # let the machine drain, then run it alone
            out.append((rec, cores))
            break
        if rec.cores <= free:
            out.append((rec, rec.cores))
            free -= rec.cores
    return out


@dataclass
class _Active:
    rec: RunRecord
    proc: subprocess.Popen
    cores: int
    started: float
    log: object


class LocalExecutor:
    name = "local"

    def __init__(self, cores: int | None = None, max_parallel: int | None = None, grace_seconds: float = 30.0):
        self.cores = cores or plan.machine_cores()
        self.max_parallel = max_parallel
        self.grace_seconds = grace_seconds

    def describe(self) -> str:
        mp = f", at most {self.max_parallel} at once" if self.max_parallel else ""
        return f"local executor: {self.cores} core(s){mp}"

    def _launch(self, rec: RunRecord, cores: int) -> _Active:
        prepare(rec)
        log = open(rec.dir / plan.RUNNER_LOG, "ab")
        env = dict(os.environ)
        env[PARENT_ENV] = str(os.getpid())
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness.sweep.runner", str(rec.dir)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True, env=env,
        )
        rec.state, rec.error, rec.fps = "running", None, None
        return _Active(rec, proc, cores, time.monotonic(), log)

    @staticmethod
    def _signal(a: _Active, sig: int) -> None:
        try:
            os.killpg(a.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def run(self, todo: list[RunRecord], display, stopper: Stopper) -> bool:
        """Run ``todo`` to the end (or until stopped). Returns True when stopped by a signal."""
        pending = start_order(todo)
        active: dict[str, _Active] = {}
        free = self.cores
        stopping_since: float | None = None
        killed = False
        last_progress = 0.0
        try:
            while pending or active:
                now = time.monotonic()
                if stopper.count and stopping_since is None:
                    stopping_since = now
                    display.event(f"stopping: interrupting {len(active)} running run(s) "
                                  f"(Ctrl-C again to kill them at once)", "bold magenta")
                    for a in active.values():
                        self._signal(a, signal.SIGINT)
                if stopping_since is not None and not killed and active and (
                        stopper.count >= 2 or now - stopping_since > self.grace_seconds):
                    killed = True
                    display.event(f"killing {len(active)} run(s) that did not stop", "bold red")
                    for a in active.values():
                        self._signal(a, signal.SIGKILL)

                for rid, a in list(active.items()):
                    rc = a.proc.poll()
                    if rc is None:
                        continue
                    del active[rid]
                    free += a.cores
                    a.log.close()
                    if killed:
                        self._signal(a, signal.SIGKILL)  # anything left in its group
                    settle(a.rec, rc, stopping_since is not None, "killed by the sweep after Ctrl-C" if killed else None)
                    self._report(display, a.rec, time.monotonic() - a.started)

                if stopping_since is None:
                    for rec, need in pick(pending, free, self.cores, len(active), self.max_parallel):
                        if rec.cores > self.cores:
                            display.event(f"warning: {rec.run_id} needs {rec.threads} threads but there are "
                                          f"{self.cores} cores: running it alone, oversubscribed", "yellow")
                        pending.remove(rec)
                        try:
                            active[rec.run_id] = self._launch(rec, need)
                        except OSError as exc:  # e.g. a full disk: this run fails, the sweep goes on
                            rec.state, rec.error = "failed", store.describe_os_error(
                                exc, "starting the run", "rerun the sweep with --retry-failed")
                            self._report(display, rec, None)
                            continue
                        free -= need
                        display.event(f"start    {rec.run_id}")
                elif not active:
                    break

                if now - last_progress >= PROGRESS_SECONDS:
                    last_progress = now
                    for a in active.values():
                        prog = store.read_json(a.rec.dir / plan.PROGRESS_FILE)
                        if prog:
                            a.rec.frames_done = int(prog.get("frames", a.rec.frames_done))
                            a.rec.fps = prog.get("frames_per_second")
                            a.rec.node = prog.get("node") or a.rec.node
                display.refresh()
                time.sleep(POLL_SECONDS)
        finally:
            # an exception in the loop itself: leave nothing running
            for a in active.values():
                self._signal(a, signal.SIGINT)
            deadline = time.monotonic() + self.grace_seconds
            for a in active.values():
                try:
                    a.proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self._signal(a, signal.SIGKILL)
                    a.proc.wait()
                a.log.close()
                settle(a.rec, a.proc.returncode, True)
        return stopping_since is not None

    @staticmethod
    def _report(display, rec: RunRecord, seconds: float | None) -> None:
        report_outcome(display, rec, seconds)


def report_outcome(display, rec: RunRecord, seconds: float | None = None) -> None:
    took = f" in {seconds:.0f} s" if seconds is not None else ""
    if rec.state == "done":
        fps = f", {float(rec.fps):,.0f} frames/s" if rec.fps else ""
        display.event(f"done     {rec.run_id}{took}{fps}", "green")
    elif rec.state == "diverged":
        display.event(f"diverged {rec.run_id}: {rec.error}", "yellow")
    elif rec.state == "interrupted":
        display.event(f"stopped  {rec.run_id} at {rec.frames_done:,} frames", "magenta")
    else:
        display.event(f"FAILED   {rec.run_id}: {rec.error}", "red")
