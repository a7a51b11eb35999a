"""False-alarm rate of the learning gate, estimated from real runs by resampling.

    python docs/bench/gate_resample.py FOLDER [FOLDER ...] --candidate-seeds 3 5 --draws 400

FOLDER: results folders of the learning smoke suite run unchanged under different suite names (so
different seeds). Per configuration, all their runs are pooled; each draw splits them at random into
a candidate of ``--candidate-seeds`` runs and a baseline of the rest, and runs the gate's comparison
(``harness.gate.compare``, the baseline's reference and frames recomputed from its own runs) as CI
would. The share of draws with a regression estimates how often the gate fails an unchanged
algorithm, per configuration and for the whole suite (any configuration). No run is repeated: each
estimate reuses the same finished runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from harness.gate import REFERENCE_FRACTION, _frames_or_budget, compare, summarise


def split(group: dict, runs: list, cand_idx, base_idx) -> tuple[dict, dict, list]:
    scores = np.asarray(group["final_scores"], dtype=float)
    low = float(group["low"])
    base_scores = scores[base_idx]
    reference = low + REFERENCE_FRACTION * (float(base_scores.mean()) - low)
    base = dict(group, final_scores=list(base_scores), reference=reference,
                frames_to_reference=[_frames_or_budget(runs[i][0], reference, runs[i][1]) for i in base_idx], diverged=0)
    cand = dict(group, final_scores=list(scores[cand_idx]))
    return base, cand, [runs[i] for i in cand_idx]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", type=Path, nargs="+")
    ap.add_argument("--candidate-seeds", type=int, nargs="+", default=[3, 5])
    ap.add_argument("--draws", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    full = summarise(list(args.folders))
    rng = np.random.default_rng(args.seed)
    for k in args.candidate_seeds:
        alarms = {g["algorithm"]: 0 for g in full["groups"]}
        any_alarm = 0
        for _ in range(args.draws):
            bases, cands, runs = [], [], {}
            for g in full["groups"]:
                key = (g["algorithm"], g["game"], g["threads"])
                order = rng.permutation(len(g["final_scores"]))
                b, c, r = split(g, full["_runs"][key], order[:k], order[k:])
                bases.append(b)
                cands.append(c)
                runs[key] = r
            verdicts = compare({"groups": cands, "_runs": runs}, {"groups": bases}, seed=int(rng.integers(1 << 31)), reps=4000)
            for v in verdicts:
                alarms[v.algorithm] += v.verdict != "pass"
            any_alarm += any(v.verdict != "pass" for v in verdicts)
        n = {g["algorithm"]: len(g["final_scores"]) for g in full["groups"]}
        print(f"candidate {k} seeds, baseline the other runs of {n}, {args.draws} draws: suite fails "
              f"{any_alarm / args.draws:.1%}; per configuration "
              + ", ".join(f"{a} {x / args.draws:.1%}" for a, x in alarms.items())
              + f"; 5 of 5 unchanged passes expected {(1 - any_alarm / args.draws) ** 5:.0%}")


if __name__ == "__main__":
    main()
