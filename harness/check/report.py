"""Check results: one :class:`CheckRow` per check, collected in a :class:`CheckReport`.

A row is ``pass``, ``fail`` or ``skip`` (a check that could not run because one it depends on
failed). Each row carries what was measured (as text for the table and as numbers in ``values``)
and, when it failed, ``fix``: what the plug-in author should change. An ``advisory`` row (gymnasium's
own env checker) is reported like the others, but its failure does not fail the report: the
report's verdict, and the command's exit status, follow the harness's own checks.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any

PASS, FAIL, SKIP = "pass", "fail", "skip"


@dataclass
class CheckRow:
    stage: str  # "api", "seed" or "performance" (algorithms); "api", "gymnasium", "network", "seed", "performance" (envs)
    name: str
    status: str  # PASS, FAIL or SKIP
    measured: str = ""
    fix: str = ""  # what to change, for failed rows
    values: dict[str, Any] = field(default_factory=dict)
    advisory: bool = False  # reported, but a failure does not fail the report

    @property
    def passed(self) -> bool:
        return self.status == PASS

    @property
    def failed(self) -> bool:
        return self.status == FAIL


@dataclass
class CheckReport:
    """The outcome of ``harness check algorithm`` or ``harness check env``."""

    kind: str  # "algorithm" or "env"
    subject: str  # the name as given
    settings: dict[str, Any] = field(default_factory=dict)
    rows: list[CheckRow] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when no check failed (skipped checks only happen after a failure); advisory rows
        do not count."""
        return not self.failures

    @property
    def failures(self) -> list[CheckRow]:
        """The failed rows that fail the report (advisory ones are in :attr:`advisory_failures`)."""
        return [r for r in self.rows if r.failed and not r.advisory]

    @property
    def advisory_failures(self) -> list[CheckRow]:
        return [r for r in self.rows if r.failed and r.advisory]

    def row(self, name: str) -> CheckRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no check named {name!r}; checks: {', '.join(r.name for r in self.rows)}")

    def __getitem__(self, name: str) -> CheckRow:
        return self.row(name)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject, "passed": self.passed,
                "settings": dict(self.settings), "rows": [asdict(r) for r in self.rows]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def ci_report(self) -> tuple[str, list]:
        """Markdown summary and JUnit cases (harness.ci_output): one case per check, the fix as its
        failure message."""
        from harness.ci_output import Case, markdown_table

        title = f"### harness check {self.kind} {self.subject}: {'passed' if self.passed else 'FAILED'}\n\n"
        rows = [[r.stage, r.name, _status_text(r) if r.failed else r.status, r.measured, r.fix] for r in self.rows]
        text = title + markdown_table(["stage", "check", "status", "measured", "fix"], rows)
        # an advisory failure is a skipped case whose message says so: not a failure of the suite
        cases = [Case(f"harness check {self.kind}.{r.stage}", r.name,
                      (r.fix or r.measured or "failed") if r.failed and not r.advisory else None, "check", r.measured,
                      skipped=r.status == SKIP or r.advisory and r.failed,
                      skipped_message=f"advisory check failed (not counted): {r.measured}" if r.advisory and r.failed
                      else "") for r in self.rows]
        return text, cases

    def table(self) -> str:
        """The pass/fail table as plain text."""
        return "\n".join([table_header()] + [format_row(r) for r in self.rows])

    def summary(self) -> str:
        n = len(self.rows)
        advisory = self.advisory_failures
        if self.passed:
            skipped = sum(r.status == SKIP for r in self.rows)
            extra = f" ({skipped} skipped)" if skipped else ""
            lines = [f"PASSED: {n - skipped - len(advisory)} of {n} checks{extra}"]
            if advisory:
                lines[0] += "; failed, advisory (not counted in the verdict or the exit status):"
        else:
            lines = [f"FAILED: {len(self.failures)} of {n} checks. What to fix:"]
            for r in self.failures:
                lines.append(f"  - {r.name}: {r.fix or r.measured}")
        for r in advisory:
            lines.append(f"  - {r.name}{'' if self.passed else ' (advisory, not counted)'}: {r.fix or r.measured}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return f"{self.table()}\n{self.summary()}"


_WIDTHS = (12, 34, 6)


def table_header() -> str:
    a, b, c = _WIDTHS
    return f"{'STAGE':<{a}} {'CHECK':<{b}} {'RESULT':<{c}} MEASURED"


def _status_text(r: CheckRow) -> str:
    return "FAIL (advisory)" if r.failed and r.advisory else r.status.upper()


def format_row(r: CheckRow) -> str:
    a, b, c = _WIDTHS
    return f"{r.stage:<{a}} {r.name:<{b}} {r.status.upper():<{c}} {r.measured}"


def describe_exception(exc: BaseException) -> str:
    """``TypeError: message (at file.py:12 in loss)``: the innermost frame, where the plug-in broke."""
    message = " ".join(str(exc).split())  # one line, whatever the exception's layout
    if len(message) > 300:
        message = message[:297] + "..."
    text = f"{type(exc).__name__}: {message}".strip()
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        f = frames[-1]
        text += f" (at {f.filename}:{f.lineno} in {f.name})"
    return text
