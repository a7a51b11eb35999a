"""What a person sees of a sweep: the live table, the final summary, and ``harness status``.

All three draw the same overview from :class:`~harness.sweep.plan.RunRecord` objects: runs done /
diverged / failed / running / interrupted / queued out of the total, frames done out of the total
budget, the aggregate training frames/s of the running runs and the ETA it implies.

On a terminal the table is redrawn in place (rich ``Live``); otherwise (CI, a log file) each event
is one line and the overview is printed every ``LOG_EVERY`` seconds.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from typing import Iterable

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from harness.sweep.plan import RunRecord

ORDER = ("done", "diverged", "failed", "running", "interrupted", "queued", "pending")
STYLE = {"done": "green", "diverged": "yellow", "failed": "red", "running": "cyan", "interrupted": "magenta",
         "queued": "white", "pending": "dim"}
LOG_EVERY = 30.0
RATE_WINDOW = 60.0  # seconds of history behind the live frames/s and ETA
MAX_RUNNING_ROWS = 16


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(max(0, seconds))
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    return (f"{d}d{h:02d}h{m:02d}m" if d else f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s")


def fmt_frames(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.3g}{unit}"
    return f"{int(n)}"


def display_state(rec: RunRecord, live_sweep: bool) -> str:
    """The state shown for a record: a ``running`` status with no live sweep behind it was cut off."""
    if rec.state in ("running", "evaluating"):
        return "running" if live_sweep else "interrupted"
    return rec.state


def overview(records: list[RunRecord], live_sweep: bool = True, fps: float | None = None) -> dict:
    """Counts and totals. ``fps``: the sweep's measured aggregate rate (default: sum over running runs)."""
    states = Counter(display_state(r, live_sweep) for r in records)
    running = [r for r in records if display_state(r, live_sweep) == "running"]
    if fps is None:
        fps = sum(float(r.fps or 0.0) for r in running)
    total_frames = sum(r.frames for r in records)
    done_frames = sum(r.frames if r.finished else min(r.frames_done, r.frames) for r in records)
    # failed runs are not going to be trained further by this sweep unless retried
    left = sum(max(0, r.frames - r.frames_done) for r in records if not r.finished and r.state != "failed")
    eta = left / fps if fps > 0 else (0.0 if left == 0 else None)
    return {"states": states, "total": len(records), "running": running, "fps": fps,
            "total_frames": total_frames, "done_frames": done_frames, "eta": eta}


def overview_table(records: list[RunRecord], title: str, elapsed: float | None = None, live_sweep: bool = True,
                   fps: float | None = None) -> Table:
    """The sweep at a glance, one quantity per row (fits a narrow terminal or a CI log)."""
    ov = overview(records, live_sweep, fps)
    t = Table.grid(padding=(0, 2))
    t.title = title
    t.title_justify = "left"
    t.title_style = "bold"
    t.add_column(style="bold")
    t.add_column()
    runs = Text()
    for s in ORDER:
        n = ov["states"].get(s, 0)
        if n or s in ("done", "failed", "running"):
            runs.append(f"{n} {s}", style=STYLE[s])
            runs.append(", ")
    runs.append(f"{ov['total']} total", style="bold")
    t.add_row("runs", runs)
    pct = 100.0 * ov["done_frames"] / ov["total_frames"] if ov["total_frames"] else 0.0
    t.add_row("frames", f"{fmt_frames(ov['done_frames'])} of {fmt_frames(ov['total_frames'])} ({pct:.0f}%)")
    if ov["running"]:
        t.add_row("frames/s", f"{ov['fps']:,.0f} (all running runs)")
        t.add_row("ETA", fmt_duration(ov["eta"]))
    if elapsed is not None:
        t.add_row("elapsed", fmt_duration(elapsed))
    return t


def running_table(records: Iterable[RunRecord]) -> Table:
    t = Table(show_edge=False, pad_edge=False, box=None)
    t.add_column("running", style="cyan", overflow="fold")
    t.add_column("threads", justify="right")
    t.add_column("progress", justify="right")
    t.add_column("frames/s", justify="right")
    t.add_column("node", overflow="fold")
    rows = list(records)
    for r in rows[:MAX_RUNNING_ROWS]:
        pct = 100.0 * min(r.frames_done, r.frames) / r.frames if r.frames else 0.0
        t.add_row(r.run_id, str(r.threads), f"{fmt_frames(r.frames_done)}/{fmt_frames(r.frames)} ({pct:.0f}%)",
                  f"{float(r.fps):,.0f}" if r.fps else "-", r.node or "-")
    if len(rows) > MAX_RUNNING_ROWS:
        t.add_row(f"... and {len(rows) - MAX_RUNNING_ROWS} more", "", "", "", "")
    return t


def problems_lines(records: list[RunRecord], live_sweep: bool = False) -> list[Text]:
    lines = []
    for state in ("failed", "diverged", "interrupted"):
        bad = [r for r in records if display_state(r, live_sweep) == state]
        if not bad:
            continue
        lines.append(Text(f"{state.capitalize()} runs ({len(bad)}):", style=f"bold {STYLE[state]}"))
        for r in bad:
            lines.append(Text(f"  {r.run_id}: {r.error or state}"))
    return lines


def overview_line(records: list[RunRecord], elapsed: float | None = None, fps: float | None = None) -> str:
    ov = overview(records, True, fps)
    parts = [f"{ov['states'].get(s, 0)} {s}" for s in ORDER if ov["states"].get(s)]
    line = f"[{', '.join(parts)} / {ov['total']} total]"
    if ov["running"]:
        line += f" {ov['fps']:,.0f} frames/s, ETA {fmt_duration(ov['eta'])}"
    if elapsed is not None:
        line += f", elapsed {fmt_duration(elapsed)}"
    return line


class SweepDisplay:
    """Live view of a sweep. ``event`` for one-off lines, ``refresh`` as often as convenient."""

    def __init__(self, records: list[RunRecord], title: str, console: Console | None = None, live: bool | None = None):
        self.records = records
        self.title = title
        self.console = console or Console(highlight=False)
        self.live_mode = self.console.is_terminal if live is None else live
        self.t0 = time.monotonic()
        self._live: Live | None = None
        self._last_log = 0.0
        self._history: deque[tuple[float, int]] = deque()

    def rate(self) -> float | None:
        """Aggregate frames/s of the sweep over the last ``RATE_WINDOW`` seconds (None at first)."""
        now = time.monotonic()
        done = sum(min(r.frames_done, r.frames) for r in self.records)
        self._history.append((now, done))
        while len(self._history) > 2 and now - self._history[1][0] >= RATE_WINDOW:
            self._history.popleft()
        t0, f0 = self._history[0]
        if now - t0 < 5.0:
            return None
        return max(0.0, (done - f0) / (now - t0))

    def _render(self):
        running = [r for r in self.records if r.state in ("running", "evaluating")]
        parts = [overview_table(self.records, self.title, time.monotonic() - self.t0, fps=self.rate())]
        if running:
            parts.append(running_table(running))
        return Group(*parts)

    def __enter__(self):
        if self.live_mode:
            self._live = Live(self._render(), console=self.console, refresh_per_second=2, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc):
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None

    def event(self, message: str, style: str | None = None) -> None:
        if self._live is not None:
            self._live.console.print(Text(message, style=style or ""))
        else:
            self.console.print(Text(message, style=style or ""), soft_wrap=True)

    def refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())
            return
        fps = self.rate()  # keep the history going between log lines
        if time.monotonic() - self._last_log >= LOG_EVERY:
            self._last_log = time.monotonic()
            self.console.print(overview_line(self.records, time.monotonic() - self.t0, fps), soft_wrap=True,
                               highlight=False)

    def summary(self, interrupted: bool = False) -> None:
        c = self.console
        c.print(overview_table(self.records, f"{self.title}: {'interrupted' if interrupted else 'finished'}",
                               time.monotonic() - self.t0, live_sweep=False))
        for line in problems_lines(self.records):
            c.print(line, soft_wrap=True)


def print_status(records: list[RunRecord], title: str, console: Console | None = None, live_sweep: bool = False,
                 show_all: bool = False, extra: list | None = None) -> None:
    """``harness status``: the overview table, the running runs, the runs with problems."""
    c = console or Console(highlight=False)
    c.print(overview_table(records, title, live_sweep=live_sweep))
    running = [r for r in records if display_state(r, live_sweep) == "running"]
    if running:
        c.print(running_table(running))
    for line in problems_lines(records, live_sweep):
        c.print(line, soft_wrap=True)
    if show_all:
        t = Table(show_edge=False, pad_edge=False, box=None)
        for col in ("run", "state", "frames", "frames/s"):
            t.add_column(col)
        for r in records:
            s = display_state(r, live_sweep)
            t.add_row(r.run_id, Text(s, style=STYLE.get(s, "")), f"{fmt_frames(r.frames_done)}/{fmt_frames(r.frames)}",
                      f"{float(r.fps):,.0f}" if r.fps else "-")
        c.print(t)
    if extra:
        c.print(f"{len(extra)} run folder(s) not in the suite (left alone): " + ", ".join(p.name for p in extra[:5])
                + (" ..." if len(extra) > 5 else ""), soft_wrap=True)
