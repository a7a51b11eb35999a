"""How long ``harness report`` takes over 10,000 runs, from the command line.

    python docs/bench/report_scale.py --runs /tmp/big --tree after=. --tree before=/tmp/before --rounds 2

Writes the synthetic sweep of tests/test_report_benchmark.py (4 methods × 5 games × 5 thread
counts × 10 learning rates × 10 seeds = 10,000 runs of 200 episodes) under ``--runs`` unless it is
there already, then times ``python -m harness.cli report RUNS --out NEW_FOLDER`` for each source
tree (``name=path``: a checkout, e.g. from ``git archive``; ``"name=path --no-pdf"`` adds options), interleaved round by round so that the
machine's drift hits every tree alike. Each report is cold (a new output folder: no bootstrap
cache); the files are in the OS page cache after the first report. Prints one line per report and
the best and median time per tree; ``--out FILE`` writes them as CSV.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def write_runs(root: Path) -> Path:
    big = root / "results" / "big"
    if big.is_dir() and sum(1 for _ in big.iterdir()) >= 10_000:
        return big
    sys.path.insert(0, str(ROOT))
    from tests.synthetic_runs import write_sweep

    paths = write_sweep(big, algorithms=("one_step_q", "one_step_sarsa", "n_step_q", "a3c"),
                        games=("Pong", "Breakout", "BeamRider", "Qbert", "SpaceInvaders"),
                        threads=(1, 2, 4, 8, 16), lrs=tuple(1e-4 * 1.6 ** i for i in range(10)),
                        seeds=tuple(range(10)), frames=40_000_000, n_episodes=200, diverge_lr=None)
    assert len(paths) == 10_000
    return big


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=Path, required=True)
    ap.add_argument("--tree", action="append", required=True, help="name=path of a source tree")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    big = write_runs(args.runs)
    trees = [t.split("=", 1) for t in args.tree]  # name, "path [options]"
    rows = []
    with tempfile.TemporaryDirectory(prefix="report-scale-") as tmp:
        for rnd in range(1, args.rounds + 1):
            for name, spec in trees:
                path, *extra = spec.split()
                out = Path(tmp) / f"{name}-{rnd}"
                env = dict(os.environ, PYTHONPATH=str(Path(path).resolve()))
                t0 = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "harness.cli", "report", str(big), "--out", str(out), *extra],
                                      cwd=path, env=env, capture_output=True, text=True)
                wall = time.perf_counter() - t0
                if proc.returncode != 0:
                    sys.exit(f"{name}: harness report failed: {proc.stderr[-1000:]}")
                rows.append({"tree": name, "round": rnd, "seconds": round(wall, 1)})
                print(f"round {rnd} {name}: {wall:.1f} s", flush=True)
    for name, _ in trees:
        t = [r["seconds"] for r in rows if r["tree"] == name]
        print(f"{name}: best {min(t):.1f} s, median {statistics.median(t):.1f} s over {len(t)}")
    if args.out:
        with open(args.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
