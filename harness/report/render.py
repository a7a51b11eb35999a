"""Drawing and saving the report's figures, in forked processes while the report goes on.

Figures are independent and drawing them (layout, PNG and PDF) is most of a large report's time.
``Renderer.submit(name, make)`` starts a figure as soon as its inputs exist: a forked process
inherits ``make`` (a closure over the report's data, never pickled), calls it for a matplotlib
Figure, saves it and sends back the paths or the error text (a figure that raises is reported,
never lost). While the report still computes, one process draws beside it (on two cores the
analyses keep the other); ``results()`` then uses every worker for what is left. With one worker, or
no fork, figures are drawn in this process by ``results()``.
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from collections import deque
from pathlib import Path
from typing import Callable

from harness.report.load import default_workers
from harness.report.style import save, set_theme

Job = tuple[str, Callable[[], object]]
Result = tuple[str, "list[Path] | None", "str | None"]


def _render(name: str, make: Callable[[], object], directory: Path, formats: tuple[str, ...]) -> Result:
    try:
        set_theme()
        return name, save(make(), directory, name, formats), None
    except Exception as exc:  # noqa: BLE001 - reported to the caller with its traceback
        return name, None, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"


def _child(conn, name, make, directory, formats) -> None:
    conn.send(_render(name, make, directory, formats))
    conn.close()


class Renderer:
    def __init__(self, directory: Path, formats: tuple[str, ...], workers: int | None = None):
        self.directory, self.formats = directory, formats
        self.workers = default_workers() if workers is None else max(1, workers)
        self.forked = self.workers > 1 and "fork" in mp.get_all_start_methods()
        self.queue: deque[Job] = deque()
        self.running: list[tuple[str, object, object]] = []  # (name, process, receiving end)
        self.done: dict[str, Result] = {}
        self.order: list[str] = []

    def submit(self, name: str, make: Callable[[], object]) -> None:
        self.order.append(name)
        self.queue.append((name, make))
        if self.forked:
            self._start(limit=self.workers - 1)  # this process is still computing the report

    def _start(self, limit: int) -> None:
        self._collect([r for r in self.running if r[2].poll()])
        ctx = mp.get_context("fork")
        while self.queue and len(self.running) < limit:
            name, make = self.queue.popleft()
            recv, send = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_child, args=(send, name, make, self.directory, self.formats), daemon=True)
            p.start()
            send.close()
            self.running.append((name, p, recv))

    def _collect(self, finished) -> None:
        for item in finished:
            name, p, recv = item
            try:
                self.done[name] = recv.recv()
            except EOFError:  # the process died without a word (killed, out of memory)
                p.join()
                self.done[name] = (name, None, f"the process drawing it ended with exit code {p.exitcode}")
            p.join()
            recv.close()
            self.running.remove(item)

    def results(self) -> list[Result]:
        """Wait for every figure; ``(name, saved paths or None, error or None)`` in submission order."""
        from multiprocessing.connection import wait

        if not self.forked:
            while self.queue:
                name, make = self.queue.popleft()
                self.done[name] = _render(name, make, self.directory, self.formats)
        while self.queue or self.running:
            self._start(limit=self.workers)  # collects those already done: maybe all of them
            if self.running:
                ready = wait([recv for _, _, recv in self.running])
                self._collect([r for r in self.running if r[2] in ready])
        return [self.done[name] for name in self.order]
