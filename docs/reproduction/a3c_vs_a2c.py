"""A3C on virtual workers against A2C (A3C on the synchronous schedule), at equal frames and at equal time.

    harness report results/minatar-scaling-laptop
    python docs/reproduction/a3c_vs_a2c.py results/minatar-scaling-laptop --out docs/reproduction/laptop-a3c-vs-a2c.csv

For each game and thread count, from the runs (read with ``harness.results``) and the report's tables
(``report/tables``): the final score of each schedule, the mean over the runs of the learning rates the
report selected for that curve (its top 3, ``lr_selection.csv``) with a 95% percentile-bootstrap
interval over those runs; the frames (equal-frames comparison) and the time (equal-time comparison)
each schedule took to reach the report's reference score (``speedup.csv``). The two clocks differ: a
virtual run's time is the virtual clock (N workers on N free cores), an A2C run's is real time on one
core running its N environments in lockstep; the table says which.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from harness import results

SCHEDULES = {"a3c/virtual": "A3C (virtual workers)", "a3c/sync": "A2C (sync)"}


def bootstrap_ci(values: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if values.size < 2 or np.all(values == values[0]):
        return float("nan"), float("nan")  # no interval that cannot vary
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(reps, values.size), replace=True).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def table(results_dir: Path, report: Path) -> pd.DataFrame:
    res = results.load(results_dir, skip=[report])
    runs = res.runs[res.runs["finished"] & res.runs["algorithm"].isin(list(SCHEDULES))]
    selection = pd.read_csv(report / "tables" / "lr_selection.csv")
    selected = selection[selection["selected"]]
    speed = pd.read_csv(report / "tables" / "speedup.csv")
    rows = []
    for (algorithm, game, threads), grp in runs.groupby(["algorithm", "game", "threads"]):
        lrs = selected[(selected["algorithm"] == algorithm) & (selected["game"] == game)
                       & (selected["threads"] == threads)]["lr"]
        chosen = grp[np.isclose(grp["lr"].to_numpy()[:, None], lrs.to_numpy()[None, :]).any(axis=1)]
        scores = chosen["final_score"].to_numpy(dtype=float)
        lo, hi = bootstrap_ci(scores)
        sp = speed[(speed["algorithm"] == algorithm) & (speed["threads"] == threads) & (speed["game"] == game)]
        sp = sp.iloc[0] if len(sp) else None  # this game's row (the speedup table also has rows over all games)
        rows.append({
            "game": game, "threads": int(threads), "schedule": SCHEDULES[algorithm],
            "learning_rates": " ".join(f"{x:g}" for x in sorted(lrs)), "n_runs": len(chosen),
            "final_score": float(np.mean(scores)) if scores.size else float("nan"), "ci_low": lo, "ci_high": hi,
            "frames_to_reference": float(sp["frames_to_reference"]) if sp is not None else float("nan"),
            "time_to_reference_s": float(sp["time_to_reference_s"]) if sp is not None else float("nan"),
            "clock": "virtual (N free cores)" if algorithm == "a3c/virtual" else "real, one core",
            "reference_score": float(sp["reference_score"]) if sp is not None else float("nan"),
        })
    return pd.DataFrame(rows).sort_values(["game", "threads", "schedule"]).reset_index(drop=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results_dir", type=Path)
    ap.add_argument("--report", type=Path, default=None, help="the report folder (default RESULTS_DIR/report)")
    ap.add_argument("--out", type=Path, default=None, help="CSV to write")
    args = ap.parse_args()
    out = table(args.results_dir, args.report or args.results_dir / "report")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(out.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    if args.out:
        out.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
