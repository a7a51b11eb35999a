"""Throughput: frames per second vs thread count per algorithm, with the ideal linear line.

Frames/s of a run is ``status.json`` ``steady_frames_per_second`` (training after every worker is
past start-up), else ``frames_per_second`` (training time only), else ``frames_done / wall_seconds``,
else the last episode's frames over its wall time.  Every run that did
not fail counts (running runs too: their rate so far is a valid measurement).  Points are the mean over
runs (all games) with a 95% bootstrap CI; the ideal line is n x the 1-thread mean.  Runs with more
threads than physical cores (``host.oversubscribed``) are drawn hollow and flagged in the table.
The table also gives where the workers' time went (``status.json`` ``phases``, ms per segment, mean
over the runs that recorded it): the shared update growing with threads is the price of Hogwild; and
the policy lag (``status.json`` ``policy_lag``: other workers' updates applied between a worker's
θ' ← θ and its own update): the mean over runs of each run's mean, median and 95th percentile, and the
largest lag of any run. Its mean is about threads − 1 by counting; oversubscription shows in the
median (lower) and the tail (higher) than N workers on N cores give.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from harness.report.cache import BootstrapCache
from harness.report.scores import LAG_COLUMNS, PHASE_COLUMNS
from harness.report.style import (VIRTUAL_NOTE, ThreadColours, algorithm_label, algorithm_order, any_virtual,
                                  bottom_legend, finish,
                                  log2_threads_axis, panel_grid, plain_log_axis)
from harness.stats import percentile_interval

THROUGHPUT_COLUMNS = ["algorithm", "threads", "frames_per_second", "ci_low", "ci_high", "throughput_speedup",
                      "ideal_speedup", "parallel_efficiency", "n_runs", "oversubscribed", "physical_cores",
                      *PHASE_COLUMNS, *LAG_COLUMNS]


def throughput_table(table: pd.DataFrame, reps: int, cache: BootstrapCache | None) -> pd.DataFrame:
    ok = table[(table["state"] != "failed") & np.isfinite(table["frames_per_second"])
               & (table["frames_per_second"] > 0)]
    rows = []
    for (alg, threads), g in ok.groupby(["algorithm", "threads"]):
        fps = g["frames_per_second"].to_numpy(dtype=float)

        def compute(rng, fps=fps):
            boot = fps[rng.integers(0, fps.size, size=(reps, fps.size))].mean(axis=1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return tuple(float(v) for v in percentile_interval(boot))

        lo, hi = (np.nan, np.nan)
        if reps > 0 and fps.size > 1:
            lo, hi = cache.get(("fps", fps, reps), compute) if cache is not None else compute(np.random.default_rng(0))
        cores = pd.to_numeric(g["physical_cores"], errors="coerce")
        rows.append({"algorithm": alg, "threads": int(threads), "frames_per_second": float(fps.mean()),
                     "ci_low": lo, "ci_high": hi, "n_runs": int(fps.size),
                     "oversubscribed": bool(g["oversubscribed"].any()),
                     "physical_cores": int(cores.min()) if cores.notna().any() else np.nan,
                     **{k: _mean_or_nan(g[k]) if k in g else np.nan for k in PHASE_COLUMNS},
                     **{k: (_max_or_nan if k == "lag_max" else _mean_or_nan)(g[k]) if k in g else np.nan
                        for k in LAG_COLUMNS}})
    out = pd.DataFrame(rows, columns=THROUGHPUT_COLUMNS)
    order = algorithm_order(out["algorithm"])
    out = out.sort_values(["algorithm", "threads"], key=lambda s: s.map(order.index) if s.name == "algorithm" else s,
                          ignore_index=True)
    for alg, g in out.groupby("algorithm"):
        base = g.loc[g["threads"] == 1, "frames_per_second"]
        if len(base):
            out.loc[g.index, "throughput_speedup"] = g["frames_per_second"] / float(base.iloc[0])
    out["ideal_speedup"] = out["threads"].astype(float)
    out["parallel_efficiency"] = out["throughput_speedup"] / out["threads"]
    return out


def _mean_or_nan(values: pd.Series) -> float:
    v = pd.to_numeric(values, errors="coerce").dropna()
    return float(v.mean()) if len(v) else np.nan


def _max_or_nan(values: pd.Series) -> float:
    v = pd.to_numeric(values, errors="coerce").dropna()
    return float(v.max()) if len(v) else np.nan


def plot_throughput(tp: pd.DataFrame, colours: ThreadColours):
    algorithms = list(dict.fromkeys(tp["algorithm"]))
    fig, axes = panel_grid(1, max(len(algorithms), 1), width=3.8, height=3.4)
    for ax, alg in zip(axes[0], algorithms):
        g = tp[tp["algorithm"] == alg].sort_values("threads")
        threads = g["threads"].to_numpy()
        fps = g["frames_per_second"].to_numpy()
        base = g.loc[g["threads"] == 1, "frames_per_second"]
        if len(base):
            ax.plot(threads, float(base.iloc[0]) * threads, ls=":", color="0.4", label="ideal (linear in threads)")
        err = np.vstack([fps - g["ci_low"].to_numpy(), g["ci_high"].to_numpy() - fps])
        err = np.where(np.isfinite(err), np.clip(err, 0, None), 0)
        ax.errorbar(threads, fps, yerr=err, color="k", lw=1.4, capsize=3, label="measured, mean with 95% CI")
        for _, r in g.iterrows():
            over = bool(r["oversubscribed"])
            ax.scatter([r["threads"]], [r["frames_per_second"]], s=50, zorder=4, edgecolor="k",
                       facecolor="white" if over else colours(r["threads"]), linewidths=1.5 if over else 0.8)
            ax.annotate(f"n={int(r['n_runs'])}", (r["threads"], r["frames_per_second"]), fontsize=7,
                        xytext=(4, -10), textcoords="offset points", color="0.3")
        cores = pd.to_numeric(g["physical_cores"], errors="coerce").dropna()
        if len(cores):
            ax.axvline(float(cores.min()), color="#d62728", lw=1, ls="--",
                       label=f"physical cores ({int(cores.min())})")
        log2_threads_axis(ax, threads)
        ax.set_yscale("log")
        plain_log_axis(ax.yaxis, decimal=True)
        ax.set_title(algorithm_label(alg), fontsize=10)
        ax.set_xlabel("threads (actor-learners)")
        ax.set_ylabel("training throughput (frames/s, all threads)")
        ax.legend(fontsize=7, loc="upper left")
    notes = ["Frames/s over training time (evaluation excluded), mean over runs of all games; n = runs.",
             "White markers: oversubscribed runs (more threads than the host's physical cores)."]
    if any_virtual(tp["algorithm"]):
        notes.append(VIRTUAL_NOTE)
    return finish(fig, "Throughput vs threads", notes)


PHASE_LABELS = {"sync_ms": "sync θ' ← θ", "act_ms": "act (env + forward)", "learn_ms": "learn (loss + backward)",
                "update_ms": "shared update (optimizer, θ⁻)"}
PHASE_COLOURS = {"sync_ms": "#bbbbbb", "act_ms": "#4c72b0", "learn_ms": "#55a868", "update_ms": "#c44e52"}


def has_phases(tp: pd.DataFrame) -> bool:
    return all(k in tp for k in PHASE_COLUMNS) and tp[list(PHASE_COLUMNS)].notna().all(axis=1).any()


def plot_phases(tp: pd.DataFrame):
    """Where a worker's time went per segment, stacked by phase, one bar per thread count."""
    tp = tp.dropna(subset=list(PHASE_COLUMNS))
    algorithms = list(dict.fromkeys(tp["algorithm"]))
    fig, axes = panel_grid(1, max(len(algorithms), 1), width=3.8, height=3.4)
    for ax, alg in zip(axes[0], algorithms):
        g = tp[tp["algorithm"] == alg].sort_values("threads")
        x = np.arange(len(g))
        bottom = np.zeros(len(g))
        for k in PHASE_COLUMNS:
            v = g[k].to_numpy(dtype=float)
            ax.bar(x, v, bottom=bottom, color=PHASE_COLOURS[k], label=PHASE_LABELS[k], width=0.6)
            bottom += v
        for xi, total in zip(x, bottom):
            ax.annotate(f"{total:.2g}", (xi, total), ha="center", va="bottom", fontsize=7, color="0.3")
        ax.set_xticks(x, [str(t) for t in g["threads"]])
        ax.set_ylim(0, bottom.max() * 1.15 if len(bottom) else 1)
        ax.set_title(algorithm_label(alg), fontsize=10)
        ax.set_xlabel("threads (actor-learners)")
        ax.set_ylabel("ms per segment, mean per worker")
        ax.grid(axis="x", visible=False)
    handles = [Patch(color=PHASE_COLOURS[k], label=PHASE_LABELS[k]) for k in PHASE_COLUMNS]
    notes = ["Measured by the workers themselves after their first 1,000 steps (status.json phases), mean over runs; "
             "a segment is t_max steps (or fewer at an episode's end). With ideal scaling every bar has the same "
             "height; a shared update that grows with threads is the memory traffic of sharing θ and the optimizer "
             "statistics (Hogwild)."]
    return finish(fig, "Where the workers' time goes", notes, extra_bottom=bottom_legend(fig, handles, notes))
