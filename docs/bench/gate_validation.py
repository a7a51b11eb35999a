"""Does the learning gate pass an unchanged algorithm and catch a planted regression? (issue 13)

    python docs/bench/gate_validation.py --reps 5 --out docs/bench/gate-validation.csv

Each repetition runs the learning smoke suite (suites/learning-smoke.yaml) from scratch, as CI does,
and checks it with ``harness gate check`` against the committed baseline
(suites/learning-smoke.baseline.json):

- *unchanged*: the suite as committed, under another suite name (``learning-smoke-repN``), so every
  run draws new seeds (run seeds hash the suite name): the candidate differs from the baseline by
  seed noise alone, the hardest case for a gate that must not flake. (Under the committed name, a
  1-thread run on the baseline's machine would repeat the baseline exactly.)
- *planted*: the same, with A3C replaced by ``tests.fixtures_algorithms:FlippedPolicyGradientA3C``
  (the policy-gradient term's sign flipped), compared with the baseline's a3c through ``--as``.

It prints and writes one row per repetition: the kind, the sweep's and the gate's wall-clock seconds,
the gate's exit code and its verdict per configuration.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "suites" / "learning-smoke.yaml"
BASELINE = ROOT / "suites" / "learning-smoke.baseline.json"
PLANTED = "tests.fixtures_algorithms:FlippedPolicyGradientA3C"


def harness(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, capture_output=True, text=True)


def one(kind: str, rep: int, tmp: Path) -> dict:
    suite = yaml.safe_load(SUITE.read_text())
    suite["name"] = f"learning-smoke-rep{rep}"
    extra = []
    if kind == "planted":
        suite["algorithms"] = [PLANTED if a == "a3c" else a for a in suite["algorithms"]]
        extra = ["--as", f"{PLANTED}=a3c"]
    path = tmp / f"{kind}-{rep}.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    t0 = time.monotonic()
    sweep = harness("sweep", str(path), "--results-dir", str(tmp / kind))
    t1 = time.monotonic()
    gate = harness("gate", "check", str(tmp / kind / suite["name"]), "--baseline", str(BASELINE),
                   "--json", str(tmp / f"{kind}-{rep}.json"), *extra)
    t2 = time.monotonic()
    if sweep.returncode != 0:
        print(sweep.stdout[-2000:], sweep.stderr[-2000:], file=sys.stderr)
    verdicts = json.loads((tmp / f"{kind}-{rep}.json").read_text()) if gate.returncode in (0, 1) else []
    return {"kind": kind, "rep": rep, "sweep_seconds": round(t1 - t0, 1), "gate_seconds": round(t2 - t1, 1),
            "sweep_exit": sweep.returncode, "gate_exit": gate.returncode,
            "verdicts": "; ".join(f"{v['algorithm']}: {v['verdict']} (d {v['difference']:+.2f}, upper {v['upper_bound']:+.2f})"
                                  for v in verdicts)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--kinds", default="unchanged,planted")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="gate-validation-") as tmp:
        for rep in range(1, args.reps + 1):
            for kind in args.kinds.split(","):  # interleaved, so drift in the machine's speed hits both alike
                rows.append(one(kind, rep, Path(tmp)))
                print(json.dumps(rows[-1]), flush=True)
                if args.out:
                    with open(args.out, "w", newline="") as f:
                        w = csv.DictWriter(f, fieldnames=list(rows[0]))
                        w.writeheader()
                        w.writerows(rows)
    for kind in args.kinds.split(","):
        mine = [r for r in rows if r["kind"] == kind]
        want = 0 if kind == "unchanged" else 1
        print(f"{kind}: gate exit {want} in {sum(r['gate_exit'] == want for r in mine)} of {len(mine)}; "
              f"sweep {min(r['sweep_seconds'] for r in mine):.0f}-{max(r['sweep_seconds'] for r in mine):.0f} s, "
              f"gate {max(r['gate_seconds'] for r in mine):.0f} s at most")


if __name__ == "__main__":
    main()
