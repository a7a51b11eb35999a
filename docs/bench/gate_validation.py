"""Does the learning gate pass an unchanged algorithm and catch a planted regression?

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

``--reuse``: the planted repetition copies the unchanged repetition's runs of the other methods
instead of running them again. With 1 thread a run is a deterministic function of its seed, and
both repetitions draw the same seeds (the same suite name), so the copies are the runs the planted
sweep would make (the first validation, which ran both in full, gave identical verdicts for them);
the planted sweep then runs the planted algorithm's runs only, and its seconds count those alone.
``--first`` numbers the repetitions from there (fresh seeds for a new validation).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import shutil
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


def one(kind: str, rep: int, tmp: Path, reuse: bool = False) -> dict:
    suite = yaml.safe_load(SUITE.read_text())
    suite["name"] = f"learning-smoke-rep{rep}"
    extra = []
    if kind == "planted":
        suite["algorithms"] = [PLANTED if a == "a3c" else a for a in suite["algorithms"]]
        extra = ["--as", f"{PLANTED}=a3c"]
    path = tmp / f"{kind}-{rep}.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    if kind == "planted" and reuse:
        done = tmp / "unchanged" / suite["name"]
        for run in done.iterdir():
            if run.is_dir() and not run.name.startswith("a3c-"):
                shutil.copytree(run, tmp / kind / suite["name"] / run.name)
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
    ap.add_argument("--first", type=int, default=1)
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it (default: a temporary one)")
    args = ap.parse_args()
    rows = []
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    with (contextlib.nullcontext(str(args.keep)) if args.keep else tempfile.TemporaryDirectory(prefix="gate-validation-")) as tmp:
        for rep in range(args.first, args.first + args.reps):
            for kind in args.kinds.split(","):  # interleaved, so drift in the machine's speed hits both alike
                rows.append(one(kind, rep, Path(tmp), args.reuse))
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
