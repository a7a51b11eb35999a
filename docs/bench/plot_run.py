"""One run's learning curve as the BENCHMARKS evidence figures draw it.

    python docs/bench/plot_run.py RUN_DIR --out docs/img/NAME.png
        [--reference "A3C (feed-forward), same settings=2e6:0.9,4e6:3.7"] [--ymax 50]

Reads the run folder's public files (docs/RUN_FORMAT.md): every training episode's raw score as a dot,
the mean of the last 100 training episodes as a line, each evaluation of a θ snapshot as its mean with a
min-max bar, and the game's random-play score (no-op starts) from the harness's baselines table. An
optional reference adds another run's evaluation means (label=frames:mean,...) for comparison when that
run's folder is not at hand. Episodes above ``--ymax`` are counted in a corner note, not dropped silently.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from harness.report.scores import atari_normaliser  # noqa: E402
from harness.report.style import algorithm_label  # noqa: E402


def parse_reference(text: str) -> tuple[str, list[tuple[float, float]]]:
    label, _, points = text.rpartition("=")
    pairs = [p.split(":") for p in points.split(",") if p]
    return label or "reference", [(float(f), float(m)) for f, m in pairs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--reference", help="label=frames:mean,frames:mean,... (another run's evaluations)")
    parser.add_argument("--ymax", type=float, default=50.0)
    args = parser.parse_args()

    config = json.loads((args.run / "config.json").read_text())
    episodes = pd.read_csv(args.run / "episodes.csv")
    evals = pd.read_csv(args.run / "evals.csv") if (args.run / "evals.csv").exists() else pd.DataFrame()

    fig, ax = plt.subplots(figsize=(9, 5))
    millions = episodes["frames"] / 1e6
    ax.scatter(millions, episodes["return"], s=1, alpha=0.3, color="tab:blue", label="training episode (raw score)")
    ax.plot(millions, episodes["return"].rolling(100, min_periods=1).mean(), color="tab:blue", lw=2,
            label="training, mean of last 100 episodes")
    norm = atari_normaliser(config["game"]) if config.get("is_atari") else None
    if norm is not None:
        ax.axhline(norm.low, color="grey", ls=":", label=f"random play ({norm.low:g}, no-op starts)")
    if not evals.empty:
        ax.errorbar(evals["frames"] / 1e6, evals["mean_return"],
                    yerr=[evals["mean_return"] - evals["min_return"], evals["max_return"] - evals["mean_return"]],
                    fmt="o", color="tab:red", capsize=4, ms=7,
                    label=f"evaluation of θ snapshot (mean, min-max of {int(evals['episodes'].iloc[0])} episodes)")
    if args.reference:
        label, points = parse_reference(args.reference)
        ax.plot([f / 1e6 for f, _ in points], [m for _, m in points], "s--", color="grey", ms=6,
                label=f"{label}: evaluation means")
    above = episodes["return"] > args.ymax
    if above.any():
        ax.text(0.99, 0.97, f"{int(above.sum())} episode(s) above the axis (max {episodes['return'].max():g})",
                transform=ax.transAxes, ha="right", va="top", fontsize=9)
    ax.set_ylim(-1, args.ymax)
    ax.set_xlabel(f"training frames (millions, summed over {config['threads']} workers)")
    ax.set_ylabel(f"{config['game']} score (raw)")
    name = algorithm_label(config["algorithm"])
    ax.set_title(f"{name}, {config['game']}, {config['threads']} workers, lr {config['lr']:g} (annealed to 0), "
                 f"seed {config['seed']}", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)


if __name__ == "__main__":
    main()
