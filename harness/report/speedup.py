"""Speedup (cf. Table 2): time for 1 thread to reach a reference score divided by the time for n threads.

* The time to reach a reference is read off a line's averaged wall-clock curve (``curves.Line``): the
  first time the mean curve is at or above the reference, linearly interpolated between grid points.
* Reference score per game: ``--reference GAME=SCORE`` first, then a suite's ``reference_scores``,
  then the default rule (``default_reference``).
* The 95% CI is a percentile bootstrap over runs: the runs of every line are resampled (within
  their learning rates when each has two or more seeds, else pooled over the line's top-k runs, as
  in the Atari suites with one seed per rate: ``curves.bootstrap_strata``), the curve re-averaged and the crossing found again; 1-thread and
  n-thread lines are resampled independently.  A resample that never reaches the reference has an
  infinite time, so its speedup is 0 (n threads never reach) or infinite (1 thread never reaches).
  No interval is given where it could not vary: the 1-thread row (1 by definition), and a row whose
  1-thread or n-thread line is a single run.
* A reference that a line's averaged curve is already at when it starts (at its first point, or within
  the smoothing window of its first point: ``reached_at_start``) measures no learning, only how soon
  the first episodes end: such a cell is ``reached at start`` (``1 thread reached at start`` for all
  thread counts when the 1-thread line starts there), with no number, flagged in the table and the
  figure, and its game leaves the mean like a game not reached.
* A game where a thread count never reaches the reference is reported as ``not reached`` (no number).
  Two means are given, because leaving games out can lean the mean: if the games where many threads
  fail to reach the reference are left out, the mean keeps only the games many threads do well on.
  ``game = "mean"`` averages the games whose every thread count has a speedup (the same games at every
  thread count: the paper's Table 2 stands beside it when they are two or more Atari games);
  ``game = "mean_defined"`` averages, at each thread count, every game with a speedup at that count.
  The speedup matrix (``speedup_matrix`` table) shows each game's cells with the missing ones marked.
* Throughput speedup: mean frames/s at n threads divided by mean frames/s at 1 thread.
* Data efficiency: frames for 1 thread to reach the reference divided by frames for n threads, read
  off the averaged curves on the frame axis the same way (with its own bootstrap interval): above 1,
  n threads need less data (the paper's explanation of the one-step methods' super-linear speedups).
  With the throughput speedup it splits the speedup in two: less data, and more frames per second.
* Schedules are methods of their own (``a3c/virtual``, ``a3c/sync``: ``style.split_method``): a
  virtual run's time is its virtual clock (what N cores would take under its time model), and the
  paper's Table 2 stands beside Hogwild and virtual means, never beside the synchronous schedule.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from harness.report.cache import BootstrapCache
from harness.report.curves import Line
from harness.report.scores import SMOOTH_FRAC, paper_table2
from harness.report.style import (VIRTUAL_NOTE, ThreadColours, algorithm_label, algorithm_order, any_virtual, finish,
                                  log2_threads_axis, panel_grid, plain_log_axis, split_method)
from harness.stats import (first_crossing, percentile_interval, resample_weights, resampled_means,
                           stratified_indices)

DEFAULT_REFERENCE_FRACTION = 0.8
DEFAULT_REFERENCE_RULE = (
    "Default reference score of a game (when neither --reference nor the suite's reference_scores gives "
    "one): 80% of the way from the initial score to the weakest peak, i.e. lo + 0.8 (hi - lo), where hi "
    "is the lowest, over all algorithms and thread counts of that game, of the peak of their averaged "
    "learning curve (top-k learning rates), and lo is the mean of those curves' first values. Every "
    "averaged curve reaches it by construction; a game whose curves never rise gets no reference.")

SPEEDUP_COLUMNS = [
    "algorithm", "game", "threads", "speedup", "speedup_ci_low", "speedup_ci_high", "efficiency",
    "efficiency_ci_low", "efficiency_ci_high", "paper_speedup", "status", "reference_score",
    "reference_source", "time_to_reference_s", "time_to_reference_1thread_s", "throughput_speedup",
    "frames_per_second", "oversubscribed", "n_runs", "n_games", "games", "bootstrap_reps",
    "data_efficiency", "data_efficiency_ci_low", "data_efficiency_ci_high", "frames_to_reference",
    "frames_to_reference_1thread",
]


def default_reference(lines: list[Line], fraction: float = DEFAULT_REFERENCE_FRACTION) -> float | None:
    peaks, starts = [], []
    for ln in lines:
        finite = ln.frame_mean[np.isfinite(ln.frame_mean)]
        if finite.size == 0:
            continue
        peaks.append(finite.max())
        starts.append(finite[0])
    if not peaks:
        return None
    hi, lo = min(peaks), float(np.mean(starts))
    if not hi > lo:
        return None
    return float(lo + fraction * (hi - lo))


def resolve_references(lines: list[Line], cli: dict[str, float] | None, suites: dict[str, dict]) -> pd.DataFrame:
    """Reference score and its source for every game that has lines (or was named explicitly)."""
    cli = dict(cli or {})
    suite_refs: dict[str, tuple[float, str]] = {}
    for name, info in suites.items():
        refs = info.get("config", {}).get("reference_scores") or {}
        if isinstance(refs, dict):
            for game, score in refs.items():
                try:
                    suite_refs.setdefault(str(game), (float(score), f"suite {name}"))
                except (TypeError, ValueError):
                    continue
    rows = []
    games = sorted({ln.game for ln in lines} | set(cli))
    for game in games:
        if game in cli:
            rows.append((game, float(cli[game]), "--reference"))
        elif game in suite_refs:
            rows.append((game, *suite_refs[game]))
        else:
            ref = default_reference([ln for ln in lines if ln.game == game])
            rows.append((game, ref if ref is not None else np.nan,
                         "default rule" if ref is not None else "none (no learning progress)"))
    return pd.DataFrame(rows, columns=["game", "reference_score", "reference_source"])


def reached_at_start(line: Line, reference: float, smooth_frac: float = SMOOTH_FRAC) -> bool:
    """Whether ``line``'s averaged curve is at or above ``reference`` from its start: at its first point,
    or within one smoothing window (``smooth_frac`` of the frames it covers) of it, where the centred
    average is taken over the first episodes alone. The time to such a reference is the time the first
    episodes take to end, a throughput figure that would pass for a learning result."""
    ok = np.flatnonzero(np.isfinite(line.frame_mean))
    if not ok.size:
        return False
    crossing = first_crossing(line.frame_grid, line.frame_mean, reference)
    window = smooth_frac * float(line.frame_grid[-1]) if line.source == "train" else 0.0
    return bool(np.isfinite(crossing) and crossing <= line.frame_grid[ok[0]] + window)


def paper_algorithm(method: str) -> str | None:
    """The algorithm whose Table 2 row stands beside a method: its own for Hogwild and the virtual
    schedule (which models N real cores), none for the synchronous schedule."""
    base, schedule = split_method(method)
    return base if schedule in ("hogwild", "virtual") else None


def crossing_samples(line: Line, reference: float, reps: int, cache: BootstrapCache | None,
                     axis: str = "time") -> np.ndarray:
    """Bootstrap samples (``curves.bootstrap_strata``) of the time (or, ``axis="frames"``, the frames)
    to reach ``reference``; empty when the line cannot be resampled (a single run)."""
    if reps <= 0 or line.strata is None:
        return np.empty(0)
    grid, values = (line.time_grid, line.time_values) if axis == "time" else (line.frame_grid, line.frame_values)

    def compute(rng):
        weights = resample_weights(stratified_indices(line.strata, reps, rng), len(line.strata))
        return first_crossing(grid, resampled_means(values, weights), reference)

    if cache is None:
        return compute(np.random.default_rng(0))
    return cache.get(("crossing", values, grid, line.strata, float(reference), reps), compute)


def _ratio(t1, tn):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isinf(t1) & np.isinf(tn), np.nan, np.asarray(t1, float) / np.asarray(tn, float))


def _ci(samples: np.ndarray) -> tuple[float, float]:
    if samples.size == 0:
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = percentile_interval(samples)
    return float(lo), float(hi)


def throughput_by(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    ok = table[(table["state"] != "failed") & np.isfinite(table["frames_per_second"])
               & (table["frames_per_second"] > 0)]
    return ok.groupby(keys)["frames_per_second"].mean()


def _mean_row(alg: str, kind: str, threads: int, games: list[str], cells: list[dict], samples: dict,
              data_samples: dict, fps_alg: pd.Series, reps: int) -> dict:
    """One row of the mean speedup (and data efficiency) over ``games`` at ``threads``; an interval
    averages the games' bootstrap samples, and is given only when every game has them."""
    row = {"algorithm": alg, "game": kind, "threads": threads, "status": "reached",
           "reference_score": np.nan, "reference_source": "per game",
           "speedup": float(np.mean([c["speedup"] for c in cells])),
           "oversubscribed": any(c["oversubscribed"] for c in cells),
           "n_runs": int(sum(c["n_runs"] for c in cells)), "n_games": len(games), "games": " ".join(games),
           "bootstrap_reps": reps}
    row["data_efficiency"] = float(np.mean([c.get("data_efficiency", np.nan) for c in cells]))
    for key, boot in (("speedup", samples), ("data_efficiency", data_samples)):
        stacked = [boot.get((alg, g, threads)) for g in games]
        if all(x is not None and x.size for x in stacked):
            with np.errstate(invalid="ignore"):
                row[f"{key}_ci_low"], row[f"{key}_ci_high"] = _ci(np.mean(np.vstack(stacked), axis=0))
    f1, fn = fps_alg.get((alg, 1), np.nan), fps_alg.get((alg, threads), np.nan)
    row["frames_per_second"] = fn
    row["throughput_speedup"] = fn / f1 if np.isfinite(f1) else np.nan
    return row


def speedup_table(lines: list[Line], references: pd.DataFrame, table: pd.DataFrame, reps: int = 2000,
                  cache: BootstrapCache | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Per algorithm, game and thread count, plus ``game = "mean"`` rows.  Returns (table, notes)."""
    refs = references.set_index("game")
    paper = paper_table2().set_index(["algorithm", "threads"])["speedup"]
    fps_game = throughput_by(table, ["algorithm", "game", "threads"])
    fps_alg = throughput_by(table, ["algorithm", "threads"])
    notes: list[str] = []
    rows = []
    samples: dict[tuple[str, str, int], np.ndarray] = {}
    data_samples: dict[tuple[str, str, int], np.ndarray] = {}
    per_alg_games: dict[str, dict[str, list[dict]]] = {}
    for alg in algorithm_order(ln.algorithm for ln in lines):
        per_alg_games[alg] = {}
        for game in sorted({ln.game for ln in lines if ln.algorithm == alg}):
            glines = {ln.threads: ln for ln in lines if ln.algorithm == alg and ln.game == game}
            ref = float(refs.loc[game, "reference_score"]) if game in refs.index else float("nan")
            src = refs.loc[game, "reference_source"] if game in refs.index else "none"
            base = glines.get(1)
            base_at_start = base is not None and np.isfinite(ref) and reached_at_start(base, ref)
            t1 = first_crossing(base.time_grid, base.time_mean, ref) if base is not None and np.isfinite(ref) else np.inf
            s1 = crossing_samples(base, ref, reps, cache) if base is not None and np.isfinite(ref) else np.empty(0)
            x1 = first_crossing(base.frame_grid, base.frame_mean, ref) if base is not None and np.isfinite(ref) else np.inf
            d1 = (crossing_samples(base, ref, reps, cache, "frames") if base is not None and np.isfinite(ref)
                  else np.empty(0))
            game_rows = []
            for threads in sorted(glines):
                ln = glines[threads]
                row = {"algorithm": alg, "game": game, "threads": threads, "reference_score": ref,
                       "reference_source": src, "oversubscribed": ln.oversubscribed, "n_runs": ln.n_runs,
                       "bootstrap_reps": reps}
                f1, fn = fps_game.get((alg, game, 1), np.nan), fps_game.get((alg, game, threads), np.nan)
                row["frames_per_second"] = fn
                row["throughput_speedup"] = fn / f1 if np.isfinite(f1) else np.nan
                if not np.isfinite(ref):
                    row["status"] = "no reference score"
                elif base is None:
                    row["status"] = "no 1-thread runs"
                else:
                    tn = first_crossing(ln.time_grid, ln.time_mean, ref)
                    xn = first_crossing(ln.frame_grid, ln.frame_mean, ref)
                    row["time_to_reference_s"] = tn if np.isfinite(tn) else np.nan
                    row["time_to_reference_1thread_s"] = float(t1) if np.isfinite(t1) else np.nan
                    row["frames_to_reference"] = xn if np.isfinite(xn) else np.nan
                    row["frames_to_reference_1thread"] = float(x1) if np.isfinite(x1) else np.nan
                    if not np.isfinite(t1):
                        row["status"] = "1 thread not reached"
                    elif base_at_start:
                        row["status"] = "1 thread reached at start"
                    elif not np.isfinite(tn):
                        row["status"] = "not reached"
                    elif reached_at_start(ln, ref):
                        row["status"] = "reached at start"
                    else:
                        row["status"] = "reached"
                        row["speedup"] = float(t1 / tn)
                        row["data_efficiency"] = float(x1 / xn) if np.isfinite(x1) and np.isfinite(xn) else np.nan
                        if threads != 1:  # 1 thread: 1 by definition, no interval
                            sn = crossing_samples(ln, ref, reps, cache)
                            if s1.size and sn.size:  # both lines resampled, or no interval at all
                                samples[(alg, game, threads)] = _ratio(s1, sn)
                                row["speedup_ci_low"], row["speedup_ci_high"] = _ci(samples[(alg, game, threads)])
                            dn = crossing_samples(ln, ref, reps, cache, "frames")
                            if d1.size and dn.size:
                                data_samples[(alg, game, threads)] = _ratio(d1, dn)
                                row["data_efficiency_ci_low"], row["data_efficiency_ci_high"] = _ci(
                                    data_samples[(alg, game, threads)])
                game_rows.append(row)
            rows.extend(game_rows)
            per_alg_games[alg][game] = game_rows
    # Means over games: the games complete at every thread count ("mean"), and every defined cell
    # at each thread count ("mean_defined").
    for alg, games in per_alg_games.items():
        complete = [g for g, rs in games.items() if rs and all(r["status"] == "reached" for r in rs)]
        dropped = sorted(set(games) - set(complete))
        if dropped:
            reasons = []
            for g in dropped:
                bad = [r for r in games[g] if r["status"] != "reached"]
                why = []
                for w in sorted({r["status"] for r in bad}):
                    at = ", ".join(str(r["threads"]) for r in bad if r["status"] == w)
                    why.append(w + (f" at {at} threads" if w in ("not reached", "reached at start") else ""))
                reasons.append(f"{g} ({'; '.join(why)})")
            notes.append(f"{algorithm_label(alg)}: mean speedup leaves out {', '.join(reasons)}"
                         + ("; 'mean_defined' averages every game reached at each thread count" if
                            any(r["status"] == "reached" and r["threads"] != 1 for g in dropped for r in games[g])
                            else ""))
        cells = {(g, r["threads"]): r for g, rs in games.items() for r in rs}
        all_threads = sorted({t for _, t in cells})
        means = {kind: {t: [g for g in (complete if kind == "mean" else games)
                            if (g, t) in cells and cells[(g, t)]["status"] == "reached"] for t in all_threads}
                 for kind in ("mean", "mean_defined")}
        if means["mean_defined"] == means["mean"]:
            del means["mean_defined"]  # it would average the same games
        for kind, at in means.items():
            for threads, gs in at.items():
                if gs:
                    rows.append(_mean_row(alg, kind, threads, gs, [cells[(g, threads)] for g in gs], samples,
                                          data_samples, fps_alg, reps))
    out = pd.DataFrame(rows, columns=SPEEDUP_COLUMNS)
    if out.empty:
        return out, notes
    out["efficiency"] = out["speedup"] / out["threads"]
    out["efficiency_ci_low"] = out["speedup_ci_low"] / out["threads"]
    out["efficiency_ci_high"] = out["speedup_ci_high"] / out["threads"]
    # The paper's Table 2 is a mean over seven Atari games: it stands only beside a mean over two or more
    # Atari games, all reached at every thread count (a one-game "mean" is that game's speedup).
    atari = table.groupby("game")["is_atari"].any().to_dict() if "is_atari" in table else {}
    mean_rows = out["game"] == "mean"
    out.loc[mean_rows, "paper_speedup"] = [
        paper.get((paper_algorithm(a), t), np.nan) if len(gs.split()) >= 2 and all(atari.get(g, False) for g in gs.split())
        else np.nan
        for a, t, gs in zip(out.loc[mean_rows, "algorithm"], out.loc[mean_rows, "threads"], out.loc[mean_rows, "games"])]
    out["games"] = out["games"].fillna("")
    return out[SPEEDUP_COLUMNS], notes


def plot_speedup(speedup: pd.DataFrame, colours: ThreadColours, left_out: list[str] | None = None):
    """Mean speedup over games vs threads per algorithm, with CI, the paper's Table 2 and ideal scaling;
    the mean of the cells reached beside it where games were left out (``left_out``: the table's notes)."""
    means = speedup[speedup["game"] == "mean"]
    defined = speedup[speedup["game"] == "mean_defined"]
    algorithms = list(dict.fromkeys(means["algorithm"])) or list(dict.fromkeys(speedup["algorithm"]))
    fig, axes = panel_grid(1, max(len(algorithms), 1), width=3.8, height=3.4)
    paper = paper_table2()
    for ax, alg in zip(axes[0], algorithms):
        m = means[means["algorithm"] == alg].sort_values("threads")
        threads = m["threads"].to_numpy()
        p = paper[paper["algorithm"] == paper_algorithm(alg)]
        with_paper = not p.empty and len(m) and m["paper_speedup"].notna().any()  # beside a mean over Atari games
        all_threads = sorted(set(threads) | set(speedup.loc[speedup["algorithm"] == alg, "threads"])
                             | (set(p["threads"]) if with_paper else set()))
        if len(m):
            yerr = np.vstack([m["speedup"] - m["speedup_ci_low"], m["speedup_ci_high"] - m["speedup"]])
            yerr = np.where(np.isfinite(yerr), np.clip(yerr, 0, None), 0)
            n_games, n_runs = int(m["n_games"].max()), int(m["n_runs"].max())
            games = max(m["games"], key=lambda g: len(g.split()))
            ax.errorbar(threads, m["speedup"], yerr=yerr, color="k", lw=1.6, capsize=3, zorder=3,
                        label=f"ours: mean of {', '.join(games.split()) if n_games <= 4 else f'{n_games} games'} "
                              f"(n={n_runs} runs), 95% CI")
            for _, r in m.iterrows():
                over = bool(r["oversubscribed"])
                ax.scatter([r["threads"]], [r["speedup"]], s=45, zorder=4, edgecolor="k",
                           facecolor="white" if over else colours(r["threads"]), linewidths=1.4 if over else 0.8)
        else:
            ax.text(0.5, 0.5, "no game reached the reference\nat every thread count", ha="center",
                    va="center", transform=ax.transAxes, color="0.4")
        d = defined[defined["algorithm"] == alg].sort_values("threads")
        if len(d):
            ax.plot(d["threads"], d["speedup"], ls="--", marker="D", ms=4, mfc="white", color="0.25", zorder=3,
                    label=f"mean of the cells reached ({int(d['n_games'].min())}-{int(d['n_games'].max())} games)")
        if with_paper:
            ax.plot(p["threads"], p["speedup"], ls="--", marker="s", ms=4, color="0.45",
                    label="paper, Table 2 (mean of 7 Atari games)")
        ax.plot(all_threads, all_threads, ls=":", color="0.6", label="ideal (linear)")
        log2_threads_axis(ax, all_threads)
        ax.set_yscale("log", base=2)
        plain_log_axis(ax.yaxis)
        ax.set_title(algorithm_label(alg), fontsize=10)
        ax.set_xlabel("threads (actor-learners)")
        ax.set_ylabel("speedup (time of 1 thread / time of n)")
        ax.legend(fontsize=7, loc="upper left")
    notes = ["Speedup: time for 1 thread to reach each game's reference score / time for n threads."]
    if means["oversubscribed"].astype(bool).any():
        notes.append("White markers: oversubscribed runs (more threads than the host's physical cores).")
    if (means["speedup_ci_low"] == 0).any():
        notes.append("An interval that runs off the bottom of the axis has a lower bound of 0: in some bootstrap "
                     "resamples n threads never reach the reference.")
    notes += [n[0].upper() + n[1:] + "." for n in (left_out or [])]
    if any_virtual(algorithms):
        notes.append(VIRTUAL_NOTE)
    return finish(fig, "Speedup vs threads (cf. Table 2)", notes)
