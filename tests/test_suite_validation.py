"""Suite files: malformed suites rejected with their key path, grid expansion, stable ids, sampling."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from harness.cli import cli
from harness.suite import SuiteError, format_lr, load_suite, parse_yaml, run_id, sample_loguniform, validate

ROOT = Path(__file__).resolve().parents[1]
SUITES = ROOT / "suites"

BASE = {
    "name": "t",
    "games": ["CartPole-v1", "Pong"],
    "algorithms": ["a3c", "one_step_q"],
    "threads": [1, 2],
    "learning_rates": [1.0e-3, 7.0e-4],
    "seeds": 2,
    "frames": 10000,
}


def _with(**changes):
    d = json.loads(json.dumps(BASE))
    for k, v in changes.items():
        if v is _DROP:
            d.pop(k)
        else:
            d[k] = v
    return yaml.safe_dump(d, sort_keys=False)


_DROP = object()

# (id, YAML text, key path that the message must name, another fragment it must contain)
MALFORMED = [
    ("unknown-key", _with(gmaes=["Pong"]), "gmaes", "did you mean games"),
    ("missing-frames", _with(frames=_DROP), "frames", "missing"),
    ("misspelt-algorithm", _with(algorithms=["a3c", "one_step_qq"]), "algorithms[1]", "did you mean one_step_q"),
    ("misspelt-game", _with(games=["CartPole-v1", "Pongg"]), "games[1]", "did you mean Pong"),
    ("threads-zero", _with(threads=[1, 0]), "threads[1]", "allowed"),
    ("threads-word", _with(threads=["two"]), "threads[0]", "whole number"),
    ("threads-bool", _with(threads=[True]), "threads[0]", "whole number"),
    ("threads-twice", _with(threads=[2, 2]), "threads[1]", "twice"),
    ("threads-not-list", _with(threads=4), "threads", "list"),
    ("threads-empty", _with(threads=[]), "threads", "is empty"),
    ("seeds-twice", _with(seeds=[0, 3, 3]), "seeds[2]", "3 is listed twice"),
    ("lr-twice", _with(learning_rates=[1e-3, 7e-4, 1e-3]), "learning_rates[2]", "0.001 is listed twice"),
    ("lr-empty", _with(learning_rates=[]), "learning_rates", "is empty"),
    ("optimizer-twice", _with(optimizers=["rmsprop", "rmsprop"]), "optimizers[1]", "'rmsprop' is listed twice"),
    ("lr-negative", _with(learning_rates=[1e-3, -1e-3]), "learning_rates[1]", "greater than 0"),
    ("lr-low-above-high", _with(learning_rates={"loguniform": [1e-2, 1e-4], "count": 5}), "learning_rates.loguniform", "low must be < high"),
    ("lr-one-bound", _with(learning_rates={"loguniform": [1e-2], "count": 5}), "learning_rates.loguniform", "too few"),
    ("lr-misspelt-count", _with(learning_rates={"loguniform": [1e-4, 1e-2], "cont": 5}), "learning_rates.cont", "did you mean count"),
    ("lr-count-zero", _with(learning_rates={"loguniform": [1e-4, 1e-2], "count": 0}), "learning_rates.count", "allowed"),
    ("seeds-zero", _with(seeds=0), "seeds", "allowed"),
    ("seeds-negative", _with(seeds=[0, -1]), "seeds[1]", "allowed"),
    ("seeds-negative-range", _with(seeds=[0, -1]), "seeds[1]", "-1 is outside the seed range: use a whole number from 0 to 4294967295"),
    ("seeds-2**64", _with(seeds=[0, 2**64]), "seeds[1]", "18446744073709551616 is outside the seed range: use a whole number from 0 to 4294967295"),
    ("seeds-2**32", _with(seeds=[2**32]), "seeds[0]", "4294967296 is outside the seed range"),
    ("seeds-2**53+1", _with(seeds=[2**53 + 1]), "seeds[0]", "9007199254740993 is outside"),  # as written, not rounded
    ("seeds-huge", _with(seeds=[10**400]), "seeds[0]", "(401 digits) is outside the seed range"),
    ("seeds-count-past-range", _with(seeds=2**32 + 1), "seeds", "goes past the largest seed, 4294967295"),
    ("seeds-count-2**64", _with(seeds=2**64), "seeds", "goes past the largest seed"),
    ("lr-sampling-seed-negative", _with(learning_rates={"loguniform": [1e-4, 1e-2], "count": 2, "seed": -1}),
     "learning_rates.seed", "-1 is outside the seed range"),
    ("frames-word", _with(frames="lots"), "frames", "whole number"),
    ("frames-fraction", _with(frames=1.5), "frames", "whole number"),
    ("optimizer-misspelt", _with(optimizers=["shared_rmsprop", "rmsprops"]), "optimizers[1]", "did you mean rmsprop"),
    ("hp-unknown", _with(hyperparameters={"entropy_betta": 0.1}), "hyperparameters.entropy_betta", "did you mean entropy_beta"),
    ("hp-type", _with(hyperparameters={"gamma": "high"}), "hyperparameters.gamma", "number"),
    ("algo-hp-unknown", _with(algorithm_hyperparameters={"a3c": {"tmax": 5}}), "algorithm_hyperparameters.a3c.tmax", "did you mean t_max"),
    ("algo-hp-not-in-suite", _with(algorithm_hyperparameters={"n_step_q": {"t_max": 5}}), "algorithm_hyperparameters.n_step_q", "not one of the suite's algorithms"),
    ("env-setting-unknown", _with(env_settings={"noop_maxx": 3}), "env_settings.noop_maxx", "did you mean noop_max"),
    ("engine-type", _with(engine={"checkpoint_seconds": "soon"}), "engine.checkpoint_seconds", "number"),
    ("eval-type", _with(eval={"episodes": 1.5}), "eval.episodes", "whole number"),
    ("reference-unknown-game", _with(reference_scores={"Pongg": 3}), "reference_scores.Pongg", "did you mean Pong"),
    ("reference-not-number", _with(reference_scores={"Pong": "good"}), "reference_scores.Pong", "number"),
    ("name-with-slash", _with(name="my suite/x"), "name", "allowed"),
    ("games-empty", _with(games=[]), "games", "allowed"),
    ("env-module-missing", _with(env_modules=["no_such_module_xyz"]), "env_modules[0]", "cannot be imported"),
    ("import-path-missing", _with(algorithms=["no_such_pkg.mod:Algo"]), "algorithms[0]", "cannot import"),
    ("top-level-list", "- name: t\n", "(top level)", "expected a mapping"),
    ("empty-file", "", "(top level)", "empty file"),
    ("yaml-syntax", "name: t\ngames: [Pong\n", "line", "invalid YAML"),
    ("yaml-object-tag", "name: !!python/object/apply:os.system [echo hi]\n", "line 1", "not allowed"),
    ("duplicate-key", _with() + "frames: 20\n", "line", "duplicate key 'frames'"),
]


@pytest.mark.parametrize("case,text,path,fragment", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_suite_rejected_with_key_path(tmp_path, case, text, path, fragment):
    f = tmp_path / f"{case}.yaml"
    f.write_text(text)
    with pytest.raises(SuiteError) as info:
        load_suite(f)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{f}: "), msg
    assert path in msg, msg
    assert fragment in msg, msg
    # the same through the command line: one line, exit code 2, no traceback
    res = CliRunner().invoke(cli, ["sweep", str(f), "--dry-run", "--results-dir", str(tmp_path / "r")])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and path in res.output
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("change,loc,kind", [
    ({"threads": [2, 2]}, ("threads",), "listed_twice"),
    ({"seeds": [1, 1]}, ("seeds", "#list"), "listed_twice"),
    ({"algorithms": ["a3c", "a3c"]}, ("algorithms",), "listed_twice"),
    ({"optimizers": ["rmsprop", "adam"]}, ("optimizers", 1), "value_error"),
    ({"learning_rates": {"loguniform": [1e-2, 1e-4], "count": 2}}, ("learning_rates", "#mapping", "loguniform"), "value_error"),
    ({"learning_rates": []}, ("learning_rates", "#list"), "too_short"),
])
def test_the_model_carries_the_files_own_rules(change, loc, kind):
    """Rules that need nothing installed live in SuiteModel itself, not in validate's later checks."""
    from pydantic import ValidationError

    from harness.suite import SuiteModel

    SuiteModel.model_validate(BASE)
    with pytest.raises(ValidationError) as info:
        SuiteModel.model_validate({**BASE, **change})
    (err,) = info.value.errors()
    assert (tuple(err["loc"]), err["type"]) == (loc, kind), err


def test_malformed_suite_through_the_entry_point(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(_with(threads=[1, 0]))
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "sweep", str(f), "--dry-run"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "threads[1]" in lines[0], proc.stderr


def test_missing_suite_file(tmp_path):
    res = CliRunner().invoke(cli, ["sweep", str(tmp_path / "nope.yaml"), "--dry-run"])
    assert res.exit_code == 2 and "cannot read" in res.output


# ------------------------------------------------------------------------------------------------
def test_grid_expansion_counts_and_ids(tmp_path):
    s = validate(parse_yaml(_with()))
    runs = s.runs()
    assert s.n_runs == len(runs) == 2 * 2 * 2 * 2 * 2
    ids = [r.run_id for r in runs]
    assert len(set(ids)) == len(ids)
    assert "a3c-Pong-t02-lr7e-04-s1" in ids
    assert "one_step_q-CartPole-v1-t01-lr1e-03-s0" in ids
    for r in runs:
        assert re.fullmatch(r"[a-z_0-9]+-[A-Za-z0-9_.-]+-t\d\d-lr\d(\.\d+)?e-\d\d-s\d+", r.run_id), r.run_id
        c = r.config
        assert (c.suite, c.run_id) == ("t", r.run_id)
        assert r.run_id == run_id(c.algorithm, c.env_spec.game, c.threads, format_lr(c.lr), c.seed)
    # stable: the same suite gives the same ids, in the same order, with the same configs
    again = validate(parse_yaml(_with()))
    assert [r.run_id for r in again.runs()] == ids
    assert [r.config.to_dict() for r in again.runs()] == [r.config.to_dict() for r in runs]
    # adding a value to an axis keeps every existing id
    more = validate(parse_yaml(_with(threads=[1, 2, 4])))
    assert set(ids) < {r.run_id for r in more.runs()}


def test_optimizer_axis_and_overrides():
    s = validate(parse_yaml(_with(optimizers=["shared_rmsprop", "momentum_sgd"], seeds=[3],
                                  hyperparameters={"gamma": 0.9, "entropy_beta": 0.02},
                                  algorithm_hyperparameters={"one_step_q": {"t_max": 7}},
                                  env_settings={"noop_max": 10}, engine={"checkpoint_seconds": 5},
                                  eval={"episodes": 3})))
    runs = s.runs()
    assert len(runs) == 2 * 2 * 2 * 2 * 1 * 2
    assert all(r.run_id.endswith(("-shared_rmsprop", "-momentum_sgd")) for r in runs)
    a3c = next(r.config for r in runs if r.config.algorithm == "a3c")
    q = next(r.config for r in runs if r.config.algorithm == "one_step_q")
    assert a3c.hyperparameters["gamma"] == 0.9 and a3c.hyperparameters["entropy_beta"] == 0.02
    assert q.hyperparameters["gamma"] == 0.9 and q.hyperparameters["t_max"] == 7 and "entropy_beta" not in q.hyperparameters
    assert a3c.env_settings.noop_max == 10 and a3c.engine.checkpoint_seconds == 5 and a3c.eval.episodes == 3
    assert {r.config.seed for r in runs} == {3}


def test_seeds_up_to_the_largest_are_accepted():
    s = validate(parse_yaml(_with(seeds=[0, 4294967295], games=["CartPole-v1"], algorithms=["a3c"], threads=[1],
                                  learning_rates={"loguniform": [1e-4, 1e-2], "count": 2, "seed": 4294967295})))
    assert s.seeds == [0, 4294967295] and {r.config.seed for r in s.runs()} == {0, 4294967295}


def test_numbers_as_yaml_writes_them():
    # PyYAML reads 7e-4 and 4e6 as strings; suites accept them, and 40M / 40_000_000
    s = validate(parse_yaml("name: n\ngames: [CartPole-v1]\nalgorithms: [a3c]\nthreads: [1]\n"
                            "learning_rates: [7e-4, 1e-3]\nseeds: [0]\nframes: 40M\n"))
    assert s.learning_rates == [7e-4, 1e-3] and s.frames == 40_000_000
    s = validate(parse_yaml("name: n\ngames: [CartPole-v1]\nalgorithms: [a3c]\nthreads: [1]\n"
                            "learning_rates: 1e-3\nframes: 40_000_000\n"))
    assert s.learning_rates == [1e-3] and s.frames == 40_000_000 and s.seeds == [0]


def test_loguniform_reproducible_and_within_bounds():
    a = sample_loguniform(1e-4, 1e-2, 50, seed=2016)
    b = sample_loguniform(1e-4, 1e-2, 50, seed=2016)
    c = sample_loguniform(1e-4, 1e-2, 50, seed=7)
    assert a == b and a != c
    assert len(set(a)) == 50 and a == sorted(a)
    assert all(1e-4 <= x <= 1e-2 for x in a)
    assert all(float(f"{x:.3e}") == x for x in a)  # 4 significant digits: the id shows the value exactly
    # spread over both decades (log-uniform, not uniform)
    assert sum(x < 1e-3 for x in a) >= 15 and sum(x >= 1e-3 for x in a) >= 15
    big = sample_loguniform(1e-4, 1e-2, 2000, seed=1)
    logs = [math.log10(x) for x in big]
    assert abs(sum(logs) / len(logs) + 3.0) < 0.05
    s = validate(parse_yaml(_with(learning_rates={"loguniform": [1e-4, 1e-2], "count": 50, "seed": 2016})))
    assert s.learning_rates == a
    assert s.learning_rate_sampling == {"loguniform": [1e-4, 1e-2], "count": 50, "seed": 2016, "digits": 4}


def test_suite_json_round_trip(tmp_path):
    from harness.suite import write_suite_files

    src = tmp_path / "s.yaml"
    src.write_text(_with(learning_rates={"loguniform": [1e-4, 1e-2], "count": 4, "seed": 3},
                         reference_scores={"Pong": -5, "CartPole-v1": 100}))
    s = load_suite(src)
    write_suite_files(s, tmp_path / "out")
    data = json.loads((tmp_path / "out" / "suite.json").read_text())
    assert data["reference_scores"] == {"Pong": -5.0, "CartPole-v1": 100.0}
    assert data["learning_rates"] == s.learning_rates and data["_meta"]["total_runs"] == s.n_runs
    assert (tmp_path / "out" / "suite.yaml").read_text() == src.read_text()
    back = load_suite(tmp_path / "out")
    assert [r.run_id for r in back.runs()] == [r.run_id for r in s.runs()]
    assert back.source == str(src)



def test_exclude_drops_the_named_combinations(tmp_path):
    """A study's design is rarely a full product: the synchronous schedule for A3C only, real Hogwild at the
    thread counts the machine's cores hold. ``exclude`` (as a GitHub Actions matrix's) names what to leave out."""
    from harness.suite import write_suite_files

    text = _with(games=["CartPole-v1"], threads=[1, 2, 4], schedules=["hogwild", "virtual", "sync"],
                 exclude=[{"schedules": "sync", "algorithms": ["one_step_q"]},
                          {"schedules": "hogwild", "threads": [4]}, {"learning_rates": 7.0e-4, "seeds": 1}])
    s = validate(parse_yaml(text))
    full = validate(parse_yaml(_with(games=["CartPole-v1"], threads=[1, 2, 4], schedules=["hogwild", "virtual", "sync"])))
    kept = {r.run_id for r in s.runs()}

    def dropped(c):
        return ((c.schedule == "sync" and c.algorithm == "one_step_q") or (c.schedule == "hogwild" and c.threads == 4)
                or (c.lr == 7.0e-4 and c.seed == 1))
    # by hand: 2 algorithms x 3 threads x 2 lrs x 2 seeds x 3 schedules = 72; sync one_step_q 12, hogwild t4 8,
    # lr 7e-4 seed 1 18, minus the overlaps (sync one_step_q at 7e-4 s1: 3; hogwild t4 at 7e-4 s1: 2) = 33 dropped
    assert len(full.runs()) == 72 and s.n_runs == len(kept) == 72 - 33
    assert kept == {r.run_id for r in full.runs() if not dropped(r.config)}
    # the ids of the runs kept are the full grid's (a study can add or drop an exclusion and resume)
    assert "a3c-CartPole-v1-t01-lr1e-03-s0-sync" in kept and "one_step_q-CartPole-v1-t04-lr1e-03-s0-virtual" in kept
    # suite.json keeps the exclusions and reads back to the same plan
    f = tmp_path / "s.yaml"
    f.write_text(text)
    write_suite_files(load_suite(f), tmp_path / "out")
    data = json.loads((tmp_path / "out" / "suite.json").read_text())
    assert data["exclude"][1] == {"schedules": ["hogwild"], "threads": [4]} and data["_meta"]["total_runs"] == 39
    assert [r.run_id for r in load_suite(tmp_path / "out").runs()] == [r.run_id for r in s.runs()]


@pytest.mark.parametrize("exclude, where, says", [
    ([{"threads": [3]}], "exclude[0].threads", "3 is not a value of the suite's threads"),
    ([{"schedule": "sync"}], "exclude[0].schedule", "unknown axis 'schedule'; did you mean schedules"),
    ([{"schedules": "sync"}], "exclude[0].schedules", "no schedules axis"),
    ([{}], "exclude[0]", "non-empty mapping"),
    ([{"algorithms": ["a3c", "one_step_q"]}], "exclude", "excludes every run"),
])
def test_exclude_mistakes_are_one_line(exclude, where, says):
    with pytest.raises(SuiteError) as e:
        validate(parse_yaml(_with(exclude=exclude)), "s.yaml")
    assert str(e.value).startswith(f"s.yaml: {where}: ") and says in str(e.value), str(e.value)


def test_dry_run_counts_the_excluded_grid(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(_with(games=["CartPole-v1"], exclude=[{"algorithms": "one_step_q", "threads": 2}]))
    res = CliRunner().invoke(cli, ["sweep", str(f), "--dry-run", "--results-dir", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert re.search(r"algorithms\s+2\s+4-8\s", res.output), res.output  # a3c 8 runs, one_step_q 4
    assert "12 of the 16 combinations are planned" in res.output and re.search(r"total runs\s+12\b", res.output)


# ------------------------------------------------------------------------------------------------
def test_shipped_suites():
    a5, a7 = load_suite(SUITES / "atari5.yaml"), load_suite(SUITES / "atari7.yaml")
    for s in (a5, a7):
        assert s.threads == [1, 2, 4, 8, 16]
        assert len(s.learning_rates) == 50 and all(1e-4 <= x <= 1e-2 for x in s.learning_rates)
        assert s.learning_rate_sampling["loguniform"] == [1e-4, 1e-2]
        assert set(s.algorithms) == {"one_step_q", "one_step_sarsa", "n_step_q", "a3c"}
        assert "frame" in s.description.lower()
    games5 = {r.config.env_spec.game for r in a5.runs()}
    assert games5 == {"BeamRider", "Breakout", "Pong", "Qbert", "SpaceInvaders"}
    assert {r.config.env_spec.game for r in a7.runs()} == games5 | {"Enduro", "Seaquest"}
    smoke = load_suite(SUITES / "smoke.yaml")
    assert set(smoke.algorithms) == {"one_step_q", "one_step_sarsa", "n_step_q", "a3c"}
    assert any(r.config.env_spec.is_atari for r in smoke.runs())
    for name, threads in (("minatar", [1, 2, 4, 8, 16]), ("minatar16", [1, 2, 4, 8, 16]), ("minatar2", [1, 2])):
        m = load_suite(SUITES / f"{name}.yaml")  # module:function registration of MinAtar's games
        assert m.threads == threads and set(m.algorithms) == {"one_step_q", "one_step_sarsa", "n_step_q", "a3c"}
        assert all(r.config.env_spec.game.startswith("MinAtar/") for r in m.runs()) and "frame" in m.description
    # the 1-16 thread study: the four methods on virtual workers at 1-16 threads, A2C (A3C on the sync
    # schedule), real Hogwild where a 2-core machine holds it; >= 6 learning rates, >= 3 seeds, 2 games
    study = load_suite(SUITES / "minatar-scaling.yaml")
    cells = {(r.config.algorithm, r.config.schedule, r.config.threads) for r in study.runs()}
    methods = {"one_step_q", "one_step_sarsa", "n_step_q", "a3c"}
    assert cells == ({(a, "virtual", t) for a in methods for t in (1, 2, 4, 8, 16)}
                     | {("a3c", "sync", t) for t in (1, 2, 4, 8, 16)} | {(a, "hogwild", t) for a in methods for t in (1, 2)})
    assert len(study.learning_rates) >= 6 and len(study.seeds) >= 3 and len(study.games) >= 2
    assert "MinAtar/Breakout-v1" in study.games and "frame" in study.description
    assert study.n_runs == 2 * 6 * 3 * (4 * 5 + 5 + 4 * 2)
    laptop = load_suite(SUITES / "minatar-scaling-laptop.yaml")
    assert {(r.config.algorithm, r.config.schedule) for r in laptop.runs()} == {
        ("one_step_q", "virtual"), ("a3c", "virtual"), ("a3c", "sync")}
    assert set(laptop.learning_rates) < set(study.learning_rates) and laptop.n_runs == 54
    memory = load_suite(SUITES / "memory.yaml")  # the recurrent agent beside the feed-forward one
    assert memory.algorithms == ["a3c", "a3c_lstm"] and memory.games == ["CartPoleNoVelocity-v1"]
    assert len(memory.seeds) >= 3 and "frame" in memory.description
    demo = load_suite(SUITES / "demo.yaml")
    assert demo.threads == [1, 2] and len(demo.learning_rates) >= 2 and len(demo.seeds) >= 2
    assert "frame" in demo.description.lower()
    packaged = ROOT / "harness" / "suites" / "demo.yaml"
    assert packaged.read_text() == (SUITES / "demo.yaml").read_text(), "keep harness/suites/demo.yaml == suites/demo.yaml"
    from harness.sweep.cli import demo_suite_path

    assert demo_suite_path().read_text() == packaged.read_text()
