"""Redraw Fig. 2 of a report (robustness to the learning rate) from its public tables alone: the
report's tables/runs.csv and tables/robustness.csv (docs/REPRODUCTION.md draws
docs/img/minatar2-fig2_robustness.png this way from docs/reproduction/).

    .venv/bin/python docs/reproduction/fig2.py docs/reproduction docs/img/minatar2-fig2_robustness.png
"""

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from harness.report.robustness import plot_robustness
from harness.report.style import ThreadColours, set_theme

tables, out = Path(sys.argv[1]), Path(sys.argv[2])
runs = pd.read_csv(tables / "runs.csv")
robust = pd.read_csv(tables / "robustness.csv")
set_theme()  # the report's
fig = plot_robustness(runs, robust, ThreadColours(runs["threads"]))
fig.savefig(out, dpi=plt.rcParams["savefig.dpi"])
print(f"wrote {out}")
