"""Running checks in order, with dependencies: a check whose prerequisite failed is skipped."""

from __future__ import annotations

from typing import Any, Callable

from harness.check.report import FAIL, PASS, SKIP, CheckReport, CheckRow, describe_exception


class CheckFailure(Exception):
    """Raised inside a check: what was measured, and what to fix."""

    def __init__(self, measured: str, fix: str, values: dict[str, Any] | None = None):
        super().__init__(measured)
        self.measured, self.fix, self.values = measured, fix, dict(values or {})


class Runner:
    def __init__(self, report: CheckReport, stages: tuple[str, ...], progress: Callable[[CheckRow], None] | None):
        self.report, self.stages, self.progress = report, stages, progress

    def _add(self, row: CheckRow) -> CheckRow:
        self.report.rows.append(row)
        if self.progress is not None:
            self.progress(row)
        return row

    def status(self, name: str) -> str | None:
        for r in self.report.rows:
            if r.name == name:
                return r.status
        return None

    def run(self, stage: str, name: str, fn: Callable[[], tuple[str, dict[str, Any]]],
            needs: tuple[str, ...] = (), fix: str = "", always: bool = False, advisory: bool = False) -> CheckRow | None:
        """Run ``fn`` as check ``name``; it returns (measured, values) or raises CheckFailure.

        Any other exception fails the check with the exception and the innermost frame, and
        ``fix`` as the advice. Checks of stages not selected are left out of the report, unless
        ``always`` (cheap prerequisites of the other stages). An ``advisory`` row is reported but
        does not fail the report (:class:`CheckRow`).
        """
        if stage not in self.stages and not always:
            return None
        blocked = [n for n in needs if self.status(n) in (FAIL, SKIP)]
        if blocked:
            return self._add(CheckRow(stage, name, SKIP, f"skipped: fix '{blocked[0]}' first", advisory=advisory))
        try:
            measured, values = fn()
        except CheckFailure as exc:
            return self._add(CheckRow(stage, name, FAIL, exc.measured, exc.fix, exc.values, advisory))
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken plug-in is what we are here to report
            text = describe_exception(exc)
            return self._add(CheckRow(stage, name, FAIL, f"raised {text}", fix or f"it raised {text}",
                                      {"exception": text}, advisory))
        return self._add(CheckRow(stage, name, PASS, measured, "", values, advisory))
