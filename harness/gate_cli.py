"""``harness gate save`` / ``harness gate check``: the learning-regression gate's command line
(see harness/gate.py for the statistics)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.errors import HarnessError


@click.group("gate")
def gate() -> None:
    """Learning-regression gate for CI: save a baseline from a results folder, check a candidate against it."""


@gate.command("save")
@click.argument("results", type=click.Path(path_type=Path), nargs=-1, required=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="the baseline JSON to write (small: commit it)")
def save(results, out):
    """Summarise RESULTS... (sweeps' results folders) into a baseline: final scores per configuration.

    Write it from many seeds (it is done once): the gate judges a candidate's few runs at the
    spread of all of them. Several folders are merged by (algorithm, game, threads)."""
    from harness import store
    from harness.gate import GateError, summarise

    try:
        summary = summarise(list(results))
    except GateError as exc:
        raise HarnessError(str(exc)) from None
    summary = {k: v for k, v in summary.items() if not k.startswith("_")}  # the runs themselves stay out
    try:
        store.write_json_atomic(out, summary)
    except OSError as exc:
        raise HarnessError(f"{out}: cannot write the baseline ({exc.strerror or exc}): choose another --out") from None
    n = sum(len(g["final_scores"]) for g in summary["groups"])
    click.echo(f"wrote {out}: {len(summary['groups'])} configuration(s), {n} run(s) from {', '.join(map(str, results))}")


@gate.command("check")
@click.argument("candidate", type=click.Path(path_type=Path))
@click.option("--baseline", type=click.Path(path_type=Path), required=True,
              help="a baseline JSON (harness gate save) or a results folder")
@click.option("--tolerance", type=float, default=0.25, show_default=True,
              help="largest acceptable loss of the mean final score, as a fraction of the baseline's progress "
                   "above the game's floor (random play, or the environment's minimum)")
@click.option("--time-tolerance", type=float, default=0.5, show_default=True,
              help="largest acceptable increase of the mean frames to the reference score (half the "
                   "baseline's progress), as a fraction of the baseline's")
@click.option("--confidence", type=float, default=0.95, show_default=True,
              help="how sure the gate must be that the drop exceeds the tolerance before it fails")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write the Markdown summary here (also appended to $GITHUB_STEP_SUMMARY when set)")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write JUnit XML here: one test case per configuration")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write the verdicts as JSON here")
@click.option("--as", "renames", multiple=True, metavar="CANDIDATE=BASELINE",
              help="compare the candidate's algorithm CANDIDATE with the baseline's BASELINE (e.g. a fork "
                   "given by import path against a3c; repeatable)")
def check(candidate, baseline, tolerance, time_tolerance, confidence, markdown_path, junit_path, json_path, renames):
    """Compare CANDIDATE (a results folder) with a baseline. Exit 0: no regression; 1: a configuration
    regressed or is missing; 2: bad input."""
    from dataclasses import asdict

    from harness.gate import GateError, compare, failed, load_baseline, markdown, summarise, write_outputs

    mapping = {}
    for item in renames:
        cand_name, sep, base_name = item.partition("=")
        if not sep or not cand_name.strip() or not base_name.strip():
            raise HarnessError(f"--as {item!r}: expected CANDIDATE=BASELINE, e.g. --as my_pkg:MyA3C=a3c")
        mapping[cand_name.strip()] = base_name.strip()
    try:
        base = load_baseline(baseline)
        summary = summarise(candidate)
        for g in summary["groups"]:
            g["algorithm"] = mapping.get(g["algorithm"], g["algorithm"])
        summary["_runs"] = {(mapping.get(k[0], k[0]), *k[1:]): v for k, v in summary["_runs"].items()}
        verdicts = compare(summary, base, tolerance=tolerance, confidence=confidence, time_tolerance=time_tolerance)
        click.echo(markdown(verdicts), nl=False)
        write_outputs(verdicts, markdown_path, junit_path)
        if json_path is not None:
            json_path.write_text(json.dumps([asdict(v) for v in verdicts], indent=1))
    except GateError as exc:
        raise HarnessError(str(exc)) from None
    except OSError as exc:
        raise HarnessError(f"{exc.filename or '?'}: {exc.strerror or exc}: choose another output path") from None
    if failed(verdicts):
        raise SystemExit(1)
