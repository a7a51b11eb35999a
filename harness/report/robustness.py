"""Robustness to the learning rate (cf. Fig. 2 and Fig. S11) and to the optimizer (cf. Fig. S5).

* Fig. 2 view: final score vs learning rate (log axis), a panel per algorithm x game, a point per run
  coloured by thread count (main optimizer only).  Diverged runs are red crosses at their game's
  collapse score (``scores`` module doc), running runs hollow circles (provisional scores).
* "Good score" of a game = its reference score (the one the speedup uses).  The share of learning
  rates whose finished runs *all* reach it is reported per algorithm, game and thread count; a
  learning rate with a diverged or unscored run does not count as all-good.
* Fig. S5 view (only when the sweep varies ``optimizer``): the final scores of all finished runs of an
  algorithm x game, sorted in descending order, one line per optimizer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.curves import main_optimizers
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from harness.report.style import (OVERSUB_NOTE, ThreadColours, algorithm_label, algorithm_order, bottom_legend,
                                  finish, game_title, is_bottom, no_data, optimizer_label, panel_grid,
                                  panel_layout, thread_label)

ROBUSTNESS_COLUMNS = ["algorithm", "game", "threads", "optimizer", "good_score", "n_lrs", "n_lrs_all_good",
                      "share_lrs_all_good", "lr_all_good_min", "lr_all_good_max", "n_runs", "n_finished",
                      "n_diverged", "n_running"]


def robustness_table(table: pd.DataFrame, references: pd.DataFrame) -> pd.DataFrame:
    refs = references.set_index("game")["reference_score"] if len(references) else pd.Series(dtype=float)
    rows = []
    for (alg, game, threads, opt), g in table.groupby(["algorithm", "game", "threads", "optimizer"]):
        good = float(refs.get(game, np.nan))
        fin = g[g["finished"]]
        all_good_lrs = []
        lrs = sorted(fin["lr"].unique())
        for lr in lrs:
            s = fin.loc[fin["lr"] == lr]
            ok = np.isfinite(good) and bool(((s["final_score"] >= good) & (s["state"] == "done")).all())
            if ok:
                all_good_lrs.append(lr)
        rows.append({
            "algorithm": alg, "game": game, "threads": threads, "optimizer": opt, "good_score": good,
            "n_lrs": len(lrs), "n_lrs_all_good": len(all_good_lrs) if np.isfinite(good) else np.nan,
            "share_lrs_all_good": (len(all_good_lrs) / len(lrs)) if lrs and np.isfinite(good) else np.nan,
            "lr_all_good_min": min(all_good_lrs) if all_good_lrs else np.nan,
            "lr_all_good_max": max(all_good_lrs) if all_good_lrs else np.nan,
            "n_runs": len(g), "n_finished": len(fin), "n_diverged": int((g["state"] == "diverged").sum()),
            "n_running": int(g["state"].isin(["running", "unknown", "interrupted"]).sum()),
        })
    return pd.DataFrame(rows, columns=ROBUSTNESS_COLUMNS)


def plot_robustness(table: pd.DataFrame, robust: pd.DataFrame, colours: ThreadColours):
    mains = main_optimizers(table)
    keep = np.array([mains.get((a, g)) == o for a, g, o in zip(table["algorithm"], table["game"], table["optimizer"])],
                    dtype=bool)
    data = table[keep & (table["state"] != "failed")]
    algorithms, games = algorithm_order(data["algorithm"]), sorted(data["game"].unique())
    all_threads = sorted(data["threads"].unique())
    # spread the thread counts side by side around each learning rate (x is logarithmic)
    offset = {t: 10 ** (0.035 * (k - (len(all_threads) - 1) / 2)) for k, t in enumerate(all_threads)}
    n_rows, n_cols, pos = panel_layout(algorithms, games)
    fig, axes = panel_grid(n_rows, n_cols, sharex=True, height=3.1)
    for game in games:
        for alg in algorithms:
            r, c = pos[(alg, game)]
            ax = axes[r, c]
            d = data[(data["algorithm"] == alg) & (data["game"] == game)]
            title = f"{algorithm_label(alg)} \u2014 {game_title(game)}"
            if d.empty:
                ax.set_title(title, fontsize=10)
                no_data(ax)
                continue
            finite = d["final_score"][np.isfinite(d["final_score"])]
            floor = float(finite.min()) if len(finite) else 0.0
            for threads, dt in d.groupby("threads"):
                col, x = colours(threads), dt["lr"] * offset[threads]
                done = (dt["state"] == "done") & np.isfinite(dt["final_score"])
                prov = ~dt["finished"] & np.isfinite(dt["final_score"])
                ax.scatter(x[done], dt["final_score"][done], s=18, color=col, alpha=0.85, lw=0)
                ax.scatter(x[prov], dt["final_score"][prov], s=22, facecolor="none", edgecolor=col)
            div = d[d["state"] == "diverged"]
            if len(div):
                ys = np.where(np.isfinite(div["final_score"]), div["final_score"], floor)
                ax.scatter(div["lr"] * div["threads"].map(offset), ys, marker="x", s=36, color="#d62728",
                           linewidths=1.6, zorder=5)
            rb = robust[(robust["algorithm"] == alg) & (robust["game"] == game)
                        & (robust["optimizer"] == mains.get((alg, game)))]
            good = rb["good_score"].iloc[0] if len(rb) else np.nan
            n_prov = int((~d["finished"]).sum())
            counts = f"{len(d)} runs" + (f", {len(div)} diverged" if len(div) else "") + (
                f", {n_prov} running" if n_prov else "")
            ax.set_title(title, fontsize=9.5, pad=13)  # the counts go on the line below: long titles of
            sub = counts                                 # side-by-side panels ran into each other
            if np.isfinite(good):
                ax.axhline(good, color="0.4", ls="--", lw=1)
                ok = rb[np.isfinite(rb["share_lrs_all_good"])]
                if len(ok):
                    sub += (f"; all-good LRs ({'/'.join(str(int(t)) for t in ok['threads'])} thr.): "
                            + "/".join(f"{100 * s:.0f}" for s in ok["share_lrs_all_good"]) + "%")
            ax.text(0.5, 1.01, sub, transform=ax.transAxes, ha="center", va="bottom", fontsize=8, color="0.25")
            ax.set_xscale("log")
            lr_axis(ax.xaxis, data["lr"])
            ax.set_xlabel("learning rate (log scale)" if is_bottom(pos, r, c) else "")
            ax.set_ylabel("final score (raw)" if c == 0 else "")
            ax.tick_params(labelbottom=True)
    for ax in axes.flat:
        if not ax.get_title():
            ax.set_axis_off()
    per_panel = data.groupby(["algorithm", "game", "threads"]).size()
    handles = []
    for t in all_threads:
        counts = per_panel[per_panel.index.get_level_values("threads") == t]
        n = f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()}-{counts.max()}"
        label = thread_label(t, oversubscribed=bool(data.loc[data["threads"] == t, "oversubscribed"].any()))
        handles.append(Line2D([], [], ls="", marker="o", color=colours(t),
                              label=f"{label} (n={n} per panel)" if len(counts) > 1 else f"{label} (n={n})"))
    if (~data["finished"] & np.isfinite(data["final_score"])).any():
        handles.append(Line2D([], [], ls="", marker="o", mfc="none", mec="0.3", label="still running (provisional)"))
    if (data["state"] == "diverged").any():
        handles.append(Line2D([], [], ls="", marker="x", color="#d62728", mew=1.6, label="diverged"))
    handles.append(Line2D([], [], ls="--", color="0.4", label="good score (= reference)"))
    notes = ["Each point: one run (main optimizer), thread counts side by side around each learning rate. "
             "Diverged runs (red crosses) score as collapses: the lower of random play (or the environment's "
             "lower bound) and the lowest score of any run of the game that ran to the end of its budget.",
             "All-good LRs: share of learning rates whose finished runs all reach the good score (dashed line: the "
             "game's speedup reference), per thread count."]
    if any(data["oversubscribed"]):
        notes.append(OVERSUB_NOTE)
    legend_height = bottom_legend(fig, handles, notes)
    return finish(fig, "Robustness to the learning rate (cf. Fig. 2)", notes, extra_bottom=legend_height)


def lr_axis(axis, lrs, max_ticks: int = 6) -> None:
    """Learning-rate ticks as plain numbers that do not overlap: the sweep's own rates when there are
    few, else 1, 2 and 5 times the powers of ten (the powers alone beyond two decades), thinned so that
    neighbours are at least 1/``max_ticks`` of the axis apart; no minor tick labels (matplotlib labels
    the minor ticks of a narrow log axis, "2×10⁻³ 3×10⁻³ 4×10⁻³", on top of each other)."""
    lrs = np.unique(np.asarray(lrs, dtype=float))
    lrs = lrs[np.isfinite(lrs) & (lrs > 0)]
    if not lrs.size:
        return
    lo, hi = float(lrs[0]), float(lrs[-1])
    ticks = list(lrs)
    if len(ticks) > max_ticks:
        subs = (1.0, 2.0, 5.0) if np.log10(hi / lo) <= 2 else (1.0,)
        exps = range(int(np.floor(np.log10(lo))) - 1, int(np.ceil(np.log10(hi))) + 2)
        grid = [m * 10.0 ** e for e in exps for m in subs if lo / 1.2 <= m * 10.0 ** e <= hi * 1.2]
        ticks = grid if len(grid) >= 2 else ticks
    gap = (np.log10(hi / lo) + 2 * np.log10(1.2)) / max_ticks  # the axis spans the rates and a margin
    kept = [ticks[0]]
    for t in ticks[1:]:
        if np.log10(t / kept[-1]) >= gap:
            kept.append(t)
    axis.set_major_locator(FixedLocator(kept))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    axis.set_minor_formatter(NullFormatter())


def optimizer_varies(table: pd.DataFrame) -> bool:
    return bool((table.groupby(["algorithm", "game"])["optimizer"].nunique() > 1).any())


def plot_optimizers(table: pd.DataFrame):
    """Fig. S5 view: sorted final scores per optimizer, a panel per algorithm x game, at the largest
    thread count that every optimizer of the panel has."""
    data = table[table["finished"]]
    varied = data.groupby(["algorithm", "game"])["optimizer"].nunique()
    pairs = [k for k, v in varied.items() if v > 1]
    algorithms = algorithm_order(a for a, _ in pairs)
    games = sorted({g for _, g in pairs})
    n_rows, n_cols, pos = panel_layout(algorithms, games)
    fig, axes = panel_grid(n_rows, n_cols)
    palette = {"shared_rmsprop": "#1f77b4", "rmsprop": "#ff7f0e", "momentum_sgd": "#2ca02c"}
    for alg in algorithms:
        for game in games:
            r, c = pos[(alg, game)]
            ax = axes[r, c]
            ax.set_title(f"{algorithm_label(alg)} \u2014 {game_title(game)}", fontsize=10)
            d = data[(data["algorithm"] == alg) & (data["game"] == game)]
            if (alg, game) not in pairs:
                no_data(ax, "one optimizer only")
                continue
            common = set.intersection(*(set(g["threads"]) for _, g in d.groupby("optimizer")))
            if common:
                d = d[d["threads"] == max(common)]
                ax.set_title(f"{algorithm_label(alg)} \u2014 {game_title(game)}, {thread_label(max(common))}",
                             fontsize=10)
            order = sorted(d["optimizer"].unique(), key=lambda o: (list(palette).index(o) if o in palette else 9, o))
            for opt in order:
                do = d[d["optimizer"] == opt]
                s = np.sort(do["final_score"].fillna(-np.inf).to_numpy())[::-1]
                s = s[np.isfinite(s)]
                ax.plot(np.arange(1, s.size + 1), s, marker="o", ms=3, lw=1.5, color=palette.get(opt),
                        label=f"{optimizer_label(opt)} (n={s.size})")
            ax.set_xlabel("runs, sorted by final score (rank)" if is_bottom(pos, r, c) else "")
            ax.set_ylabel("final score (raw)" if c == 0 else "")
            ax.legend(fontsize=7)
    for ax in axes.flat:
        if not ax.get_title():
            ax.set_axis_off()
    return finish(fig, "Robustness to the optimizer (cf. Fig. S5)",
                  ["Final scores of all finished runs (every learning rate and seed), sorted in descending order; "
                   "n = runs per line."])
