"""Policy lag of real Hogwild runs on this machine (oversubscribed beyond its cores) beside the
virtual schedule's at the same worker counts (docs/BENCHMARKS.md, "Policy lag").

    python docs/bench/policy_lag.py [--seconds 20] [--threads 1,2,4,8,16] [--algo a3c] [--env ENV ...]
        [--out docs/bench/policy-lag.csv]

For each environment (default: MinAtar Breakout and Pong) and worker count: a real run for ``--seconds`` of training,
then a virtual run of the same frames (time model: the shipped defaults). Writes one CSV row per run
(env, threads, schedule, updates, mean, median, p95, max lag, frames, wall seconds) and prints a table.
Run it on a machine with nothing else running: the real runs' lag is the scheduler's doing.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path

from harness.config import make_run_config
from harness.engine import train

ENVS = {"MinAtar/Breakout-v1": ("minatar.gym:register_envs",), "Pong": ()}
MODULES = {env: modules for env, modules in ENVS.items()}


def run(algo: str, env: str, modules: tuple, threads: int, schedule: str, seconds: float | None, frames: int) -> dict:
    engine = {"checkpoint_seconds": 0} | ({"max_seconds": seconds} if seconds else {})
    cfg = make_run_config(algorithm=algo, env=env, threads=threads, seed=1, frames=frames, env_modules=modules,
                          engine=engine, eval={"episodes": 0}, schedule=schedule)
    with tempfile.TemporaryDirectory(prefix="policy-lag-") as tmp:
        result = train(cfg, Path(tmp))
        status = json.loads((Path(tmp) / "status.json").read_text())
    lag = status.get("policy_lag") or {}
    return {"algorithm": algo, "env": env, "threads": threads, "schedule": schedule, "state": result.state,
            "oversubscribed": status["host"]["oversubscribed"], "frames": result.frames,
            "wall_seconds": round(result.wall_seconds, 1), **{k: lag.get(k) for k in ("updates", "mean", "median", "p95", "max")}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--threads", default="1,2,4,8,16")
    ap.add_argument("--algo", default="a3c")
    ap.add_argument("--env", action="append", help="an environment (repeatable); default: MinAtar Breakout and Pong")
    ap.add_argument("--out", default="docs/bench/policy-lag.csv")
    args = ap.parse_args()
    rows = []
    for env in args.env or list(ENVS):
        modules = MODULES.get(env, ())
        for n in [int(t) for t in args.threads.split(",")]:
            real = run(args.algo, env, modules, n, "hogwild", args.seconds, 10**12)
            rows.append(real)
            rows.append(run(args.algo, env, modules, n, "virtual", None, real["frames"]))
            for r in rows[-2:]:
                print(" ".join(f"{k}={v}" for k, v in r.items()), flush=True)
    with open(args.out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
