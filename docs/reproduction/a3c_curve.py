"""Draw docs/img/minatar-a3c-breakout.png from a `harness train` run folder (docs/REPRODUCTION.md).

    python docs/reproduction/a3c_curve.py results/minatar-a3c docs/img/minatar-a3c-breakout.png ["TITLE"]
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

RANDOM = 0.379  # random play, 2,000 episodes of MinAtar Breakout (docs/REPRODUCTION.md)

run, out = sys.argv[1], sys.argv[2]
title = sys.argv[3] if len(sys.argv) > 3 else "A3C on MinAtar Breakout, 2 workers, lr 7e-3"
episodes = pd.read_csv(f"{run}/episodes.csv")
evals = pd.read_csv(f"{run}/evals.csv")
smooth = episodes["return"].rolling(200, min_periods=20).mean()
fig, ax = plt.subplots(figsize=(6.4, 3.4), dpi=110)
ax.plot(episodes["frames"] / 1e3, episodes["return"], ".", ms=1, alpha=0.15, color="tab:blue", label="training episodes")
ax.plot(episodes["frames"] / 1e3, smooth, color="tab:blue", lw=2, label="mean of the last 200 episodes")
ax.errorbar(evals["frames"] / 1e3, evals["mean_return"], fmt="s", color="tab:red", label="final model, 10 evaluation episodes")
ax.axhline(RANDOM, color="grey", ls="--", lw=1, label=f"random play ({RANDOM:.2f})")
ax.set(xlabel="training frames (thousands, both workers)", ylabel="game score", ylim=(0, 16),
       title=title)
ax.legend(loc="upper left", fontsize=7, frameon=False)
fig.tight_layout()
fig.savefig(out)
