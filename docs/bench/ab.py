"""Before/after per-worker throughput of two source trees, interleaved (docs/BENCHMARKS.md).

    git archive BASE --prefix=before/ | tar -x -C /tmp
    python docs/bench/ab.py --before /tmp/before --rounds 3 --env CartPole-v1 --algo a3c,one_step_q \\
        --out docs/bench/ab-cartpole.csv

This machine's speed drifts by 2-3x between hours, so two benches an hour apart cannot be compared.
This script runs ``harness bench --threads 1`` alternately with the ``--before`` tree and with this
checkout (the after tree) on the front of ``PYTHONPATH``, ``--rounds`` times each, and reports, per
algorithm and measured quantity, the median of the per-round after/before ratios: each ratio is
taken between two measurements a minute apart. Extra ``harness bench`` options go after ``--``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: what a row of harness bench reports, and whether larger is better
QUANTITIES = {"env_fps": True, "act_fps": True, "learn_ms": False, "bound_fps": True, "train_fps_per_worker": True,
              "train_act_ms": False, "train_learn_ms": False, "train_update_ms": False,
              "bound_share": True, "train_share": True}


def bench(tree: Path, args, extra: list[str], out: Path) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    cmd = [sys.executable, "-m", "harness.cli", "bench", "--algo", args.algo, "--env", args.env, "--threads", "1",
           "--seconds", str(args.seconds), "--out", str(out), *extra]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, cwd=tree)
    return json.loads(out.read_text())["rows"]


def _write_csv(path: Path, rows: list[dict]) -> None:
    import csv

    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=Path, required=True, help="source tree of the baseline (git archive)")
    ap.add_argument("--after", type=Path, default=ROOT)
    ap.add_argument("--env", default="CartPole-v1")
    ap.add_argument("--algo", default="a3c")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, help="CSV of every measurement (round, tree, algorithm, quantities)")
    ap.add_argument("extra", nargs="*", help="options passed to harness bench")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="ab-") as tmp:
        for rnd in range(args.rounds):
            order = [("before", args.before), ("after", args.after)]
            for name, tree in order if rnd % 2 == 0 else order[::-1]:  # alternate who goes first
                for r in bench(tree.resolve(), args, args.extra, Path(tmp) / f"{name}{rnd}.json"):
                    rows.append({"round": rnd, "tree": name, "algorithm": r["algorithm"],
                                 **{q: r[q] for q in QUANTITIES if q in r and not q.endswith("_share")},
                                 # shares of the env's pace in the same invocation: drift common to both cancels
                                 "bound_share": r["bound_fps"] / r["env_fps"],
                                 "train_share": r["train_fps_per_worker"] / r["env_fps"]})
                print(f"round {rnd + 1}/{args.rounds}: {name} done", file=sys.stderr, flush=True)
                if args.out:  # after every bench: a run stopped by a time limit keeps what it measured
                    _write_csv(args.out, rows)
    print(f"{args.env}, 1 worker, {args.rounds} interleaved rounds: median after/before ratio (per-round ratios)")
    for algo in dict.fromkeys(r["algorithm"] for r in rows):
        print(f"  {algo}")
        for q, higher in QUANTITIES.items():
            ratios = []
            for rnd in range(args.rounds):
                b, a = (next(r[q] for r in rows if r["round"] == rnd and r["tree"] == t and r["algorithm"] == algo)
                        for t in ("before", "after"))
                if a and b:
                    ratios.append(a / b if higher else b / a)  # > 1: after is better
            if ratios:
                print(f"    {q:22s} {statistics.median(ratios):5.2f}x  ({', '.join(f'{x:.2f}' for x in ratios)})")
    print("  (ratios > 1: the after tree is faster; times are inverted so that > 1 is better for every row)")


if __name__ == "__main__":
    main()
