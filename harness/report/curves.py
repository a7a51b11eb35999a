"""Learning curves: the top-k learning-rate rule, averaged lines, Fig. 3 (data efficiency) and
Fig. 4 (training speed).

One *line* is an (algorithm, game, thread count) with the sweep's main optimizer (``shared_rmsprop``
when present, as in the paper).  Its runs are the finished runs of the ``top_k`` learning rates with
the best mean final score (the paper averages the three best); a line without any finished run yet is
drawn from its running runs and labelled as such.  Each run's smoothed curve
(``scores.learning_curve``) is interpolated onto a common grid of 200 points, once in frames and once
in wall-clock seconds; the line is the mean over runs at every grid point covered by more than half
of them, and its band is a 95% percentile bootstrap over its runs (:func:`bootstrap_strata`): resampled
within each learning rate when every learning rate has two or more runs (seeds), otherwise over all
the line's runs pooled (e.g. the top-3 learning rates with one seed each); a line of a single run has
no band.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.report.cache import BootstrapCache
from harness.report.load import Run
from harness.report.scores import SMOOTH_FRAC, learning_curve
from harness.report.style import (EPOCH_FRAMES, OVERSUB_NOTE, VIRTUAL_NOTE, ThreadColours, algorithm_label,
                                  algorithm_order, any_virtual, finish, frame_axis, game_title, is_bottom, no_data,
                                  panel_grid, panel_layout, split_method, thread_label, time_axis)
from harness.stats import (hold_last, interpolate_to_grid, mean_with_coverage, percentile_interval, resample_weights,
                           resampled_means, stratified_indices)

GRID_POINTS = 200


def main_optimizers(table: pd.DataFrame) -> dict[tuple[str, str], str]:
    """Per (algorithm, game): ``shared_rmsprop`` when any run used it, else the most common optimizer."""
    out = {}
    for (alg, game), g in table.groupby(["algorithm", "game"]):
        opts = g["optimizer"].value_counts()
        out[(alg, game)] = "shared_rmsprop" if "shared_rmsprop" in opts.index else str(opts.index[0])
    return out


def select_learning_rates(table: pd.DataFrame, top_k: int = 3) -> pd.DataFrame:
    """Rank the learning rates of every (algorithm, game, threads, optimizer) by mean final score.

    Finished runs decide; a group without finished runs is ranked on provisional scores (``basis``
    says which).  A diverged run already carries its game's collapse score (``scores.run_table``); one
    left without any score counts with the group's lowest.  A learning rate whose runs have no score
    ranks last.  Ties go to the
    smaller rate.
    """
    rows = []
    keys = ["algorithm", "game", "threads", "optimizer"]
    for key, g in table.groupby(keys):
        finished = g[g["finished"]]
        basis = "finished" if finished["final_score"].notna().any() else "provisional"
        scored = finished if basis == "finished" else g
        floor = scored["final_score"].min()  # NaN when nothing scored
        unscored_diverged = (scored["state"] == "diverged") & scored["final_score"].isna()
        scored = scored.assign(final_score=scored["final_score"].mask(unscored_diverged, floor))
        per_lr = []
        for lr, lg in g.groupby("lr"):
            s = scored.loc[scored["lr"] == lr, "final_score"]
            mean = float(s.mean()) if s.notna().any() else float("nan")
            per_lr.append((lr, mean, len(lg), int(lg["finished"].sum())))
        per_lr.sort(key=lambda t: (-(t[1]) if np.isfinite(t[1]) else np.inf, t[0]))
        for rank, (lr, mean, n, n_fin) in enumerate(per_lr, start=1):
            rows.append(dict(zip(keys, key)) | {
                "lr": lr, "rank": rank, "mean_final_score": mean, "n_runs": n, "n_finished": n_fin,
                "selected": rank <= top_k and np.isfinite(mean), "basis": basis})
    return pd.DataFrame(rows, columns=keys + ["lr", "rank", "mean_final_score", "n_runs", "n_finished",
                                              "selected", "basis"])


@dataclass
class Line:
    algorithm: str
    game: str
    threads: int
    optimizer: str
    runs: list[int]  # row indices into the run table / run list
    lrs: list[float]
    source: str  # "train" (training episodes) or "eval" (evaluation snapshots)
    strata: np.ndarray | None  # bootstrap stratum of each run (bootstrap_strata); None: one run, no interval
    oversubscribed: bool
    provisional: bool  # no finished run yet: drawn from running runs
    frame_grid: np.ndarray = field(repr=False)
    frame_values: np.ndarray = field(repr=False)  # (n_runs, G)
    time_grid: np.ndarray = field(repr=False)
    time_values: np.ndarray = field(repr=False)
    frame_mean: np.ndarray = field(repr=False, default=None)
    frame_band: tuple[np.ndarray, np.ndarray] | None = field(repr=False, default=None)
    time_mean: np.ndarray = field(repr=False, default=None)
    time_band: tuple[np.ndarray, np.ndarray] | None = field(repr=False, default=None)

    @property
    def n_runs(self) -> int:
        return len(self.runs)

    @property
    def label(self) -> str:
        label = thread_label(self.threads, self.n_runs, self.oversubscribed)
        return label[:-1] + ", running)" if self.provisional else label


def bootstrap_strata(lrs: np.ndarray) -> np.ndarray | None:
    """How a line's runs are resampled for its band and for the speedup's interval.

    Within learning rates (the stratum of each run is its rate) when every rate has at least two
    runs, so the interval is over seeds; otherwise all runs pooled (one stratum), so that it reflects
    run-to-run variation over the top-k runs, never a resample that cannot vary (with one seed per
    rate, resampling within rates reproduces the data every time).  ``None`` for a single run."""
    lrs = np.asarray(lrs)
    if lrs.size < 2:
        return None
    _, counts = np.unique(lrs, return_counts=True)
    return lrs if counts.min() >= 2 else np.zeros(lrs.size)


def curve_band(values: np.ndarray, strata: np.ndarray | None, reps: int, cache: BootstrapCache | None) -> tuple[np.ndarray, np.ndarray] | None:
    """95% bootstrap band of the line mean (resampled as ``bootstrap_strata`` says); ``None`` for
    a single run (nothing to resample)."""
    if reps <= 0 or strata is None:
        return None

    def compute(rng):
        weights = resample_weights(stratified_indices(strata, reps, rng), len(strata))
        means = resampled_means(values, weights)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return percentile_interval(means, axis=0)

    if cache is None:
        return compute(np.random.default_rng(0))
    return cache.get(("curve_band", values, strata, reps), compute)


def run_curve(runs: list[Run], table: pd.DataFrame, i: int, smooth_frac: float = SMOOTH_FRAC, source: str = "train"):
    """Run ``i``'s learning curve; a diverged run's drops to its game's collapse score (scores doc)."""
    collapse = table.at[i, "collapse_score"] if table.at[i, "state"] == "diverged" else None
    return learning_curve(runs[i], smooth_frac, collapse, source)


def build_lines(runs: list[Run], table: pd.DataFrame, selection: pd.DataFrame, reps: int = 500,
                cache: BootstrapCache | None = None, grid_points: int = GRID_POINTS,
                smooth_frac: float = SMOOTH_FRAC, source: str = "train") -> list[Line]:
    """The averaged lines of Figs. 3 and 4 (main optimizer, selected learning rates), from training
    episodes (``source="train"``, the default) or from evaluation snapshots (``"eval"``)."""
    mains = main_optimizers(table)
    chosen = selection[selection["selected"]]
    keys = ["algorithm", "game", "threads", "optimizer"]
    has_points = table["n_evals" if source == "eval" else "n_episodes"] > 0
    usable = table[(table["state"] != "failed") & (has_points | (table["state"] == "diverged"))]
    groups = dict(list(usable.groupby(keys)))
    lines: list[Line] = []
    for (alg, game, threads, opt), sel in chosen.groupby(keys):
        if mains.get((alg, game)) != opt or (alg, game, threads, opt) not in groups:
            continue
        g = groups[(alg, game, threads, opt)]
        g = g[g["lr"].isin(sel["lr"])]
        if g.empty:
            continue
        provisional = not g["finished"].any()
        if not provisional:  # mixing in unfinished runs would bend the mean where they stop
            g = g[g["finished"]]
        curves = {i: run_curve(runs, table, i, smooth_frac, source) for i in g.index}
        g = g[[curves[i][0].size > 0 for i in g.index]]
        if g.empty:
            continue
        curves = [curves[i] for i in g.index]
        fmax = max(c[0][-1] for c in curves)
        tmax = max(c[1][-1] for c in curves)
        fgrid = np.linspace(0.0, fmax, grid_points)
        tgrid = np.linspace(0.0, tmax, grid_points)
        fvals = interpolate_to_grid([(c[0], c[2]) for c in curves], fgrid)
        tord = [np.argsort(c[1], kind="stable") for c in curves]
        tvals = interpolate_to_grid([(c[1][o], c[2][o]) for c, o in zip(curves, tord)], tgrid)
        if not provisional:  # finished runs keep their final score after they end (wall clock)
            tvals = hold_last(tvals)
        line = Line(alg, game, int(threads), opt, list(g.index), sorted(sel["lr"].tolist()), source,
                    bootstrap_strata(g["lr"].to_numpy()), bool(g["oversubscribed"].any()), provisional,
                    fgrid, fvals, tgrid, tvals)
        line.frame_mean, _ = mean_with_coverage(fvals)
        line.time_mean, _ = mean_with_coverage(tvals)
        line.frame_band = curve_band(fvals, line.strata, reps, cache)
        line.time_band = curve_band(tvals, line.strata, reps, cache)
        lines.append(line)
    return lines


def plot_curves(lines: list[Line], colours: ThreadColours, axis: str = "frames", top_k: int = 3,
                epoch_frames: int = EPOCH_FRAMES):
    """Fig. 3 (``axis="frames"``) or Fig. 4 (``axis="time"``): a panel per algorithm (rows) and game
    (columns), a line per thread count with its 95% band; the y axis is shared within a game."""
    algorithms = algorithm_order(ln.algorithm for ln in lines)
    games = sorted({ln.game for ln in lines})
    n_rows, n_cols, pos = panel_layout(algorithms, games)
    fig, axes = panel_grid(n_rows, n_cols, sharey="col" if len(games) > 1 else True)
    any_oversub = epochs = False
    for game in games:
        game_lines = [ln for ln in lines if ln.game == game]
        if axis == "frames":
            div, xlabel = frame_axis(max(ln.frame_grid[-1] for ln in game_lines), epoch_frames)
            epochs |= div == epoch_frames
        else:
            div, xlabel = time_axis(max(ln.time_grid[-1] for ln in game_lines))
        for alg in algorithms:
            r, c = pos[(alg, game)]
            ax = axes[r, c]
            ax.set_title(f"{algorithm_label(alg)} \u2014 {game_title(game)}", fontsize=10)
            panel = sorted((ln for ln in game_lines if ln.algorithm == alg), key=lambda ln: ln.threads)
            if not panel:
                no_data(ax)
                continue
            for ln in panel:
                grid, mean, band = ((ln.frame_grid, ln.frame_mean, ln.frame_band) if axis == "frames"
                                    else (ln.time_grid, ln.time_mean, ln.time_band))
                colour = colours(ln.threads)
                ax.plot(grid / div, mean, color=colour, lw=1.8, label=ln.label)
                if band is not None:
                    ax.fill_between(grid / div, band[0], band[1], color=colour, alpha=0.18, lw=0)
                any_oversub |= ln.oversubscribed
            label = xlabel.replace("wall-clock time", "virtual clock") if (
                axis == "time" and split_method(alg)[1] == "virtual") else xlabel
            ax.set_xlabel(label if is_bottom(pos, r, c) else "")
            ax.set_ylabel("raw game score" if c == 0 else "")
            ax.tick_params(labelleft=True)
            ax.legend(fontsize=7, loc="best", title="threads (runs)", title_fontsize=7)
    for ax in axes.flat:
        if not ax.get_title():
            ax.set_axis_off()
    notes = [f"Each line: mean over the runs of the {top_k} best learning rates (all of them where there are fewer; "
             "n = runs); band: 95% bootstrap "
             "CI over runs (within learning rates when each has 2+ seeds, else over the line's runs pooled).",
             ("Score: evaluation snapshots' mean return (evaluation policy: ε = 0.05 / the learned policy), "
              if lines and lines[0].source == "eval" else
              "Score: training-episode return, centred moving average over 5% of the frame budget. ")
             + "Frames are summed over all threads" + (f"; 1 epoch = {epoch_frames / 1e6:g}M frames." if epochs else ".")
             + (" A finished run keeps its final score after it ends." if axis == "time" else "")]
    if any((ln.frame_band if axis == "frames" else ln.time_band) is None for ln in lines):
        notes.append("Lines without a band: a single run, so there is nothing to resample.")
    if any_oversub:
        notes.append(OVERSUB_NOTE)
    if any_virtual(ln.algorithm for ln in lines):
        notes.append(VIRTUAL_NOTE)
    title = ("Data efficiency (cf. Fig. 3): score vs training data" if axis == "frames"
             else "Training speed (cf. Fig. 4): score vs wall-clock time")
    return finish(fig, title, notes)
