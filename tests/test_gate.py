"""The learning-regression gate (harness/gate.py) on synthetic run folders whose final scores are
known: seed noise passes, a drop beyond the tolerance fails, bad input is one line with exit 2."""

from __future__ import annotations

import json
import math
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.gate import GateError, bootstrap_difference, compare, junit, markdown, summarise
from tests.synthetic_runs import write_run

ALGOS = ("a3c", "one_step_q")


def _sweep(root, finals: dict[str, list[float]], state: dict[tuple[str, int], str] | None = None):
    """CartPole runs whose training return is flat at the given final score, per algorithm and seed."""
    for algo, scores in finals.items():
        for seed, score in enumerate(scores):
            write_run(root, algorithm=algo, game="CartPole-v1", seed=seed, frames=100_000, n_episodes=100,
                      returns=lambda f, t, s=score: np.full_like(f, s), state=(state or {}).get((algo, seed), "done"))
    return root


def test_summary_holds_final_scores_and_the_games_normalisation(tmp_path):
    base = summarise(_sweep(tmp_path / "base", {"a3c": [400, 420, 380], "one_step_q": [300, 310, 290]}))
    assert base["kind"] == "harness-gate-baseline" and base["schema_version"] == 1
    groups = {g["algorithm"]: g for g in base["groups"]}
    assert sorted(groups["a3c"]["final_scores"]) == [380, 400, 420]
    assert (groups["a3c"]["low"], groups["a3c"]["high"]) == (0.0, 500.0)  # CartPole-v1's bounds
    assert groups["a3c"]["threads"] == 1 and groups["a3c"]["game"] == "CartPole-v1"


def test_difference_and_bound_by_hand(tmp_path):
    base = summarise(_sweep(tmp_path / "base", {"a3c": [400, 400, 400]}))
    cand = summarise(_sweep(tmp_path / "cand", {"a3c": [300, 300, 300]}))
    (v,) = compare(cand, base, tolerance=0.2, confidence=0.95)
    # no spread: every resample gives the same difference: (300 - 400) / (400 - 0) = -0.25 < -0.2
    assert v.difference == pytest.approx(-0.25) and v.upper_bound == pytest.approx(-0.25)
    assert v.baseline_mean == pytest.approx(1.0) and v.candidate_mean == pytest.approx(0.75)
    assert v.verdict == "regression"
    (v,) = compare(cand, base, tolerance=0.3, confidence=0.95)
    assert v.verdict == "pass"  # losing a quarter of the progress is within a tolerance of 0.3
    # a baseline that learned nothing is scaled by 5% of the range (25 points on CartPole), not by 0
    flat = summarise(_sweep(tmp_path / "flat", {"a3c": [10, 10, 10]}))
    (v,) = compare(cand, flat)
    assert v.difference == pytest.approx((300 - 10) / 25)


def test_seed_noise_passes_and_a_clear_drop_fails(tmp_path):
    rng = np.random.default_rng(1)
    noisy = lambda mean: list(np.clip(rng.normal(mean, 40, size=5), 0, 500))  # noqa: E731 - sd 40 points
    base = summarise(_sweep(tmp_path / "base", {a: noisy(400) for a in ALGOS}))
    same = summarise(_sweep(tmp_path / "same", {a: noisy(400) for a in ALGOS}))
    worse = summarise(_sweep(tmp_path / "worse", {"a3c": noisy(400), "one_step_q": noisy(150)}))
    assert all(v.verdict == "pass" for v in compare(same, base))
    verdicts = {v.algorithm: v for v in compare(worse, base)}
    assert verdicts["a3c"].verdict == "pass" and verdicts["one_step_q"].verdict == "regression"


def test_the_gate_rarely_fails_an_unchanged_algorithm():
    """False alarms: same distribution on both sides, 5 runs each with a spread of 0.25 of the mean
    progress (sd), tolerance 0.25 at 95%: the bound falls below -0.25 far less often than 5% of the time."""
    rng = np.random.default_rng(0)
    alarms = 0
    for _ in range(200):
        b, c = rng.normal(1.0, 0.25, 5), rng.normal(1.0, 0.25, 5)
        upper = np.quantile(bootstrap_difference(b, c, 2000, rng), 0.95)
        alarms += upper < -0.25
    assert alarms <= 10  # binomial(200, 0.05) would give ~10; the tolerance makes it rarer still


def test_a_diverged_candidate_run_counts_as_a_collapse(tmp_path):
    base = summarise(_sweep(tmp_path / "base", {"a3c": [400, 400, 400]}))
    cand = summarise(_sweep(tmp_path / "cand", {"a3c": [400, 400, 400]}, state={("a3c", 2): "diverged"}))
    (g,) = cand["groups"]
    assert g["diverged"] == 1 and sorted(g["final_scores"]) == [0.0, 400, 400]  # CartPole's lower bound
    (v,) = compare(cand, base)
    assert v.candidate_diverged == 1 and v.difference == pytest.approx(-1 / 3)  # a third of the progress lost


def test_missing_configurations_fail_and_outputs_name_them(tmp_path):
    base = summarise(_sweep(tmp_path / "base", {"a3c": [400, 400], "one_step_q": [300, 300]}))
    cand = summarise(_sweep(tmp_path / "cand", {"a3c": [400, 400]}))
    verdicts = compare(cand, base)
    assert {v.algorithm: v.verdict for v in verdicts} == {"a3c": "pass", "one_step_q": "missing"}
    text = markdown(verdicts)
    assert "FAILED" in text and "**missing**" in text and "one_step_q on CartPole-v1, 1 thread" in text
    root = ET.fromstring(junit(verdicts))
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == 2 and root.get("failures") == "1"
    (failure,) = root.findall("./testsuite/testcase/failure")
    assert failure.get("type") == "missing"
    assert math.isnan(json.loads(failure.text)["candidate_mean"])


def test_cli_save_check_and_exit_codes(tmp_path, monkeypatch):
    base_dir = _sweep(tmp_path / "base", {"a3c": [400, 410, 390]})
    cand_dir = _sweep(tmp_path / "cand", {"a3c": [200, 210, 190]})
    runner = CliRunner()
    res = runner.invoke(cli, ["gate", "save", str(base_dir), "--out", str(tmp_path / "baseline.json")])
    assert res.exit_code == 0, res.output
    summary_file = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary_file))
    res = runner.invoke(cli, ["gate", "check", str(base_dir), "--baseline", str(tmp_path / "baseline.json"),
                              "--junit", str(tmp_path / "gate.xml")])
    assert res.exit_code == 0, res.output
    assert "passed" in summary_file.read_text() and ET.parse(tmp_path / "gate.xml").getroot().get("failures") == "0"
    res = runner.invoke(cli, ["gate", "check", str(cand_dir), "--baseline", str(tmp_path / "baseline.json")])
    assert res.exit_code == 1 and "**regression**" in res.output
    for args, fragment in [
        (["gate", "check", str(cand_dir), "--baseline", str(tmp_path / "nope.json")], "no such file"),
        (["gate", "check", str(tmp_path / "empty"), "--baseline", str(tmp_path / "baseline.json")], "no such folder"),
        (["gate", "check", str(cand_dir), "--baseline", str(summary_file)], "not a readable baseline"),
        (["gate", "check", str(cand_dir), "--baseline", str(tmp_path / "baseline.json"), "--tolerance", "2"],
         "--tolerance"),
    ]:
        res = runner.invoke(cli, args)
        assert res.exit_code == 2, (args, res.output)
        assert fragment in res.output and "Traceback" not in res.output


def test_gate_error_is_a_value_error():
    assert issubclass(GateError, ValueError)


def test_as_compares_a_fork_with_the_baselines_algorithm(tmp_path):
    """A fork run under its import path is compared with the baseline's a3c through --as; without
    it the baseline's a3c has no candidate runs and fails as missing."""
    base_dir = _sweep(tmp_path / "base", {"a3c": [400, 410, 390]})
    fork = "my_pkg.algos:MyA3C"
    good = _sweep(tmp_path / "good", {fork: [405, 395, 400]})
    bad = _sweep(tmp_path / "bad", {fork: [100, 110, 90]})
    runner = CliRunner()
    res = runner.invoke(cli, ["gate", "check", str(good), "--baseline", str(base_dir)])
    assert res.exit_code == 1 and "**missing**" in res.output
    res = runner.invoke(cli, ["gate", "check", str(good), "--baseline", str(base_dir), "--as", f"{fork}=a3c"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["gate", "check", str(bad), "--baseline", str(base_dir), "--as", f"{fork}=a3c"])
    assert res.exit_code == 1 and "**regression**" in res.output
    res = runner.invoke(cli, ["gate", "check", str(bad), "--baseline", str(base_dir), "--as", "a3c"])
    assert res.exit_code == 2 and "CANDIDATE=BASELINE" in res.output


def test_the_committed_baseline_is_of_the_learning_smoke_suite():
    """suites/learning-smoke.baseline.json must be rewritten when the suite changes: the same
    configurations, budget and number of seeds (make gate, run by .ci/run, compares against it)."""
    import json
    from pathlib import Path

    from harness.gate import load_baseline
    from harness.suite import load_suite

    root = Path(__file__).resolve().parents[1]
    suite = load_suite(root / "suites" / "learning-smoke.yaml")
    base = load_baseline(root / "suites" / "learning-smoke.baseline.json")
    assert {(g["algorithm"], g["game"], g["threads"]) for g in base["groups"]} == {
        (a, game, t) for a in suite.algorithms for game in suite.games for t in suite.threads}
    for g in base["groups"]:
        # written from the suite's own seeds and repetitions of it under other names (more seeds)
        assert g["frames"] == suite.frames and len(g["final_scores"]) >= len(suite.seeds) * len(suite.learning_rates)
        assert g["diverged"] == 0 and min(g["final_scores"]) > 50  # every method had learned: random play is 22
        assert len(g["frames_to_reference"]) == len(g["final_scores"]) and max(g["frames_to_reference"]) < suite.frames
    assert json.loads((root / "suites" / "learning-smoke.baseline.json").read_text())["kind"] == "harness-gate-baseline"


def test_frames_to_reference_by_hand():
    from harness.gate import frames_to_reference

    f = np.array([10, 20, 30, 40, 50, 60])
    r = np.array([0, 10, 20, 30, 40, 50])
    # window 20: at 20 the window (0, 20] holds 0 and 10 (mean 5); at 40, (20, 40] holds 20, 30 (25)
    assert frames_to_reference(f, r, 25.0, 20.0) == 40.0
    assert frames_to_reference(f, r, 5.0, 20.0) == 20.0  # frames below the window's length never count
    assert frames_to_reference(f[::-1], r[::-1], 25.0, 20.0) == 40.0  # order of the rows does not matter
    assert frames_to_reference(f, r, 46.0, 20.0) == float("inf")


def _ramp(root, algo, reach_at: dict[int, float], final=400.0):
    """CartPole runs whose training return climbs linearly from 0 to ``final`` at frame reach_at[seed]."""
    for seed, at in reach_at.items():
        write_run(root, algorithm=algo, game="CartPole-v1", seed=seed, frames=100_000, n_episodes=400,
                  returns=lambda f, t, at=at: np.minimum(final, final * f / at))
    return root


def test_time_to_reference_catches_slower_learning_with_the_same_final_score(tmp_path):
    """Both sides end at 400; the candidate needs twice the frames to get there: the final score
    passes, the time to the reference (half the baseline's progress, 200) fails."""
    base = summarise(_ramp(tmp_path / "base", "a3c", {0: 30_000, 1: 32_000, 2: 28_000}))
    (g,) = base["groups"]
    assert g["reference"] == pytest.approx(200.0)
    # the 10%-of-budget window (10k frames) mean crosses 200 about 5k frames after the curve itself
    assert all(15_000 <= t <= 22_000 for t in g["frames_to_reference"])
    slow = summarise(_ramp(tmp_path / "slow", "a3c", {0: 60_000, 1: 64_000, 2: 56_000}))
    (v,) = compare(slow, base)
    assert v.difference == pytest.approx(0.0, abs=0.01) and v.upper_bound > -0.25  # the final score is fine
    assert v.verdict == "regression" and v.regressed == "time to reference"
    assert v.time_difference < -0.5 and v.candidate_frames > 1.5 * v.baseline_frames
    (v,) = compare(summarise(_ramp(tmp_path / "same", "a3c", {0: 31_000, 1: 29_000, 2: 30_000})), base)
    assert v.verdict == "pass" and abs(v.time_difference) < 0.1
    # 1.6x the frames to the ramp top (1.45x to the reference): within the default time tolerance (0.5, seeds vary more in time than in score),
    # a regression at 0.25
    later = summarise(_ramp(tmp_path / "later", "a3c", {0: 48_000, 1: 51_200, 2: 44_800}))
    assert compare(later, base)[0].verdict == "pass"
    assert compare(later, base, time_tolerance=0.25)[0].regressed == "time to reference"
    with pytest.raises(GateError):
        compare(later, base, time_tolerance=-1)
    never = summarise(_sweep(tmp_path / "never", {"a3c": [100, 100, 100]}))  # never reaches 200: at its budget
    (v,) = compare(never, base)
    assert v.candidate_frames == 100_000 and v.regressed == "final score and time to reference"


def test_saved_baselines_carry_the_reference_and_older_ones_skip_the_time_check(tmp_path):
    import json

    base_dir = _ramp(tmp_path / "base", "a3c", {0: 30_000, 1: 32_000, 2: 28_000})
    res = CliRunner().invoke(cli, ["gate", "save", str(base_dir), "--out", str(tmp_path / "b.json")])
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "b.json").read_text())
    assert "_runs" not in saved and len(saved["groups"][0]["frames_to_reference"]) == 3
    for g in saved["groups"]:  # a baseline from before the time check
        del g["reference"], g["frames_to_reference"]
    (tmp_path / "old.json").write_text(json.dumps(saved))
    slow = _ramp(tmp_path / "slow", "a3c", {0: 60_000, 1: 64_000, 2: 56_000})
    res = CliRunner().invoke(cli, ["gate", "check", str(slow), "--baseline", str(tmp_path / "old.json")])
    assert res.exit_code == 0 and "| – → – |" in res.output  # no time check without the baseline's frames
    res = CliRunner().invoke(cli, ["gate", "check", str(slow), "--baseline", str(tmp_path / "b.json")])
    assert res.exit_code == 1 and "time to reference" in res.output


def test_three_agreeing_candidate_runs_are_judged_at_the_methods_spread():
    """A baseline of 15 seeds spread widely (a method whose smoke-budget outcome varies a lot) and 3
    candidate runs that happen to agree at -0.5: drawing both sides' noise from all the runs, the
    gate cannot be sure the drop exceeds 0.25 and passes; the same 3 runs against 15 equally tight
    baseline runs fail. A planted collapse fails against the wide baseline too."""
    rng = np.random.default_rng(0)
    wide = np.linspace(0.2, 1.8, 15)  # mean 1, sd 0.5
    tight = np.linspace(0.95, 1.05, 15)
    cand = np.array([0.49, 0.5, 0.51])
    assert np.quantile(bootstrap_difference(wide, cand, 20_000, rng), 0.95) > -0.25
    assert np.quantile(bootstrap_difference(tight, cand, 20_000, rng), 0.95) < -0.25
    collapse = np.array([0.01, 0.02, 0.02])
    assert np.quantile(bootstrap_difference(wide, collapse, 20_000, rng), 0.95) < -0.25
    # by hand: no spread anywhere, the distribution is the observed difference itself
    assert np.allclose(bootstrap_difference(np.ones(4), np.full(3, 0.5), 100, rng), -0.5)
    # the pooled residuals' variance is unbiased (N / (N - 2) for the two means estimated): on average
    # the bootstrap's spread is that of a difference of two 3-run means of unit variance, 2/3
    spreads = []
    for _ in range(500):
        b, c = rng.normal(0, 1, 3), rng.normal(0, 1, 3)
        spreads.append((bootstrap_difference(b, c, 2000, rng) - (c.mean() - b.mean())).var())
    assert 0.88 < np.mean(spreads) / (2 / 3) < 1.12


def test_a_baseline_from_several_folders_merges_their_runs(tmp_path):
    import json

    a = _sweep(tmp_path / "a", {"a3c": [400, 410, 390]})
    b = _sweep(tmp_path / "b", {"a3c": [300, 350, 380]})
    res = CliRunner().invoke(cli, ["gate", "save", str(a), str(b), "--out", str(tmp_path / "b.json")])
    assert res.exit_code == 0, res.output
    (g,) = json.loads((tmp_path / "b.json").read_text())["groups"]
    assert sorted(g["final_scores"]) == [300, 350, 380, 390, 400, 410]
    res = CliRunner().invoke(cli, ["gate", "save", str(a), str(tmp_path / "nope"), "--out", str(tmp_path / "c.json")])
    assert res.exit_code == 2 and "no such folder" in res.output
