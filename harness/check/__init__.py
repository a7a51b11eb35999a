"""Conformance checks for plug-ins: ``harness check algorithm`` and ``harness check env``.

Python callers get the same checks as the command line, as a :class:`CheckReport`::

    from harness.check import check_algorithm, check_env

    report = check_algorithm("my_pkg.algo:MyA3C", frames=2_000)
    print(report)                      # the pass/fail table and what to fix
    assert report.passed, report.summary()
    report["async updates change θ"].values["max_abs_delta"]

See docs/PLUGINS.md.
"""

from harness.check.report import CheckReport, CheckRow
from harness.check.runner import CheckFailure

__all__ = ["check_algorithm", "check_env", "CheckReport", "CheckRow", "CheckFailure", "measure_worker_fps"]


def __getattr__(name: str):
    """The checks import torch and the environments: loaded on first use (``harness report`` and
    ``harness gate`` import this package through the command line and need neither)."""
    if name in ("check_algorithm", "measure_worker_fps"):
        from harness.check import algorithm

        return getattr(algorithm, name)
    if name == "check_env":
        from harness.check.env import check_env

        return check_env
    raise AttributeError(f"module 'harness.check' has no attribute {name!r}")
