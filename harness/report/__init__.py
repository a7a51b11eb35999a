"""The scaling report of the A3C paper's analyses over run folders.

Public API::

    from harness.report import build_report, ReportSummary, ReportError
    summary = build_report([Path("results/smoke")], out=None, top_k=3,
                           references={"Pong": 10.0}, baseline="no-op", bootstrap_reps=2000)

and the click command ``harness.report.cli.report`` (``cli.add_command(report)``).

Run folders are read through :mod:`harness.results` (the public pandas reader), so a notebook and
the report apply the same rules. Modules: ``load`` (run folders), ``scores`` (the score definition, normalisation, reference data),
``curves`` (top-k learning rates, Figs. 3/4), ``speedup`` (Table 2), ``robustness`` (Figs. 2, S5),
``aggregates`` (rliable statistics), ``throughput``, ``html``, ``tables``, ``build``, ``cli``.
The statistics themselves are plain array functions in ``harness.stats``.
"""

from harness.report.load import ReportError, parse_reference

__all__ = ["ReportError", "ReportSummary", "build_report", "parse_reference"]


def __getattr__(name):  # build_report pulls in pandas and matplotlib: import it only when asked for
    if name in ("build_report", "ReportSummary"):
        from harness.report import build

        return getattr(build, name)
    raise AttributeError(f"module 'harness.report' has no attribute {name!r}")
