"""Leave-one-out check of the learning gate on repeated runs of the smoke suite.

    python docs/bench/gate_crossval.py --base BASE_RESULTS --unchanged U1 U2 ... --planted P1 P2 ...

``gate_validation.py`` keeps nothing; this takes results folders of repeated runs of
suites/learning-smoke.yaml (each under its own suite name, so each with its own seeds): ``--base``
(the folder the committed baseline came from), ``--unchanged`` (fresh-seed repetitions of the suite)
and ``--planted`` (the same repetitions with A3C replaced by the planted regression, in the same
order). For each repetition k it writes a baseline from --base and every unchanged repetition but
k, and checks repetition k's unchanged and planted folders against it, as CI would check a change:
the candidate's runs never enter the baseline they are judged by.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.gate import compare, summarise

PLANTED = "tests.fixtures_algorithms:FlippedPolicyGradientA3C"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", type=Path, nargs="+", required=True)
    ap.add_argument("--unchanged", type=Path, nargs="+", required=True)
    ap.add_argument("--planted", type=Path, nargs="+", required=True)
    args = ap.parse_args()
    assert len(args.unchanged) == len(args.planted), "one planted folder per unchanged one"
    for k, (u, p) in enumerate(zip(args.unchanged, args.planted), 1):
        others = [x for j, x in enumerate(args.unchanged) if j != k - 1]
        base = summarise(list(args.base) + others)
        n = {g["algorithm"]: len(g["final_scores"]) for g in base["groups"]}
        for kind, folder in (("unchanged", u), ("planted", p)):
            cand = summarise(folder)
            for g in cand["groups"]:
                g["algorithm"] = "a3c" if g["algorithm"] == PLANTED else g["algorithm"]
            cand["_runs"] = {("a3c" if key[0] == PLANTED else key[0], *key[1:]): v for key, v in cand["_runs"].items()}
            verdicts = compare(cand, base)
            bad = [v for v in verdicts if v.verdict != "pass"]
            print(f"rep {k} {kind:9s} baseline runs {n}: {'FAIL' if bad else 'pass'}  "
                  + "; ".join(f"{v.algorithm} {v.verdict}{' (' + v.regressed + ')' if v.regressed else ''} "
                              f"d {v.difference:+.2f} up {v.upper_bound:+.2f} fails<{v.flags_below:+.2f} "
                              f"t {v.time_difference:+.2f} up {v.time_upper_bound:+.2f}" for v in verdicts))


if __name__ == "__main__":
    main()
