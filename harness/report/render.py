"""Drawing and saving the report's figures, in two processes when the machine has two cores.

Figures are independent and drawing them (layout, PNG and PDF) is most of a large report's time, so
they are rendered by a small pool of forked workers.  Each job is ``(name, make)`` where ``make()``
returns a matplotlib Figure; a job that raises is reported back as an error text, never lost.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import traceback
from pathlib import Path
from typing import Callable

from harness.report.style import save, set_theme

Job = tuple[str, Callable[[], object]]
_JOBS: list[Job] = []  # read by forked workers (inherited, not pickled)


def _render(i: int, directory: Path, formats: tuple[str, ...]) -> tuple[str, list[Path] | None, str | None]:
    name, make = _JOBS[i]
    try:
        set_theme()
        return name, save(make(), directory, name, formats), None
    except Exception as exc:  # noqa: BLE001 - reported to the caller with its traceback
        return name, None, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"


def _render_star(args):
    return _render(*args)


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def render_figures(jobs: list[Job], directory: Path, formats: tuple[str, ...],
                   workers: int | None = None) -> list[tuple[str, list[Path] | None, str | None]]:
    """Render every job; returns ``(name, saved paths or None, error or None)`` in job order."""
    global _JOBS
    workers = default_workers() if workers is None else workers
    _JOBS = list(jobs)
    try:
        if workers > 1 and len(jobs) > 1 and "fork" in mp.get_all_start_methods():
            with mp.get_context("fork").Pool(min(workers, len(jobs))) as pool:
                return pool.map(_render_star, [(i, directory, formats) for i in range(len(jobs))], chunksize=1)
        return [_render(i, directory, formats) for i in range(len(jobs))]
    finally:
        _JOBS = []
