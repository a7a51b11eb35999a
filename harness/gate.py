"""``harness gate``: did a change make learning worse? A verdict with statistics, for CI.

A *baseline* is a small JSON summary of a results folder (``harness gate save RESULTS --out FILE``):
per (algorithm, game, threads), the final score of every finished run (the report's final score:
the mean training return over the last 10% of the budget; a diverged run scores the game's
collapse score, ``report.scores.run_table``) and the game's normalisation (low, high): the random
and human scores for Atari, the environment's bounds (CartPole 0-500), else the observed range.

``harness gate check CANDIDATE --baseline FILE`` compares a candidate results folder with it, per
configuration present in the baseline, relative to what the baseline learned above the game's floor:

    d = (mean(candidate) − mean(baseline)) / (mean(baseline) − low)

(the denominator at least 5% of the game's range high − low, so a baseline that learned nothing
does not make every wobble a regression). Smoke budgets end far below a game's maximum (CartPole
runs of a few minutes end near 100 of 500), so the tolerance is a fraction of the progress made,
not of the whole range: ``--tolerance 0.25`` fails a candidate that lost more than a quarter of it.

with a bootstrap distribution of d (``bootstrap_difference``: under a location shift, both sides
resampled from the pooled residuals of all runs, ``reps`` times; write the baseline from many seeds,
it is done once, so that the method's spread is known). The configuration *regresses* when, with the stated confidence, d is below −tolerance:
the ``confidence`` quantile of the bootstrap distribution (a one-sided upper bound) is below
−tolerance. So a candidate a little worse by seed noise passes, and one clearly worse by more than
the tolerance fails. Verdicts: ``pass``, ``regression``, ``missing`` (no finished candidate runs;
counts as a failure: the gate cannot vouch for it).

*Time to a reference score* (data efficiency): the baseline fixes a reference, half of its mean
progress above the floor (``low + 0.5 (mean(baseline) − low)``), and records for every run the frames
at which its training score first reached it (the score at frame f: the mean return of the episodes
ending in the last 10% of the budget before f, as the final score; a run that never reaches it
counts at its budget, which can only understate a slowdown). The candidate's runs are measured
against the same reference, and

    d_t = (mean(baseline frames) − mean(candidate frames)) / mean(baseline frames)

(negative when the candidate needs more frames) is bootstrapped the same way: the configuration
also regresses when, with the stated confidence, it needs more than ``time_tolerance`` (default 0.5)
more frames. The time to a reference varies more between seeds than the final score (fresh seeds
of an unchanged A3C on the learning smoke suite needed 26% more frames on average in one run of the
validation), hence its larger default tolerance.
Baselines written before this was added have no ``frames_to_reference``: the time check is skipped.

Exit codes of ``check``: 0 no regression, 1 a regression or a missing configuration, 2 bad input.
Outputs: a table on stdout, ``--markdown FILE`` (and ``$GITHUB_STEP_SUMMARY`` when set),
``--junit FILE`` (one test case per configuration).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from harness.ci_output import Case, junit_xml, publish

SCHEMA_VERSION = 1
KEYS = ("algorithm", "game", "threads")
#: the smallest progress a comparison is scaled by, as a fraction of the game's range
MIN_PROGRESS = 0.05
DEFAULT_TOLERANCE = 0.25
DEFAULT_TIME_TOLERANCE = 0.5
#: the reference score of the time check: this fraction of the baseline's mean progress above the floor
REFERENCE_FRACTION = 0.5


class GateError(ValueError):
    """Bad input: one line naming what is wrong and what to do."""


# ------------------------------------------------------------------------------------------------
def summarise(results: Path | list[Path]) -> dict:
    """The baseline summary of one results folder or several (e.g. runs of a suite with more seeds,
    under other suite names: the configurations are matched by algorithm, game and threads)."""
    from harness import store
    from harness.report.load import load_runs
    from harness.report.scores import run_table

    folders = [Path(r) for r in (results if isinstance(results, (list, tuple)) else [results])]
    for f in folders:
        if not f.is_dir():
            raise GateError(f"{f}: no such folder: give a sweep's results folder (results/<suite>)")
    results = folders[0] if len(folders) == 1 else ", ".join(map(str, folders))
    runset = load_runs(folders)
    table, norms = run_table(runset.runs)
    if table.empty:
        raise GateError(f"{results}: no run folders found: run the suite first (harness sweep SUITE)")
    done = table[table["state"].isin(["done", "diverged"])]
    if done.empty:
        raise GateError(f"{results}: no finished runs (done or diverged): finish the sweep first")
    groups = []
    for (algorithm, game, threads), g in done.groupby(list(KEYS)):
        norm = norms.get(game)
        scores = g["final_score"].to_numpy(dtype=float)
        low, high = (norm.low, norm.high) if norm is not None else (float(np.nanmin(scores)), float(np.nanmax(scores)))
        reference = low + REFERENCE_FRACTION * (float(np.nanmean(scores)) - low)
        runs = [runset.runs[i] for i in g.index]
        groups.append({
            "algorithm": algorithm, "game": game, "threads": int(threads),
            "final_scores": [round(float(s), 4) for s in scores],
            "diverged": int((g["state"] == "diverged").sum()),
            "low": low, "high": high, "normalisation": norm.source if norm is not None else "observed range",
            "frames": float(g["frames_budget"].max()),
            "reference": round(reference, 4),
            "frames_to_reference": [_frames_or_budget(r, reference, float(b))
                                    for r, b in zip(runs, g["frames_budget"])],
        })
    keep = {tuple(k if not isinstance(k, np.integer) else int(k) for k in key):
            [(runset.runs[i], float(b)) for i, b in zip(g.index, g["frames_budget"])]
            for key, g in done.groupby(list(KEYS))}
    return {"schema_version": SCHEMA_VERSION, "kind": "harness-gate-baseline", "created": store.utc_now(),
            "source": str(results), "versions": store.versions(), "groups": groups,
            "_runs": keep}  # the runs themselves, for a candidate's time to the baseline's reference (not saved)


def frames_to_reference(ep_frames, ep_returns, reference: float, window: float) -> float:
    """The first episode end f >= ``window`` at which the mean return of the episodes that ended in
    (f − window, f] is at least ``reference``; inf if there is none."""
    f = np.asarray(ep_frames, dtype=float)
    r = np.asarray(ep_returns, dtype=float)
    order = np.argsort(f, kind="stable")
    f, r = f[order], r[order]
    cum = np.concatenate([[0.0], np.cumsum(r)])
    first = np.searchsorted(f, f - window, side="right")  # the oldest episode inside each window
    idx = np.arange(f.size)
    means = (cum[idx + 1] - cum[first]) / (idx + 1 - first)
    hit = (f >= window) & (means >= reference)
    return float(f[np.argmax(hit)]) if hit.any() else math.inf


def _frames_or_budget(run, reference: float, budget: float) -> float:
    """Frames to the reference of one run, at most its budget (a run that never reached it counts at
    its budget), with the final score's window (10% of the budget)."""
    from harness.report.scores import FINAL_WINDOW_FRAC

    t = frames_to_reference(run.ep_frames, run.ep_return, reference, FINAL_WINDOW_FRAC * budget)
    return float(min(t, budget))


def _candidate_frames(candidate: dict, key: tuple, reference: float) -> np.ndarray | None:
    """The candidate's frames to the baseline's reference, from its runs (``summarise`` keeps them)."""
    runs = candidate.get("_runs", {}).get(key)
    if runs is None:
        return None
    return np.array([_frames_or_budget(r, reference, b) for r, b in runs], dtype=float)


def load_baseline(path: Path) -> dict:
    """A baseline JSON file, or a results folder summarised on the fly."""
    path = Path(path)
    if path.is_dir():
        return summarise(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise GateError(f"{path}: no such file: write one with harness gate save RESULTS --out {path}") from None
    except (OSError, ValueError) as exc:
        raise GateError(f"{path}: not a readable baseline ({exc}): write it again with harness gate save") from None
    if not isinstance(data, dict) or data.get("kind") != "harness-gate-baseline" or not isinstance(data.get("groups"), list):
        raise GateError(f"{path}: not a harness gate baseline: write one with harness gate save RESULTS --out FILE")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise GateError(f"{path}: baseline schema_version {data.get('schema_version')}, this harness reads "
                        f"{SCHEMA_VERSION}: write it again with harness gate save")
    return data


# ------------------------------------------------------------------------------------------------
@dataclass
class Verdict:
    algorithm: str
    game: str
    threads: int
    verdict: str  # pass | regression | missing
    n_baseline: int
    n_candidate: int
    baseline_mean: float
    candidate_mean: float
    difference: float  # (mean(candidate) − mean(baseline)) / (mean(baseline) − low): see the module doc
    upper_bound: float  # the ``confidence`` quantile of the bootstrap distribution of the difference
    tolerance: float
    confidence: float
    candidate_diverged: int
    time_tolerance: float = DEFAULT_TIME_TOLERANCE
    # time to the reference score (frames; NaN when the baseline has none): means, d_t and its bound
    reference: float = math.nan
    baseline_frames: float = math.nan
    candidate_frames: float = math.nan
    time_difference: float = math.nan
    time_upper_bound: float = math.nan
    regressed: str = ""  # "final score", "time to reference" or both, when verdict is "regression"
    flags_below: float = math.nan  # the final-score difference below which this check fails, at this spread

    @property
    def name(self) -> str:
        return f"{self.algorithm} on {self.game}, {self.threads} thread{'s' if self.threads != 1 else ''}"


def bootstrap_difference(base: np.ndarray, cand: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap distribution of mean(cand) − mean(base) under a location shift: the observed
    difference plus the difference of two resampled means of the pooled residuals (each run minus
    its side's mean, scaled by sqrt(N / (N − 2)) for the two means estimated from N runs).

    Both sides draw their noise from all the runs: three candidate runs that happen to agree say
    little about a method's spread, and a baseline written from many seeds then carries the
    method's real spread into every check (resampling each side on its own made three close
    candidate runs look certain)."""
    base, cand = np.asarray(base, dtype=float), np.asarray(cand, dtype=float)
    res = np.concatenate([base - base.mean(), cand - cand.mean()])
    if res.size > 2:
        res = res * math.sqrt(res.size / (res.size - 2))
    b = res[rng.integers(0, res.size, size=(reps, base.size))].mean(axis=1)
    c = res[rng.integers(0, res.size, size=(reps, cand.size))].mean(axis=1)
    return (cand.mean() - base.mean()) + c - b


def compare(candidate: dict, baseline: dict, tolerance: float = DEFAULT_TOLERANCE, confidence: float = 0.95,
            reps: int = 10_000, seed: int = 0, time_tolerance: float = DEFAULT_TIME_TOLERANCE) -> list[Verdict]:
    """A verdict per configuration of the baseline (see the module doc). Both arguments are
    summaries (``summarise``); the baseline's normalisation is used for both sides."""
    if not 0 <= tolerance < 1:
        raise GateError(f"--tolerance {tolerance} must lie in [0, 1): the fraction of the baseline's progress "
                        "above the game's floor that a candidate may lose")
    if not time_tolerance >= 0:
        raise GateError(f"--time-tolerance {time_tolerance} must be >= 0: the fraction of more frames to the "
                        "reference score that a candidate may need")
    if not 0.5 <= confidence < 1:
        raise GateError(f"--confidence {confidence} must lie in [0.5, 1)")
    cand = {tuple(g[k] for k in KEYS): g for g in candidate["groups"]}
    rng = np.random.default_rng(seed)
    out = []
    for g in baseline["groups"]:
        key = tuple(g[k] for k in KEYS)
        raw = np.asarray(g["final_scores"], dtype=float)
        low, rng_span = float(g["low"]), float(g["high"]) - float(g["low"])
        rng_span = rng_span if math.isfinite(rng_span) and rng_span > 0 else 1.0
        span = max(float(raw.mean()) - low, MIN_PROGRESS * rng_span)  # what the baseline learned
        base = (raw - low) / span
        c = cand.get(key)
        if c is None or not c["final_scores"]:
            out.append(Verdict(*key, "missing", base.size, 0, float(base.mean()), math.nan, math.nan, math.nan,
                               tolerance, confidence, 0, time_tolerance))
            continue
        cs = (np.asarray(c["final_scores"], dtype=float) - float(g["low"])) / span
        diff = float(cs.mean() - base.mean())
        upper = float(np.quantile(bootstrap_difference(base, cs, reps, rng), confidence))
        regressed = ["final score"] if upper < -tolerance else []
        timing = {}
        ct = _candidate_frames(candidate, key, float(g["reference"])) if "frames_to_reference" in g else None
        if ct is not None and ct.size:
            bt = np.asarray(g["frames_to_reference"], dtype=float)
            scale = max(float(bt.mean()), 1.0)
            # in units of the baseline's mean frames, sign flipped: negative = the candidate is slower
            tdiff = float((bt.mean() - ct.mean()) / scale)
            tupper = float(np.quantile(bootstrap_difference(-bt / scale, -ct / scale, reps, rng), confidence))
            timing = dict(reference=float(g["reference"]), baseline_frames=float(bt.mean()),
                          candidate_frames=float(ct.mean()), time_difference=tdiff, time_upper_bound=tupper)
            if tupper < -time_tolerance:
                regressed.append("time to reference")
        verdict = "regression" if regressed else "pass"
        out.append(Verdict(*key, verdict, base.size, cs.size, float(base.mean()), float(cs.mean()), diff, upper,
                           tolerance, confidence, int(c.get("diverged", 0)), time_tolerance, **timing,
                           regressed=" and ".join(regressed), flags_below=-tolerance - (upper - diff)))
    return out


def failed(verdicts: list[Verdict]) -> bool:
    return any(v.verdict != "pass" for v in verdicts)


# ------------------------------------------------------------------------------------------------
def _fmt(x: float) -> str:
    return "–" if not math.isfinite(x) else f"{x:+.3f}" if x < 0 or x > 0 else "0.000"


def _frames(x: float) -> str:
    return "–" if not math.isfinite(x) else f"{x / 1000:,.0f}k" if x >= 10_000 else f"{x:,.0f}"


def markdown(verdicts: list[Verdict], title: str = "Learning gate") -> str:
    """A Markdown summary: one row per configuration, failures first."""
    bad = [v for v in verdicts if v.verdict != "pass"]
    head = (f"### {title}: {'FAILED' if bad else 'passed'} ({len(verdicts) - len(bad)} of {len(verdicts)} "
            f"configurations pass)\n\n")
    if verdicts:
        v0 = verdicts[0]
        head += (f"A configuration fails when, with {v0.confidence:.0%} confidence (one-sided bootstrap bound), "
                 f"its mean final score lost more than {v0.tolerance:.0%} of the baseline's progress above the "
                 f"game's floor, or it needed more than {v0.time_tolerance:.0%} more frames to reach half of that "
                 "progress. Scores in units of that progress (baseline mean = 1); \"fails below\": the "
                 "difference this check can detect at the runs' spread; frames to the reference as means over "
                 "runs (a run that never reached it counts at its budget).\n\n")
    lines = ["| configuration | verdict | runs (base / cand) | baseline mean | candidate mean | difference | "
             "upper bound | fails below | frames to reference (base → cand) | time difference | upper bound | diverged |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for v in sorted(verdicts, key=lambda v: (v.verdict == "pass", v.name)):
        mark = {"pass": "pass", "regression": f"**regression** ({v.regressed})", "missing": "**missing**"}[v.verdict]
        lines.append(f"| {v.name} | {mark} | {v.n_baseline} / {v.n_candidate} | {v.baseline_mean:.3f} | "
                     f"{'–' if not math.isfinite(v.candidate_mean) else f'{v.candidate_mean:.3f}'} | "
                     f"{_fmt(v.difference)} | {_fmt(v.upper_bound)} | {_fmt(v.flags_below)} | "
                     f"{_frames(v.baseline_frames)} → {_frames(v.candidate_frames)} | {_fmt(v.time_difference)} | "
                     f"{_fmt(v.time_upper_bound)} | {v.candidate_diverged} |")
    return head + "\n".join(lines) + "\n"


def cases(verdicts: list[Verdict]) -> list[Case]:
    """One JUnit test case per configuration; a regression or a missing one is a failure."""
    out = []
    for v in verdicts:
        msg = None
        if v.verdict != "pass":
            msg = (f"regression in {v.regressed}: final score difference {_fmt(v.difference)} (upper bound "
                   f"{_fmt(v.upper_bound)}), time to reference difference {_fmt(v.time_difference)} (upper bound "
                   f"{_fmt(v.time_upper_bound)}); tolerances -{v.tolerance:g} and -{v.time_tolerance:g}"
                   if v.verdict == "regression" else "missing: no finished candidate runs")
        out.append(Case(f"harness gate.{v.game}", v.name, msg, v.verdict, json.dumps(asdict(v))))
    return out


def junit(verdicts: list[Verdict], suite_name: str = "harness gate") -> str:
    return junit_xml(cases(verdicts), suite_name)


def write_outputs(verdicts: list[Verdict], markdown_path: Path | None, junit_path: Path | None,
                  title: str = "Learning gate") -> list[Path]:
    """The Markdown summary (also appended to $GITHUB_STEP_SUMMARY when set) and the JUnit XML."""
    return publish(markdown(verdicts, title), cases(verdicts), "harness gate", markdown_path, junit_path)
