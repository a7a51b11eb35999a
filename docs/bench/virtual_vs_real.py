"""Virtual against real Hogwild on the same grid (suites/virtual-validation.yaml): the data-efficiency
curves of the two schedules with their bootstrap bands on one axis per algorithm, where the bands
overlap, the final scores with their intervals, and the policy-lag distributions
(docs/BENCHMARKS.md, "Virtual against real").

    python docs/bench/virtual_vs_real.py results/virtual-validation docs/img/virtual-vs-real.png \\
        [--csv docs/bench/virtual-vs-real.csv]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from harness.report.curves import build_lines, select_learning_rates
from harness.report.load import load_runs
from harness.report.scores import run_table
from harness.report.style import algorithm_label, finish, panel_grid, set_theme, split_method
from harness.stats import percentile_interval

REPS = 2000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("results", type=Path)
    ap.add_argument("figure", type=Path)
    ap.add_argument("--csv", type=Path, default=None)
    args = ap.parse_args()
    runset = load_runs([args.results])
    table, _ = run_table(runset.runs)
    lines = build_lines(runset.runs, table, select_learning_rates(table, 3), REPS)
    bases = sorted({split_method(ln.algorithm)[0] for ln in lines})
    set_theme()
    fig, axes = panel_grid(1, len(bases), width=4.4, height=3.4)
    rows = []
    for ax, base in zip(axes[0], bases):
        pair = {split_method(ln.algorithm)[1]: ln for ln in lines if split_method(ln.algorithm)[0] == base}
        for schedule, colour in (("hogwild", "#1f77b4"), ("virtual", "#d62728")):
            ln = pair[schedule]
            ax.plot(ln.frame_grid / 1e3, ln.frame_mean, color=colour, lw=1.8,
                    label=f"{'real Hogwild' if schedule == 'hogwild' else 'virtual'} (n={ln.n_runs})")
            if ln.frame_band is not None:
                ax.fill_between(ln.frame_grid / 1e3, *ln.frame_band, color=colour, alpha=0.2, lw=0)
        real, virtual = pair["hogwild"], pair["virtual"]
        lo = np.maximum(real.frame_band[0], virtual.frame_band[0])
        hi = np.minimum(real.frame_band[1], virtual.frame_band[1])
        defined = np.isfinite(lo) & np.isfinite(hi)
        overlap = float(np.mean(lo[defined] <= hi[defined]))
        ax.set_title(f"{algorithm_label(base)}: bands overlap at {overlap:.0%} of points", fontsize=10)
        ax.set_xlabel("training frames (thousands, both workers)")
        ax.set_ylabel("raw game score" if ax is axes[0][0] else "")
        ax.legend(fontsize=8, loc="upper left")
        for schedule, ln in pair.items():
            runs = table.loc[ln.runs]
            finals = runs["final_score"].to_numpy(dtype=float)
            rng = np.random.default_rng(0)
            boot = finals[rng.integers(0, finals.size, (REPS, finals.size))].mean(axis=1)
            flo, fhi = percentile_interval(boot)
            lags = [json.loads((Path(p) / "status.json").read_text()).get("policy_lag") or {} for p in runs["path"]]
            rows.append({"algorithm": base, "schedule": schedule, "runs": len(runs),
                         "final_score_mean": finals.mean(), "final_ci_low": float(flo), "final_ci_high": float(fhi),
                         "band_overlap_share": overlap,
                         **{f"lag_{k}": float(np.mean([lg.get(k, np.nan) for lg in lags]))
                            for k in ("mean", "median", "p95")},
                         "lag_max": float(np.max([lg.get("max", np.nan) for lg in lags])),
                         # the virtual clock's frames/s for virtual runs (scores.frames_per_second)
                         "frames_per_second": float(runs["frames_per_second"].mean())})
    finish(fig, "Virtual against real Hogwild, 2 workers on 2 cores (MinAtar Breakout)",
           ["Mean training-episode score of each schedule's runs (smoothed over 5% of the budget) with 95% bootstrap "
            "bands over runs; overlap: the share of frame-grid points where the two bands overlap."])
    fig.savefig(args.figure, dpi=plt.rcParams["savefig.dpi"])
    out = pd.DataFrame(rows)
    print(out.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    if args.csv:
        out.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
