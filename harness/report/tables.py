"""Writing tables as CSV (raw numbers) and Markdown (formatted for reading)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from harness.report.style import algorithm_label


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else ""
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return ""
        if math.isinf(v):
            return "\u221e" if v > 0 else "-\u221e"
        if v == 0:
            return "0"
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-2):
            return f"{v:.{digits}g}"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        return f"{v:.2f}" if abs(v) >= 1 else f"{v:.{digits}f}"
    return str(value)


def markdown(df: pd.DataFrame) -> str:
    if df.empty:
        return "_(empty)_\n"
    cols = [str(c) for c in df.columns]
    cells = [[fmt(v).replace("|", "\\|") for v in row] for row in df.itertuples(index=False)]
    head = "| " + " | ".join(cols) + " |"
    rule = "|" + "|".join("---" for _ in cols) + "|"
    body = ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join([head, rule, *body]) + "\n"


def write_table(df: pd.DataFrame, directory: Path, name: str, readable: pd.DataFrame | None = None) -> dict[str, Path]:
    """``name.csv`` holds ``df`` unformatted; ``name.md`` the ``readable`` version (default ``df``)."""
    directory.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = directory / f"{name}.csv", directory / f"{name}.md"
    df.to_csv(csv_path, index=False)
    md_path.write_text(markdown(readable if readable is not None else df), encoding="utf-8")
    return {"csv": csv_path, "md": md_path}


def with_ci(value, lo, hi) -> str:
    if value is None or not np.isfinite(value):
        return ""
    if lo is None or not (np.isfinite(lo) or np.isinf(lo)) or hi is None or np.isnan(hi):
        return fmt(value)
    return f"{fmt(value)} [{fmt(lo)}, {fmt(hi)}]"


def game_label(r) -> str:
    """A speedup row's game, or what its mean averages."""
    games = ", ".join(str(r["games"]).split())
    if r["game"] == "mean":
        return f"mean of {int(r['n_games'])} ({games})"
    if r["game"] == "mean_defined":
        return f"mean of the cells reached: {int(r['n_games'])} ({games})"
    return str(r["game"])


def speedup_matrix(speedup: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Games (and the two means) by thread count, per algorithm: the speedups as numbers (NaN where a
    cell has none), and a readable version that names what each missing cell is."""
    if speedup.empty:
        return speedup, speedup
    numbers, readable = [], []
    for (alg, game), g in speedup.groupby(["algorithm", "game"], sort=False):
        first = g.iloc[0]
        num = {"algorithm": alg, "game": game}
        text = {"algorithm": algorithm_label(alg), "game": game_label(first)}
        for _, r in g.iterrows():
            col = f"{int(r['threads'])} threads" if int(r["threads"]) != 1 else "1 thread"
            reached = r["status"] == "reached"
            num[col] = r["speedup"] if reached else np.nan
            text[col] = with_ci(r["speedup"], r["speedup_ci_low"], r["speedup_ci_high"]) if reached else f"— ({r['status']})"
        numbers.append(num)
        readable.append(text)
    threads = sorted({int(t) for t in speedup["threads"]})
    cols = [f"{t} threads" if t != 1 else "1 thread" for t in threads]
    num_df = pd.DataFrame(numbers).reindex(columns=["algorithm", "game", *cols])
    text_df = pd.DataFrame(readable).reindex(columns=["algorithm", "game", *cols]).fillna("— (no runs)")
    return num_df, text_df


def readable_speedup(speedup: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, r in speedup.iterrows():
        reached = r["status"] == "reached"
        rows.append({
            "algorithm": algorithm_label(r["algorithm"]),
            "game": game_label(r),
            "threads": int(r["threads"]),
            "speedup [95% CI]": with_ci(r["speedup"], r["speedup_ci_low"], r["speedup_ci_high"]) if reached else r["status"],
            "efficiency": fmt(r["efficiency"]) if reached else "",
            "paper (Table 2)": fmt(r["paper_speedup"]),
            "data efficiency [95% CI]": (with_ci(r["data_efficiency"], r["data_efficiency_ci_low"],
                                                 r["data_efficiency_ci_high"]) if reached else ""),
            "throughput speedup": fmt(r["throughput_speedup"]),
            "reference score": fmt(r["reference_score"]),
            "oversubscribed": "yes" if r["oversubscribed"] else "",
            "runs": int(r["n_runs"]) if np.isfinite(r["n_runs"]) else "",
        })
    return pd.DataFrame(rows)


def readable_aggregates(agg: pd.DataFrame) -> pd.DataFrame:
    if agg.empty:
        return agg
    wide = []
    for (alg, threads), g in agg.groupby(["algorithm", "threads"], sort=False):
        row = {"algorithm": algorithm_label(alg), "threads": int(threads)}
        for _, r in g.iterrows():
            row[str(r["metric"]).replace("_", " ") + " [95% CI]"] = with_ci(r["value"], r["ci_low"], r["ci_high"])
        row["runs"] = int(g["n_runs"].iloc[0])
        row["games"] = int(g["n_games"].iloc[0])
        if "ci_note" in g and agg["ci_note"].astype(bool).any():
            row["note"] = g["ci_note"].iloc[0]
        wide.append(row)
    return pd.DataFrame(wide)
