"""``harness report``: the click command (registered by the lead on the ``harness`` group)."""

from __future__ import annotations

from pathlib import Path

import click

# Light imports only: the heavy ones (pandas, matplotlib) wait until the command runs, so
# registering the command does not slow down ``harness --help``.
from harness.report.load import BASELINES, ReportError, parse_reference


class ReportUsageError(click.ClickException):
    """One-line ``Error: ...`` message and exit status 2 (bad input, nothing to report)."""

    exit_code = 2


def _references(ctx, param, values) -> dict[str, float]:
    out: dict[str, float] = {}
    for text in values:
        try:
            game, score = parse_reference(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
        out[game] = score
    return out


@click.command("report")
@click.argument("results_dirs", metavar="RESULTS_DIR...", nargs=-1, required=True,
                type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Report folder (default: RESULTS_DIR/report of the first directory).")
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True,
              help="Average the runs of the k best learning rates per curve (the paper uses 3).")
@click.option("--reference", "references", multiple=True, metavar="GAME=SCORE", callback=_references,
              help="Reference score for the speedup of GAME (repeatable); overrides the suite's reference_scores.")
@click.option("--baseline", type=click.Choice(BASELINES), default="no-op", show_default=True,
              help="Human/random table for human-normalised Atari scores.")
@click.option("--bootstrap-reps", type=click.IntRange(min=0), default=2000, show_default=True,
              help="Bootstrap repetitions for every confidence interval (0 = no intervals).")
@click.option("--curves", type=click.Choice(["train", "eval"]), default="train", show_default=True,
              help="Learning curves and speedup from training episodes (as the paper) or from evaluation "
                   "snapshots (runs trained with --eval-every-frames).")
@click.option("--pdf/--no-pdf", default=True, show_default=True,
              help="Save every figure as PDF too (vector, TrueType fonts for journals) beside its PNG; "
                   "--no-pdf draws a large report about a fifth faster.")
def report(results_dirs, out, top_k, references, baseline, bootstrap_reps, curves, pdf):
    """Write the scaling report (figures, tables, index.html) of the sweeps in RESULTS_DIR..."""
    for d in results_dirs:
        if not d.is_dir():
            raise ReportUsageError(f"results directory {d} does not exist")
    from harness.report.build import build_report

    try:
        summary = build_report(list(results_dirs), out=out, top_k=top_k, references=references,
                               baseline=baseline, bootstrap_reps=bootstrap_reps, curves=curves,
                               formats=("png", "pdf") if pdf else ("png",))
    except ReportError as exc:
        raise ReportUsageError(str(exc)) from None
    click.echo(str(summary))
