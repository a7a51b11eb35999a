"""Share of a short-run sweep's core time that goes to training (docs/BENCHMARKS.md).

    python docs/bench/startup_share.py [SUITE] [--cores 2]

Runs ``harness sweep SUITE`` into a fresh temporary results folder and prints, from the run folders:
the sweep's wall clock x cores (what the sweep cost), the training core-seconds (each run's wall
seconds after its start-up, x threads), their ratio, and each run's start-up (status.json
``startup_seconds``: from the supervisor's start to the first worker update; the runner's own
process start and imports come before it and count as overhead in the ratio).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("suite", nargs="?", default=str(HERE / "startup-share.yaml"))
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="startup-share-") as tmp:
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "harness.cli", "sweep", args.suite, "--results-dir", tmp,
                        "--cores", str(args.cores)], check=True, stdout=subprocess.DEVNULL)
        wall = time.monotonic() - t0
        training, startups, methods = 0.0, [], set()
        for status_path in sorted(Path(tmp).glob("*/*/status.json")):
            st = json.loads(status_path.read_text())
            cfg = json.loads((status_path.parent / "config.json").read_text())
            training += (st["wall_seconds"] - st["startup_seconds"]) * cfg["threads"]
            startups.append(st["startup_seconds"])
            methods.add(st.get("start_method", "spawn"))
    core_seconds = wall * args.cores
    print(f"runs {len(startups)}, workers started by {', '.join(sorted(methods))}")
    print(f"sweep wall {wall:.1f} s x {args.cores} cores = {core_seconds:.1f} core-s; training {training:.1f} core-s "
          f"= {100 * training / core_seconds:.1f}%")
    print("start-up per run (s): " + ", ".join(f"{s:.2f}" for s in startups)
          + f"; mean {sum(startups) / len(startups):.2f}")


if __name__ == "__main__":
    main()
