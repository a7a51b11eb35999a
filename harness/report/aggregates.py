"""Aggregate performance with rliable's statistics (Agarwal et al. 2021).

Inputs: the normalised final scores (``scores.run_table``) of the *finished* runs of the top-k learning
rates of each (algorithm, thread count), main optimizer; tasks are games.  A group's tasks are the
games it has normalised scores for; the table says how many runs and games stand behind each number.

* IQM, median, mean and optimality gap (gamma = 1, i.e. human level / the upper bound) with 95%
  stratified-bootstrap percentile CIs (runs resampled within each game).
* Performance profiles: the fraction of runs above each normalised-score threshold, with 95% bands.
* Probability of improvement P(X > Y) between every pair of algorithms at the same thread count,
  over the games both have, with 95% CIs (each algorithm's runs resampled independently).
* IQM sample-efficiency curves: the IQM of normalised learning curves vs frames, with 95% bands.
* No interval or band where a game has a single run (``harness.stats.single_run_tasks``): resampling
  within games cannot vary that game's score, so the interval would leave out its run-to-run variation
  (and have zero width when every game has one run, as with ``--top-k 1`` and one seed). The tables'
  ``ci_note`` column says which games.

Point estimates are rliable's own functions (``rliable.metrics`` and ``rliable.library.score_distributions``)
whenever every game of a group has the same number of runs, which rliable requires; with uneven run
counts they are ``harness.stats``' NaN-aware equivalents (tested equal to rliable on equal counts).
The 95% intervals resample exactly as rliable's ``get_interval_estimates`` does (percentile intervals of
a bootstrap that resamples runs within each game), but vectorised in ``harness.stats``: rliable's
bootstrap (arch, one Python call per resample) took 1.2 s per group for the four aggregates and 10 s
per pair for the probability of improvement at 2,000 resamples here, i.e. minutes for a 20-group
report against its 30-second target.  tests/test_report_stats.py checks that both give the same
intervals.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.report.cache import BootstrapCache
from harness.report.curves import main_optimizers, run_curve
from harness.report.load import Run
from harness.report.scores import Normaliser, frame_budget, learning_curve
from harness.report.style import (ThreadColours, algorithm_label, algorithm_order, finish, frame_axis,
                                  panel_grid, thread_label)
from harness.stats import (AGGREGATE_METRICS, aggregate_iqm, aggregate_metrics, interpolate_to_grid,
                           pad_ragged, percentile_interval, performance_profile, probability_of_improvement,
                           single_run_tasks, stratified_task_indices)

AGG_COLUMNS = ["algorithm", "threads", "metric", "value", "ci_low", "ci_high", "ci_note", "n_runs", "n_games",
               "games", "bootstrap_reps"]
POI_COLUMNS = ["threads", "algorithm_x", "algorithm_y", "probability_x_better", "ci_low", "ci_high", "ci_note",
               "n_games", "games", "bootstrap_reps"]
NO_INTERVAL_NOTE = ("No interval where a game has a single run: a bootstrap that resamples runs within games "
                    "cannot vary that game's score.")
EFFICIENCY_POINTS = 30


@dataclass
class Group:
    algorithm: str
    threads: int
    games: list[str]
    runs: list[list[int]]  # per game, run indices
    scores: np.ndarray  # (n_max, n_games) NaN-padded normalised final scores

    @property
    def n_runs(self) -> int:
        return int(np.isfinite(self.scores).sum())

    @property
    def label(self) -> str:
        return f"{algorithm_label(self.algorithm)}, {thread_label(self.threads)}"

    @property
    def resamplable(self) -> bool:
        return not single_run_tasks(self.scores).any()


def ci_note(games: list[str], *scores: np.ndarray) -> str:
    """Why a comparison has no interval (``single_run_tasks``), or "" when it has one."""
    single = [g for g, one in zip(games, single_run_tasks(*scores)) if one]
    return f"no interval: a single run in {', '.join(single)}" if single else ""


def _full(*matrices: np.ndarray) -> bool:
    """Every game has the same number of runs (no NaN padding): rliable's functions apply."""
    return all(m.size and not np.isnan(m).any() for m in matrices)


def point_aggregates(scores: np.ndarray) -> np.ndarray:
    """IQM, median, mean, optimality gap of a ``(runs, games)`` matrix: rliable's ``metrics`` when the
    matrix is full, else ``harness.stats`` (NaN-padded, uneven run counts)."""
    if _full(scores):
        from rliable import metrics

        return np.array([metrics.aggregate_iqm(scores), metrics.aggregate_median(scores),
                         metrics.aggregate_mean(scores), metrics.aggregate_optimality_gap(scores)], dtype=float)
    return aggregate_metrics(scores)


def point_profile(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    if _full(scores):
        from rliable import library

        return np.asarray(library.score_distributions(scores, taus), dtype=float)
    return performance_profile(scores, taus)


def point_improvement(sx: np.ndarray, sy: np.ndarray) -> float:
    if _full(sx, sy):
        from rliable import metrics

        return float(metrics.probability_of_improvement(sx, sy))
    return float(probability_of_improvement(sx, sy))


def _quiet_interval(samples, axis=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return percentile_interval(samples, axis=axis)


def score_groups(table: pd.DataFrame, selection: pd.DataFrame) -> list[Group]:
    mains = main_optimizers(table)
    chosen = selection[selection["selected"]][["algorithm", "game", "threads", "optimizer", "lr"]]
    rows = table.reset_index().merge(chosen, on=["algorithm", "game", "threads", "optimizer", "lr"]).set_index("index")
    rows = rows[rows["finished"] & np.isfinite(rows["normalised_score"])]
    main = np.array([mains.get((a, g)) == o for a, g, o in zip(rows["algorithm"], rows["game"], rows["optimizer"])],
                    dtype=bool)  # an empty list would select no *columns*
    rows = rows[main]
    if rows.empty:
        return []
    groups = []
    order = algorithm_order(rows["algorithm"])
    for (alg, threads), g in sorted(rows.groupby(["algorithm", "threads"]), key=lambda kv: (order.index(kv[0][0]), kv[0][1])):
        games = sorted(g["game"].unique())
        per_game = [list(g.index[g["game"] == game]) for game in games]
        scores = pad_ragged([g.loc[idx, "normalised_score"].to_numpy() for idx in per_game])
        groups.append(Group(alg, int(threads), games, per_game, scores))
    return groups


def aggregate_table(groups: list[Group], reps: int, cache: BootstrapCache | None) -> pd.DataFrame:
    rows = []
    for grp in groups:
        point = point_aggregates(grp.scores)

        def compute(rng, s=grp.scores):
            counts = np.isfinite(s).sum(axis=0)
            idx = stratified_task_indices(counts, s.shape[0], reps, rng)
            boot = aggregate_metrics(np.take_along_axis(s[None], idx, axis=1))
            return _quiet_interval(boot)

        note = ci_note(grp.games, grp.scores)
        lo, hi = (cache.get(("aggregates", grp.scores, reps), compute) if cache is not None
                  else compute(np.random.default_rng(0))) if reps > 0 and not note else (np.full(4, np.nan),) * 2
        for j, metric in enumerate(AGGREGATE_METRICS):
            rows.append({"algorithm": grp.algorithm, "threads": grp.threads, "metric": metric,
                         "value": float(point[j]), "ci_low": float(lo[j]), "ci_high": float(hi[j]),
                         "ci_note": note, "n_runs": grp.n_runs, "n_games": len(grp.games), "games": " ".join(grp.games),
                         "bootstrap_reps": reps})
    return pd.DataFrame(rows, columns=AGG_COLUMNS)


def profile_taus(groups: list[Group]) -> np.ndarray:
    allv = np.concatenate([g.scores[np.isfinite(g.scores)] for g in groups]) if groups else np.zeros(1)
    hi = max(float(np.max(allv)), 1.0)
    lo = min(float(np.min(allv)), 0.0)
    return np.linspace(lo, hi, 101)


def profiles(groups: list[Group], taus: np.ndarray, reps: int, cache: BootstrapCache | None) -> dict:
    out = {}
    for grp in groups:
        point = point_profile(grp.scores, taus)

        def compute(rng, s=grp.scores):
            counts = np.isfinite(s).sum(axis=0)
            idx = stratified_task_indices(counts, s.shape[0], reps, rng)
            return _quiet_interval(performance_profile(np.take_along_axis(s[None], idx, axis=1), taus))

        band = None
        if reps > 0 and grp.resamplable:
            band = cache.get(("profile", grp.scores, taus, reps), compute) if cache is not None else compute(np.random.default_rng(0))
        out[(grp.algorithm, grp.threads)] = (point, band)
    return out


def improvement_table(groups: list[Group], reps: int, cache: BootstrapCache | None) -> pd.DataFrame:
    rows = []
    by = {(g.algorithm, g.threads): g for g in groups}
    for threads in sorted({g.threads for g in groups}):
        algs = algorithm_order(a for a, t in by if t == threads)
        for i, ax in enumerate(algs):
            for ay in algs[i + 1:]:
                gx, gy = by[(ax, threads)], by[(ay, threads)]
                common = [g for g in gx.games if g in gy.games]
                if not common:
                    continue
                sx = gx.scores[:, [gx.games.index(g) for g in common]]
                sy = gy.scores[:, [gy.games.index(g) for g in common]]
                point = point_improvement(sx, sy)

                def compute(rng, sx=sx, sy=sy):
                    cx, cy = np.isfinite(sx).sum(axis=0), np.isfinite(sy).sum(axis=0)
                    bx = np.take_along_axis(sx[None], stratified_task_indices(cx, sx.shape[0], reps, rng), axis=1)
                    by_ = np.take_along_axis(sy[None], stratified_task_indices(cy, sy.shape[0], reps, rng), axis=1)
                    return _quiet_interval(probability_of_improvement(bx, by_))

                note = ci_note(common, sx, sy)
                lo, hi = ((cache.get(("poi", sx, sy, reps), compute) if cache is not None
                           else compute(np.random.default_rng(0))) if reps > 0 and not note else (np.nan, np.nan))
                rows.append({"threads": threads, "algorithm_x": ax, "algorithm_y": ay,
                             "probability_x_better": point, "ci_low": float(lo), "ci_high": float(hi),
                             "ci_note": note,
                             "n_games": len(common), "games": " ".join(common), "bootstrap_reps": reps})
    return pd.DataFrame(rows, columns=POI_COLUMNS)


def efficiency_curves(groups: list[Group], runs: list[Run], norms: dict[str, Normaliser], reps: int,
                      cache: BootstrapCache | None, points: int = EFFICIENCY_POINTS,
                      table: pd.DataFrame | None = None) -> tuple[dict, bool]:
    """IQM of normalised learning curves on a frame grid common to each group's finished runs.

    When the runs have different frame budgets (e.g. CartPole beside Atari) the x axis is the
    fraction of each run's budget instead of frames; the second return value says so.
    """
    budgets = {frame_budget(runs[i]) for grp in groups for idx in grp.runs for i in idx}
    relative = len(budgets) > 1

    def curve(i):
        f, _, s = learning_curve(runs[i]) if table is None else run_curve(runs, table, i)
        return (f / frame_budget(runs[i]) if relative else f), None, s

    out = {}
    for grp in groups:
        curves = {game: [curve(i) for i in idx] for game, idx in zip(grp.games, grp.runs)}
        firsts = [c[0][0] for cs in curves.values() for c in cs if c[0].size]
        lasts = [c[0][-1] for cs in curves.values() for c in cs if c[0].size]
        if not firsts or max(firsts) >= min(lasts):
            continue
        grid = np.linspace(max(firsts), min(lasts), points)
        n_max = grp.scores.shape[0]
        values = np.full((points, n_max, len(grp.games)), np.nan)
        for t, game in enumerate(grp.games):
            cs = [c for c in curves[game] if c[0].size]
            mat = interpolate_to_grid([(c[0], norms[game](c[2])) for c in cs], grid)
            values[:, : len(cs), t] = mat.T
        point = aggregate_iqm(values)

        def compute(rng, v=values):
            counts = np.isfinite(v[0]).sum(axis=0)
            idx = stratified_task_indices(counts, n_max, reps, rng)
            boot = np.take_along_axis(v[None], idx[:, None, :, :], axis=2)
            return _quiet_interval(aggregate_iqm(boot))

        band = None
        if reps > 0 and grp.resamplable:
            band = cache.get(("efficiency", values, reps), compute) if cache is not None else compute(np.random.default_rng(0))
        out[(grp.algorithm, grp.threads)] = (grid, point, band, int(np.isfinite(values[0]).sum()))
    return out, relative


# ----------------------------------------------------------------------------------------------
def plot_aggregates(agg: pd.DataFrame, colours: ThreadColours, score_label: str):
    groups = agg[["algorithm", "threads"]].drop_duplicates()
    groups = groups.assign(o=[(algorithm_order(groups["algorithm"]).index(a), t) for a, t in
                              zip(groups["algorithm"], groups["threads"])]).sort_values("o")
    metrics = list(AGGREGATE_METRICS)
    fig, axes = panel_grid(1, len(metrics), width=3.3, height=max(2.4, 0.32 * len(groups) + 1.2), sharey=True)
    labels = []
    for i, (_, g) in enumerate(groups.iterrows()):
        sub = agg[(agg["algorithm"] == g["algorithm"]) & (agg["threads"] == g["threads"])].set_index("metric")
        n_runs, n_games = int(sub["n_runs"].iloc[0]), int(sub["n_games"].iloc[0])
        labels.append(f"{algorithm_label(g['algorithm'])}, {thread_label(int(g['threads']))} "
                      f"(n={n_runs} runs, {n_games} game{'s' if n_games != 1 else ''})")
        for ax, metric in zip(axes[0], metrics):
            r = sub.loc[metric]
            col = colours(g["threads"])
            if np.isfinite(r["ci_low"]):
                ax.barh(i, r["ci_high"] - r["ci_low"], left=r["ci_low"], height=0.6, color=col, alpha=0.75)
            ax.plot([r["value"]], [i], marker="|", ms=14, mew=2, color="k")
    for ax, metric in zip(axes[0], metrics):
        ax.set_title(metric.replace("_", " ") + (" (lower is better)" if metric == "optimality_gap" else ""),
                     fontsize=10)
        ax.set_xlabel("normalised score" if metric != "optimality_gap" else "gap to 1 (normalised)")
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels, fontsize=8)
    axes[0][0].invert_yaxis()  # first group on top (the y axis is shared)
    notes = ["Bars: 95% stratified-bootstrap CIs (runs resampled within games); black tick: point estimate.",
             "Runs: finished runs of the top-k learning rates per algorithm, game and thread count.", score_label]
    if agg["ci_note"].astype(bool).any():
        notes.insert(1, "No bar: " + NO_INTERVAL_NOTE)
    return finish(fig, "Aggregate performance (rliable): IQM, median, mean, optimality gap", notes)


def plot_profiles(profs: dict, taus: np.ndarray, groups: list[Group], colours: ThreadColours, score_label: str):
    algorithms = algorithm_order(a for a, _ in profs)
    fig, axes = panel_grid(1, max(len(algorithms), 1), width=3.8, height=3.2, sharey=True)
    nruns = {(g.algorithm, g.threads): g.n_runs for g in groups}
    for ax, alg in zip(axes[0], algorithms):
        for (a, t), (point, band) in sorted(profs.items(), key=lambda kv: kv[0][1]):
            if a != alg:
                continue
            ax.plot(taus, point, color=colours(t), lw=1.8, label=thread_label(t, nruns[(a, t)]))
            if band is not None:
                ax.fill_between(taus, band[0], band[1], color=colours(t), alpha=0.18, lw=0)
        ax.axvline(1.0, color="0.5", ls=":", lw=1)
        ax.set_title(algorithm_label(alg), fontsize=10)
        ax.set_xlabel("normalised score threshold \u03c4")
        ax.set_ylabel("fraction of runs with score > \u03c4" if ax is axes[0][0] else "")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7)
    notes = ["Score distributions over all finished runs (top-k learning rates) of all games; bands: 95% "
             "stratified-bootstrap CIs. Dotted line: normalised score 1 (human / upper bound).", score_label]
    if any(band is None for _, band in profs.values()):
        notes.insert(1, "No band: " + NO_INTERVAL_NOTE)
    return finish(fig, "Performance profiles", notes)


def plot_improvement(poi: pd.DataFrame):
    fig, axes = panel_grid(1, 1, width=7.0, height=max(2.2, 0.4 * len(poi) + 1.2))
    ax = axes[0, 0]
    labels = []
    for i, (_, r) in enumerate(poi.iterrows()):
        labels.append(f"P({algorithm_label(r['algorithm_x'])} > {algorithm_label(r['algorithm_y'])}), "
                      f"{thread_label(int(r['threads']))}, {int(r['n_games'])} game(s)")
        if np.isfinite(r["ci_low"]):
            ax.barh(i, r["ci_high"] - r["ci_low"], left=r["ci_low"], height=0.6, color="#4c72b0", alpha=0.7)
        ax.plot([r["probability_x_better"]], [i], marker="|", ms=14, mew=2, color="k")
    ax.axvline(0.5, color="0.4", ls="--", lw=1)
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(-0.02, 1.02)  # a tick at 0 or 1 stays visible
    ax.set_xlabel("probability of improvement (final normalised score)")
    notes = ["P(X > Y): chance that a run of X beats a run of Y on the same game, averaged over games; "
             "bars: 95% bootstrap CIs; 0.5 = no difference."]
    if poi["ci_note"].astype(bool).any():
        notes.append("No bar: " + NO_INTERVAL_NOTE)
    return finish(fig, "Probability of improvement between algorithms", notes)


def plot_efficiency(curves: dict, colours: ThreadColours, score_label: str, epoch_frames: int,
                    relative: bool = False):
    algorithms = algorithm_order(a for a, _ in curves)
    fig, axes = panel_grid(1, max(len(algorithms), 1), width=3.8, height=3.2, sharey=True)
    fmax = max((c[0][-1] for c in curves.values()), default=1.0)
    if relative:
        div, xlabel = 0.01, "training progress (% of frame budget)"
    else:
        div, xlabel = frame_axis(fmax, epoch_frames)
    for ax, alg in zip(axes[0], algorithms):
        for (a, t), (grid, point, band, n) in sorted(curves.items(), key=lambda kv: kv[0][1]):
            if a != alg:
                continue
            ax.plot(grid / div, point, color=colours(t), lw=1.8, label=thread_label(t, n))
            if band is not None:
                ax.fill_between(grid / div, band[0], band[1], color=colours(t), alpha=0.18, lw=0)
        ax.set_title(algorithm_label(alg), fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("IQM normalised score" if ax is axes[0][0] else "")
        ax.legend(fontsize=7)
    notes = ["IQM over all finished runs (top-k learning rates) of all games at each point; "
             "bands: 95% stratified-bootstrap CIs.", score_label]
    if any(c[2] is None for c in curves.values()):
        notes.insert(1, "No band: " + NO_INTERVAL_NOTE)
    if relative:
        notes.append("The games have different frame budgets, so the x axis is each run's progress through its budget.")
    return finish(fig, "Sample efficiency: IQM normalised score vs training data", notes)
