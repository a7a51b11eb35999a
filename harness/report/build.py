"""``build_report``: read run folders, run every analysis, write figures, tables and index.html."""

from __future__ import annotations

import datetime as _dt
import platform
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd

from harness import results
from harness.report import aggregates as agg_mod
from harness.report import html as H
from harness.report.cache import BootstrapCache
from harness.report.curves import build_lines, main_optimizers, plot_curves, select_learning_rates
from harness.report.load import REPORT_MARKER, ReportError
from harness.report.robustness import optimizer_varies, plot_optimizers, plot_robustness, robustness_table
from harness.report.scores import BASELINES, CURVE_SOURCES, SCORE_DEFINITION_HTML, paper_score_table
from harness.report.speedup import DEFAULT_REFERENCE_RULE, plot_speedup, resolve_references, speedup_table
from harness.report.render import Renderer
from harness.report.style import EPOCH_FRAMES, ThreadColours, set_theme
from harness.report.tables import readable_aggregates, readable_speedup, speedup_matrix, write_table
from harness.report.throughput import has_phases, plot_phases, plot_throughput, throughput_table


@dataclass
class ReportSummary:
    """What ``build_report`` wrote and what it found missing."""

    out: Path
    index_html: Path
    n_run_folders: int
    states: dict[str, int]
    figures: dict[str, list[Path]] = field(default_factory=dict)
    tables: dict[str, dict[str, Path]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # missing / broken inputs, one line each
    notes: list[str] = field(default_factory=list)  # analysis caveats (not reached, left out, ...)
    runs: pd.DataFrame | None = None
    speedup: pd.DataFrame | None = None
    references: pd.DataFrame | None = None
    elapsed_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase

    def __str__(self) -> str:
        states = ", ".join(f"{n} {s}" for s, n in sorted(self.states.items()))
        lines = [f"Report written to {self.index_html}",
                 f"  {self.n_run_folders} run folder(s): {states}",
                 f"  {len(self.figures)} figure(s), {len(self.tables)} table(s) in {self.elapsed_s:.1f} s"]
        if self.problems:
            lines.append(f"  {len(self.problems)} problem(s) with the inputs (listed in index.html), e.g.:")
            lines += [f"    - {p}" for p in self.problems[:5]]
            if len(self.problems) > 5:
                lines.append(f"    ... and {len(self.problems) - 5} more")
        lines += [f"  note: {n}" for n in self.notes[:5]]
        if len(self.notes) > 5:
            lines.append(f"  ... and {len(self.notes) - 5} more notes in index.html")
        return "\n".join(lines)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("async-rl-harness", "numpy", "pandas", "matplotlib", "seaborn", "rliable", "scipy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def build_report(
    results_dirs: Iterable[Path | str],
    out: Path | str | None = None,
    top_k: int = 3,
    references: dict[str, float] | None = None,
    baseline: str = "no-op",
    bootstrap_reps: int = 2000,
    curve_bootstrap_reps: int | None = None,
    formats: tuple[str, ...] = ("png", "pdf"),
    figures: bool = True,
    workers: int | None = None,
    use_cache: bool = True,
    strict: bool = False,
    epoch_frames: int = EPOCH_FRAMES,
    curves: str = "train",
) -> ReportSummary:
    """Write the report of the run folders under ``results_dirs`` into ``out``
    (default ``<first results dir>/report``) and return what was written.

    ``bootstrap_reps`` sets the repetitions of every bootstrap behind a table (tests use few); the
    bands that are only drawn (learning curves, performance profiles, IQM curves) use
    ``curve_bootstrap_reps`` (default ``min(bootstrap_reps, 500)``).  ``figures=False`` writes the
    tables and index.html only (quick numbers, fast tests).  Figures are drawn by ``workers``
    processes (default: 2 where there are 2 cores).  Raises ``ReportError`` (one-line
    message) when a directory is missing or nothing can be reported.  A failing figure is listed as a
    problem instead of aborting the report, unless ``strict``.  ``curves``: the learning curves of
    Figs. 3 and 4 and the speedup come from training episodes (``"train"``, the default, as in the
    paper's figures) or from the evaluation snapshots (``"eval"``, runs with ``eval_every_frames``).
    """
    t0 = time.perf_counter()
    dirs = [Path(d) for d in results_dirs]
    if not dirs:
        raise ReportError("no results directory given")
    if top_k < 1:
        raise ReportError(f"top_k must be at least 1, not {top_k}")
    if curves not in CURVE_SOURCES:
        raise ReportError(f"curves must be one of {', '.join(CURVE_SOURCES)}, not {curves!r}")
    if baseline not in BASELINES:
        raise ReportError(f"baseline must be one of {', '.join(BASELINES)}, not {baseline!r}")
    out = Path(out) if out is not None else dirs[0] / "report"
    timings: dict[str, float] = {}
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - clock[0]
        clock[0] = now

    res = results.load(dirs, baseline=baseline, workers=workers, skip=[out])  # the one reader (harness.results)
    runset = res.runset
    where = ", ".join(str(d) for d in dirs)
    if not runset.runs:
        extra = f" ({len(runset.problems)} unusable folder(s), e.g. {runset.problems[0]})" if runset.problems else ""
        raise ReportError(f"nothing to report: no run folder (with config.json) under {where}{extra}")
    table, norms = res.runs.drop(columns=res.hyperparameter_columns), res.normalisers
    lap("load")
    states = dict(Counter(table["state"]))
    usable = table[(table["state"] != "failed") & ((table["n_episodes"] > 0) | (table["n_evals"] > 0))]
    if usable.empty:
        summary = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
        failed = states.get("failed", 0)
        why = ("every run failed" if failed == len(table) else
               "no run that did not fail has finished an episode yet" if failed else
               "no run has finished an episode yet")
        raise ReportError(f"nothing to report yet: {len(table)} run folder(s) under {where} ({summary}); {why}")

    reps = max(int(bootstrap_reps), 0)
    creps = min(reps, 500) if curve_bootstrap_reps is None else max(int(curve_bootstrap_reps), 0)
    figdir, tabdir = out / "figures", out / "tables"
    if (out / REPORT_MARKER).is_file():  # an earlier report here: drop its figures and tables
        for stale in [*figdir.glob("*.png"), *figdir.glob("*.pdf"), *tabdir.glob("*.csv"), *tabdir.glob("*.md")]:
            stale.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT_MARKER).write_text("written by harness report; skipped when scanning for runs\n")
    cache = BootstrapCache(out / ".cache" / "bootstrap.pkl" if use_cache else None)
    set_theme()
    summary = ReportSummary(out=out, index_html=out / "index.html", n_run_folders=len(table), states=states,
                            problems=list(runset.problems), runs=table, timings=timings)
    colours = ThreadColours(table["threads"])
    live = table[table["state"] != "failed"]

    def guarded(name: str, fn: Callable[[], object], default=None):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - one broken analysis must not lose the whole report
            if strict:
                raise
            summary.problems.append(f"{name} could not be produced: {type(exc).__name__}: {exc}")
            return default

    renderer = Renderer(figdir, formats, workers)

    def figure(name: str, make: Callable[[], object]) -> None:
        """Drawn from here on, beside the rest of the report (``render.Renderer``)."""
        if figures:
            renderer.submit(name, make)

    shown: dict[str, pd.DataFrame] = {}  # what index.html shows of each table

    def tab(name: str, df: pd.DataFrame | None, readable: pd.DataFrame | None = None) -> None:
        if df is not None:
            summary.tables[name] = write_table(df, tabdir, name, readable)
            shown[name] = readable if readable is not None else df

    # --- analyses ------------------------------------------------------------------------------
    selection = select_learning_rates(live, top_k)
    lines = guarded("learning curves", lambda: build_lines(runset.runs, live, selection, creps, cache, source=curves), [])
    if curves == "eval" and not lines:
        summary.notes.append("--curves eval: no run has evaluation snapshots (train with eval_every_frames), "
                             "so there are no learning curves and no speedup")
    if lines:
        figure("fig3_data_efficiency", lambda: plot_curves(lines, colours, "frames", top_k, epoch_frames))
        figure("fig4_training_speed", lambda: plot_curves(lines, colours, "time", top_k, epoch_frames))
    else:
        summary.notes.append("no learning curves: no run has finished a training episode")
    lap("curves")
    refs = resolve_references(lines, references, runset.suites)
    summary.references = refs
    speed, speed_notes = guarded("speedup table", lambda: speedup_table(lines, refs, live, reps, cache),
                                 (None, []))
    summary.speedup = speed
    summary.notes += speed_notes
    lap("speedup")
    robust = guarded("robustness table", lambda: robustness_table(live, refs))
    groups = guarded("aggregate inputs", lambda: agg_mod.score_groups(live, selection), [])
    agg = guarded("aggregates", lambda: agg_mod.aggregate_table(groups, reps, cache)) if groups else None
    poi = guarded("probability of improvement", lambda: agg_mod.improvement_table(groups, reps, cache)) if groups else None
    if agg is not None and agg["ci_note"].astype(bool).any():
        summary.notes.append(f"aggregates and probability of improvement: {agg_mod.NO_INTERVAL_NOTE} "
                             + "; ".join(f"{g.label}: {agg_mod.ci_note(g.games, g.scores)}"
                                         for g in groups if not g.resamplable))
    taus = agg_mod.profile_taus(groups)
    # bands of profiles and curves are drawn, not tabulated: they use the curve repetitions
    profs = guarded("performance profiles", lambda: agg_mod.profiles(groups, taus, creps, cache), {}) if groups else {}
    effs, eff_relative = guarded("sample-efficiency curves",
                                 lambda: agg_mod.efficiency_curves(groups, runset.runs, norms, creps, cache, table=live),
                                 ({}, False)) if groups else ({}, False)
    tput = guarded("throughput table", lambda: throughput_table(live, reps, cache))
    paper_scores = guarded("scores beside the paper", lambda: paper_score_table(live, selection))
    score_label = _score_label(live, norms, baseline)
    lap("aggregates")

    # --- the other figures (the learning curves are being drawn already) -------------------------
    if speed is not None and (speed["status"] == "reached").any() and speed["threads"].nunique() > 1:
        figure("table2_speedup", lambda: plot_speedup(speed, colours, speed_notes))
    if robust is not None and live["final_score"].notna().any():
        figure("fig2_robustness", lambda: plot_robustness(live, robust, colours))
    if optimizer_varies(live[live["finished"]]):
        figure("figS5_optimizers", lambda: plot_optimizers(live))
    if agg is not None and not agg.empty:
        figure("aggregates", lambda: agg_mod.plot_aggregates(agg, colours, score_label))
    if profs:
        figure("performance_profiles", lambda: agg_mod.plot_profiles(profs, taus, groups, colours, score_label))
    if poi is not None and not poi.empty:
        figure("probability_of_improvement", lambda: agg_mod.plot_improvement(poi))
    if effs:
        figure("sample_efficiency_iqm",
               lambda: agg_mod.plot_efficiency(effs, colours, score_label, epoch_frames, eff_relative))
    if tput is not None and not tput.empty:
        figure("throughput", lambda: plot_throughput(tput, colours))
        if has_phases(tput):
            figure("throughput_phases", lambda: plot_phases(tput))
    if not groups:
        summary.notes.append("no aggregates: no finished run with a normalised score yet")

    # --- tables -------------------------------------------------------------------------------
    mains = main_optimizers(live) if not live.empty else {}
    runs_out = table.drop(columns=["run"]).assign(
        main_optimizer=[mains.get((a, g), "") for a, g in zip(table["algorithm"], table["game"])])
    key_columns = ["suite", "run_id", "algorithm", "game", "threads", "lr", "seed", "optimizer", "state", "progress",
                   "final_score", "score_source", "normalised_score", "frames_per_second", "oversubscribed"]
    tab("runs", runs_out, runs_out[key_columns])  # the Markdown and HTML views keep the key columns
    tab("lr_selection", selection)
    shown["lr_selection"] = selection[selection["selected"]]
    tab("references", refs)
    tab("normalisation", _normalisation_table(norms, baseline))
    tab("speedup", speed, readable_speedup(speed) if speed is not None and not speed.empty else None)
    if speed is not None and not speed.empty:
        tab("speedup_matrix", *speedup_matrix(speed))
    tab("robustness", robust)
    tab("aggregates", agg, readable_aggregates(agg) if agg is not None else None)
    tab("probability_of_improvement", poi)
    tab("throughput", tput)
    if paper_scores is not None and not paper_scores.empty:
        tab("paper_scores", paper_scores)
    cache.save()
    lap("tables")
    for name, paths, error in renderer.results():
        if error is not None:
            if strict:
                raise RuntimeError(f"figure {name} failed: {error}")
            summary.problems.append(f"figure {name} could not be drawn: {error.splitlines()[0]}")
        else:
            summary.figures[name] = paths
    lap("figures")  # what was left to draw once the tables were written

    summary.notes += _coverage_notes(table, norms)
    page = _page(summary, runset, table, dirs, out, top_k, baseline, reps, refs, norms, shown)
    summary.index_html.write_text(page.render(), encoding="utf-8")
    lap("html")
    summary.elapsed_s = time.perf_counter() - t0
    return summary


# ----------------------------------------------------------------------------------------------
def _score_label(table: pd.DataFrame, norms: dict, baseline: str) -> str:
    """One line saying what "normalised score" means in this report (figure footnotes)."""
    kinds = {n.kind for g, n in norms.items() if g in set(table["game"])}
    atari = f"human-normalised ({baseline} baselines): 0 = random, 1 = human"
    if kinds == {"human-normalised"}:
        return f"Normalised score: {atari}."
    if kinds == {"min-max"}:
        return "Normalised score: min\u2013max with the bounds listed in the report (0 = lower, 1 = upper bound)."
    return f"Normalised score: Atari games {atari}; other environments min\u2013max with the listed bounds."


def _normalisation_table(norms: dict, baseline: str) -> pd.DataFrame:
    rows = [{"game": g, "normalisation": n.kind, "low (0)": n.low, "high (1)": n.high,
             "baseline": baseline if n.kind == "human-normalised" else "", "source": n.source}
            for g, n in sorted(norms.items())]
    return pd.DataFrame(rows, columns=["game", "normalisation", "low (0)", "high (1)", "baseline", "source"])


def _coverage_notes(table: pd.DataFrame, norms) -> list[str]:
    notes = []
    running = table[table["state"].isin(["running", "unknown"])]
    if len(running):
        notes.append(f"{len(running)} run(s) still running (progress {running['progress'].min():.0%} to "
                     f"{running['progress'].max():.0%} of their frame budget): curves include them, "
                     "final-score analyses do not")
    failed = int((table["state"] == "failed").sum())
    if failed:
        notes.append(f"{failed} failed run(s) left out of every analysis")
    for game in sorted(set(table["game"]) - set(norms)):
        notes.append(f"{game}: no normalisation possible (no bounds and no spread in scores); left out of aggregates")
    return notes


def _provenance(table: pd.DataFrame, runset) -> str:
    hosts = (table.groupby(["hostname", "cpu_model", "physical_cores", "logical_cores"], dropna=False)
             .size().reset_index(name="runs"))
    versions = Counter()
    for r in runset.runs:
        v = r.status.get("versions")
        if isinstance(v, dict):
            versions[tuple(sorted((str(k), str(x)) for k, x in v.items()))] += 1
    vrows = [dict(v) | {"runs": n} for v, n in versions.most_common()]
    started = pd.to_datetime(table["started_at"], errors="coerce", utc=True)
    ended = pd.to_datetime(table["ended_at"], errors="coerce", utc=True)
    if not started.notna().any():
        dates = "No start dates recorded."
    else:
        dates = f"Runs started {started.min():%Y-%m-%d %H:%M} UTC to {started.max():%Y-%m-%d %H:%M} UTC; "
        dates += (f"last run ended {ended.max():%Y-%m-%d %H:%M} UTC." if ended.notna().any() else
                  "none has ended yet.")
    gen = _versions()
    return (f"<p>{H.esc(dates)}</p><h3>Hosts the runs used</h3>{H.table(hosts)}"
            f"<h3>Software versions recorded by the runs</h3>{H.table(pd.DataFrame(vrows))}"
            f"<h3>This report</h3><p>Generated {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC on "
            f"{H.esc(platform.node())} ({H.esc(platform.platform())}).</p>"
            f"{H.table(pd.DataFrame([gen]))}")


SECTIONS = [  # anchor, title, figures, tables, what the section shows
    ("data-efficiency", "Data efficiency (cf. Fig. 3)", ["fig3_data_efficiency"], ["lr_selection"],
     "Score against training data (frames summed over all threads; 1 epoch = 4M frames), one line per thread "
     "count. Each line averages the runs of the top-k learning rates of its algorithm, game and thread count "
     "(listed in the table). The paper's claim: with more threads the one-step methods need less data."),
    ("training-speed", "Training speed (cf. Fig. 4)", ["fig4_training_speed"], [],
     "The same lines against wall-clock training time (evaluation excluded)."),
    ("speedup", "Speedup (cf. Table 2)", ["table2_speedup"], ["speedup_matrix", "speedup"],
     "Time for 1 thread to reach the game's reference score divided by the time for n threads, read off the "
     "averaged wall-clock curves; 95% percentile-bootstrap CIs over runs (resampled within learning rates when "
     "every rate has two or more seeds, else over the line's top-k runs pooled; none for a line of one run). "
     "Efficiency = speedup / n. The matrix shows every game's cells: 'not reached' where a thread count never "
     "reaches the reference, 'reached at start' where the averaged curve is at the reference from its first "
     "points (the time then measures only how soon the first episodes end, not learning). 'mean' averages the "
     "games with a speedup at every thread count (the same games throughout); where games were left out, "
     "'mean of the cells reached' averages every game with a speedup at each thread count, so that a mean leaning "
     "on the games that many threads do well on can be seen. 'paper' is Table 2 (mean over 7 Atari games), shown "
     "only beside a mean over two or more Atari games; 'throughput speedup' is frames/s at n threads over "
     "frames/s at 1 thread."),
    ("robustness", "Robustness (cf. Fig. 2, S11 and S5)", ["fig2_robustness", "figS5_optimizers"], ["robustness"],
     "Final score against learning rate, one point per run; diverged runs are red crosses. The table gives, per "
     "thread count, the share of learning rates whose finished runs all reach the good score (the reference). "
     "When the sweep varies the optimizer, the Fig. S5 view sorts the final scores of all runs per optimizer."),
    ("aggregates", "Aggregate performance (rliable)",
     ["aggregates", "performance_profiles", "probability_of_improvement", "sample_efficiency_iqm"],
     ["aggregates", "probability_of_improvement", "paper_scores"],
     "Normalised final scores of the finished runs of the top-k learning rates (see Definitions). IQM, median, "
     "mean and optimality gap with 95% stratified-bootstrap CIs; performance profiles; the probability that a run "
     "of one algorithm beats a run of another on the same game; IQM learning curves. The last table sets our raw "
     "final scores beside the paper's per-game A3C scores (Table S3, human starts, 57-game runs of 1 to 4 days: "
     "short scaling runs are not expected to match them)."),
    ("throughput", "Throughput", ["throughput", "throughput_phases"], ["throughput"],
     "Training frames per second against threads (measured once every worker is past start-up), with the ideal "
     "line n times the 1-thread rate. Runs with more "
     "threads than the host's physical cores are flagged (oversubscribed). The sync/act/learn/update columns say "
     "where the workers' time went, in ms per segment (mean over runs that recorded it): an update that grows with "
     "threads while acting and learning stay flat is the memory traffic of sharing θ and the optimizer statistics."),
]


def _page(summary: ReportSummary, runset, table, dirs, out, top_k, baseline, reps, refs, norms,
          shown: dict[str, pd.DataFrame]) -> H.Page:
    states = ", ".join(f"{n} {s}" for s, n in sorted(summary.states.items()))
    algs = ", ".join(sorted(table["algorithm"].unique()))
    games = ", ".join(sorted(table["game"].unique()))
    page = H.Page(
        "A3C scaling report",
        H.esc(f"Results: {', '.join(str(d) for d in dirs)} \u2014 {summary.n_run_folders} run folders ({states}); "
              f"algorithms: {algs}; games: {games}. Options: top-k = {top_k}, baseline = {baseline}, "
              f"bootstrap repetitions = {reps}."))
    status = ""
    if summary.problems or summary.notes:
        status = '<div class="warn">'
        if summary.problems:
            inner = H.bullet_list(summary.problems)
            status += (f"<p><b>{len(summary.problems)} problem(s) with the inputs</b> (missing, failed, "
                       f"half-written or still-running runs):</p>"
                       + (H.details("show all", inner) if len(summary.problems) > 20 else inner))
        if summary.notes:
            status += "<p><b>Caveats of the analyses:</b></p>" + H.bullet_list(summary.notes)
        status += "</div>"
    else:
        status = "<p>Every run folder was complete and readable.</p>"
    page.add("status", "What is missing", status)

    norm_text = ("no-op starts (Mnih et al. 2015, Nature DQN, Extended Data Table 2): the harness plays from no-op "
                 "starts, so this is the matching table" if baseline == "no-op" else
                 "human starts (Nair et al. 2015, Gorila; also printed by van Hasselt et al. 2015, Double DQN); note "
                 "that the harness itself plays from no-op starts")
    page.add("definitions", "Definitions",
             SCORE_DEFINITION_HTML
             + f"<p><b>Human/random baseline</b> for Atari: {H.esc(norm_text)}.</p>"
             + f"<p><b>Learning-rate selection</b>: each curve averages the runs of the {top_k} learning rates with "
               "the best mean final score (the paper's rule is 3).</p>"
             + f"<p><b>Reference scores</b> (speedup, good score in the robustness figure): "
               f"{H.esc(DEFAULT_REFERENCE_RULE)}</p>"
             + H.table(refs, out, summary.tables.get("references"))
             + "<h3>Normalisation</h3>" + H.table(_normalisation_table(norms, baseline), out,
                                                 summary.tables.get("normalisation")))

    for anchor, title, figs, tabs, text in SECTIONS:
        figs = [f for f in figs if f in summary.figures]
        tabs = [t for t in tabs if t in summary.tables]
        if not figs and not tabs:
            continue
        body = f"<p>{H.esc(text)}</p>"
        for name in figs:
            paths = summary.figures[name]
            png = next((p for p in paths if p.suffix == ".png"), None)
            body += (H.figure(png, out, H.esc(title), [p for p in paths if p != png]) if png is not None else
                     " ".join(f'<a href="{H.esc(p.relative_to(out).as_posix())}">{H.esc(p.name)}</a>' for p in paths))
        for t in tabs:
            body += f"<h3>{H.esc(t.replace('_', ' '))}</h3>" + H.table(shown[t], out, summary.tables[t])
        page.add(anchor, title, body)

    suites = ""
    for name, info in sorted(runset.suites.items()):
        suites += f"<h3>{H.esc(name)}</h3><p class=\"note\">{H.esc(info['path'])}</p>{H.pre_json(info['config'])}"
    if not suites:
        suites = "<p>No suite.json / suite.yaml at the top of the results directories.</p>"
    configs = _config_variants(runset)
    page.add("suites", "Suites and configurations", suites + "<h3>Resolved run configurations</h3>" + configs)
    page.add("provenance", "Provenance", _provenance(table, runset))
    page.add("runs", "Runs", H.table(shown["runs"], out, summary.tables.get("runs"), max_rows=200))
    return page


def _config_variants(runset) -> str:
    """The distinct resolved configurations, ignoring the per-run keys."""
    per_run = {"lr", "seed", "threads", "run_id", "frames", "game", "env", "env_id", "algorithm", "optimizer",
               "is_atari", "suite"}
    seen: Counter = Counter()
    example = {}
    for r in runset.runs:
        shared = {k: v for k, v in r.config.items() if k not in per_run}
        key = repr(sorted((k, repr(v)) for k, v in shared.items()))
        seen[key] += 1
        example.setdefault(key, (r.get("algorithm"), shared))
    parts = []
    for key, n in seen.most_common(20):
        alg, shared = example[key]
        parts.append(H.details(f"{n} run(s), e.g. algorithm {alg}", H.pre_json(shared)))
    return "".join(parts) or "<p>(none)</p>"
