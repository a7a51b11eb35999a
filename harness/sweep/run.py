"""A whole sweep: plan, lock, run what is left with an executor, summarise. The CLI calls these."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.suite import Suite, write_suite_files
from harness.sweep import plan
from harness.sweep.display import SweepDisplay, fmt_duration
from harness.sweep.local import LocalExecutor, Stopper
from harness.sweep.lock import SweepLock

EXIT_OK, EXIT_SOME_FAILED, EXIT_INTERRUPTED = 0, 1, 130


@dataclass
class SweepOutcome:
    suite_dir: Path
    records: list[plan.RunRecord]
    interrupted: bool
    exit_code: int

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.records:
            out[r.state] = out.get(r.state, 0) + 1
        return out


def _values(values: list, limit: int = 8) -> str:
    from harness.suite import format_lr

    shown = [format_lr(v) if isinstance(v, float) else str(v) for v in values[:limit]]
    return ", ".join(shown) + (f", ... ({len(values)} values)" if len(values) > limit else "")


def _hours(h: float) -> str:
    return f"{h:,.0f}" if h >= 100 else f"{h:.3g}"


def print_plan(suite: Suite, recs: list[plan.RunRecord], results_dir: Path, console: Console,
               cores: int | None = None, retry_failed: bool = False) -> None:
    """The ``--dry-run`` report: runs per axis, totals, cost estimate, what is already on disk."""
    base = plan.suite_dir(results_dir, suite)
    console.print(f"[bold]Suite {suite.name}[/bold] ({suite.source}) -> {base}", soft_wrap=True, highlight=False)
    if suite.description:
        console.print(suite.description.strip(), highlight=False, style="dim")
    t = Table(show_edge=False, pad_edge=False, box=None)
    t.add_column("axis")
    t.add_column("n", justify="right")
    t.add_column("runs each", justify="right")
    t.add_column("values")
    points = suite.points()
    for axis, values in suite.axes.items():
        label = axis
        counts = {sum(1 for p in points if p[axis] == v) for v in values}
        each = f"{min(counts):,}" if len(counts) == 1 else f"{min(counts):,}-{max(counts):,}"

        shown = _values(values)
        if axis == "learning_rates" and suite.learning_rate_sampling:
            s = suite.learning_rate_sampling
            shown = f"log-uniform in [{s['loguniform'][0]:g}, {s['loguniform'][1]:g}], seed {s['seed']}: {shown}"
        t.add_row(label, str(len(values)), each, shown)
    console.print(t)
    n = len(recs)
    total_frames = sum(r.frames for r in recs)
    est = plan.estimate(recs, results_dir)
    cores = cores or plan.machine_cores()
    how = ("measured throughput of " + f"{est.n_measured} finished run(s)") if est.sources.get("measured") else None
    if est.sources.get("default"):
        d = ", ".join(f"{k} {v:g}" for k, v in plan.DEFAULT_FPS_PER_THREAD.items())
        how = (how + "; " if how else "") + f"default frames/s per thread ({d}) for {est.sources['default']} run(s)"
    if suite.exclude:
        console.print(f"exclude         {len(points):,} of the {math.prod(len(v) for v in suite.axes.values()):,} "
                      "combinations are planned: " + "; ".join(", ".join(f"{a} {_values(v)}" for a, v in e.items())
                                                        + " left out" for e in suite.exclude), soft_wrap=True, highlight=False)
    lines = [
        f"total runs      {n:,}  (each run: {suite.frames:,} frames)",
        f"total frames    {total_frames:,}",
        f"estimated cost  {_hours(est.core_hours)} core-hours of training ({how})",
        f"on this machine about {fmt_duration(est.core_hours_left * 3600 / cores)} for what is left, on {cores} core(s)",
    ]
    states: dict[str, int] = {}
    for r in recs:
        states[r.state] = states.get(r.state, 0) + 1
    todo = sum(1 for r in recs if plan.to_run(r, retry_failed))
    on_disk = ", ".join(f"{states[s]} {s}" for s in sorted(states) if s != "pending")
    lines.append(f"already on disk {on_disk or 'nothing'}; a sweep now would run {todo:,}")
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False)
    big = sorted({p["threads"] for p in points if p.get("schedules", "hogwild") == "hogwild" and p["threads"] > cores})
    if big:
        console.print(f"warning: threads {big} exceed this machine's {cores} cores: such Hogwild runs run alone, "
                      "oversubscribed (virtual runs model one core per thread on one core)",
                      style="yellow", soft_wrap=True)


def make_executor(kind: str, *, max_parallel: int | None, cores: int | None, address: str | None):
    if kind == "ray":
        from harness.sweep.ray_executor import RayExecutor

        ex = RayExecutor(address=address, max_parallel=max_parallel, num_cpus=cores)
        ex.connect()
        return ex
    return LocalExecutor(cores=cores, max_parallel=max_parallel)


def run_sweep(suite: Suite, results_dir: Path, *, executor="local", max_parallel: int | None = None,
              retry_failed: bool = False, address: str | None = None, cores: int | None = None,
              console: Console | None = None, live: bool | None = None) -> SweepOutcome:
    """Run every planned run that is not finished yet. Raises PlanError, LockedError, RayUnavailable.

    ``executor``: ``"local"``, ``"ray"``, or an executor object (``describe()``, ``run(todo, display,
    stopper)``, optional ``connect()`` / ``shutdown()``).
    """
    console = console or Console(highlight=False)
    kind = executor if isinstance(executor, str) else getattr(executor, "name", "custom")
    base = plan.suite_dir(results_dir, suite)
    recs = plan.records(suite, results_dir)  # before anything is written: a mismatch stops here
    with SweepLock(base, kind) as lock:
        if lock.stale:
            console.print(f"note: taking over the lock of a sweep that is gone (pid {lock.stale.get('pid')}, "
                          f"started {lock.stale.get('started_at')})", style="dim", soft_wrap=True)
        recs = plan.records(suite, results_dir)  # again, now that nobody else writes here
        write_suite_files(suite, base)
        todo = [r for r in recs if plan.to_run(r, retry_failed)]
        skipped_failed = sum(1 for r in recs if r.state == "failed" and not retry_failed)
        finished = sum(1 for r in recs if r.finished)
        resumed = sum(1 for r in todo if r.state != "pending")
        msg = (f"{suite.name}: {len(recs)} planned run(s): {finished} finished, {len(todo)} to run"
               f" ({resumed} resumed from their folders)")
        if skipped_failed:
            msg += f", {skipped_failed} failed left as they are (--retry-failed reruns them)"
        console.print(msg, soft_wrap=True, highlight=False)
        extra = plan.extra_folders(suite, results_dir)
        if extra:
            console.print(f"note: {len(extra)} run folder(s) in {base} are not in the suite; left alone",
                          style="dim", soft_wrap=True)
        display = SweepDisplay(recs, f"sweep {suite.name}", console=console, live=live)
        interrupted = False
        if todo:
            if isinstance(executor, str):
                ex = make_executor(executor, max_parallel=max_parallel, cores=cores, address=address)
            else:
                ex = executor
                if hasattr(ex, "connect"):
                    ex.connect()
            try:
                console.print(f"{ex.describe()}; results in {base}", soft_wrap=True, highlight=False, style="dim")
                for r in todo:
                    r.state = "queued"
                with Stopper() as stopper, display:
                    interrupted = ex.run(todo, display, stopper)
            finally:
                if hasattr(ex, "shutdown"):
                    ex.shutdown()
        for r in recs:
            plan.read_record(r)
        display.summary(interrupted)
    failed = [r for r in recs if r.state not in plan.FINISHED]
    code = EXIT_INTERRUPTED if interrupted else EXIT_SOME_FAILED if failed else EXIT_OK
    if failed and not interrupted and any(r.state == "failed" for r in recs):
        console.print(f"rerun failed runs with: harness sweep {suite.source} --retry-failed", style="dim", soft_wrap=True)
    return SweepOutcome(base, recs, interrupted, code)
