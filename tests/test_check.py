"""``harness check``: broken fixture algorithms and environments are each caught by the right check,
with a message that says what to fix; the report is usable from Python; the CLI's exit codes.

The built-in algorithms are checked in test_check_builtins.py, the example plug-in package in
test_check_plugin.py.
"""

from __future__ import annotations

import json
import warnings

import pytest

from algorithms.a3c import A3C
from algorithms.base import register, registry
from harness.check import CheckReport, check_algorithm, check_env
from harness.cli import main
from harness.engine.worker import worker_seeds
from harness.envs import SHIPPED_ENVS, EnvError, register_shipped_envs
from harness.plugins import AlgorithmError

FIX = "tests.fixtures_check"
ENVS = ["tests.fixtures_check_envs"]
pytestmark = pytest.mark.filterwarnings("ignore:.*not within the observation space:UserWarning")
TINY = {"frames": 600, "perf_seconds": 0.2, "min_fps": 1.0}


def failed(report: CheckReport) -> dict[str, str]:
    return {r.name: r.measured for r in report.failures}


# -- algorithm API -----------------------------------------------------------------------------
def test_nan_loss_fails_the_loss_check_and_skips_training():
    report = check_algorithm(f"{FIX}:NaNLoss", stages=("api",), **TINY)
    assert not report.passed
    row = report["loss finite (vector)"]
    assert row.failed and "nan" in row.measured and "finite" in row.fix
    assert report["loss finite (image)"].failed
    assert report["async updates change θ"].status == "skip"
    assert "loss finite (vector)" in report["async updates change θ"].measured
    assert report["actions valid (vector)"].passed and report["contract"].passed


@pytest.mark.parametrize("fixture, expected", [
    ("OutOfRangeActions", "returned action 3 for a state with 3 actions"),
    ("TensorActions", "of type Tensor, not an int"),
])
def test_invalid_actions_fail_the_action_check(fixture, expected):
    report = check_algorithm(f"{FIX}:{fixture}", stages=("api",), **TINY)
    row = report["actions valid (vector)"]
    assert row.failed and expected in row.measured
    assert "[0, n_actions)" in row.fix
    assert report["loss finite (vector)"].passed  # the loss is fine: only act is broken
    assert report["async updates change θ"].status == "skip"


def test_act_that_claims_numpy_outputs_but_cannot_read_them_fails_the_action_check():
    report = check_algorithm(f"{FIX}:NumpyActionsClaimed", stages=("api",), **TINY)
    row = report["actions valid (vector)"]
    assert row.failed and "act_takes_numpy is set" in row.measured and "numpy outputs" in row.measured
    assert "act_takes_numpy False" in row.fix
    assert report["loss finite (vector)"].passed


def test_non_scalar_loss_is_reported():
    report = check_algorithm(f"{FIX}:VectorLoss", stages=("api",), **TINY)
    row = report["loss finite (vector)"]
    assert row.failed and "shape [5]" in row.measured and "scalar" in row.fix


def test_contract_problems_are_listed_and_block_everything_else():
    report = check_algorithm(f"{FIX}:BadContract", **TINY)
    row = report["contract"]
    assert row.failed
    assert "needs a default" in row.fix and "default_lr" in row.fix and "'vector'" in row.fix
    assert all(r.status == "skip" for r in report.rows[1:])


def test_network_that_rejects_images_fails_only_the_image_checks():
    report = check_algorithm(f"{FIX}:VectorOnlyNetwork", stages=("performance",), **TINY)
    row = report["network builds (image)"]
    assert row.failed and "ValueError: only flat observations" in row.measured
    assert "fixtures_check.py" in row.measured  # where it broke
    assert report["actions valid (image)"].status == "skip"
    assert report["network builds (vector)"].passed
    assert report["frames/s (1 worker)"].passed  # CartPole has vector observations


def test_algorithm_registered_only_in_this_process_is_flagged():
    @register
    class Local(A3C):
        name = "check_registered_only"

    try:
        report = check_algorithm("check_registered_only", stages=("performance",), **TINY)
    finally:
        registry().pop("check_registered_only")
    assert report["contract"].failed
    assert "worker processes cannot find it" in report["contract"].fix
    assert "module:Class" in report["contract"].fix


def test_performance_floor():
    report = check_algorithm("a3c", stages=("performance",), perf_seconds=0.2, min_fps=1e9)
    row = report["frames/s (1 worker)"]
    assert row.failed and "below the floor" in row.fix and "--min-fps" in row.fix
    assert 0 < row.values["frames_per_second"] < 1e9
    assert [r.stage for r in report.rows].count("seed") == 0  # stages not asked for are left out


def test_report_is_structured_for_python_callers():
    report = check_algorithm("one_step_q", stages=("performance",), **TINY)
    assert report.passed and report.kind == "algorithm" and report.subject == "one_step_q"
    d = json.loads(report.to_json())
    assert d["passed"] is True and d["settings"]["min_fps"] == 1.0
    assert {r["name"] for r in d["rows"]} >= {"contract", "loss has a gradient (image)", "frames/s (1 worker)"}
    assert report["network builds (vector)"].values["parameters"] > 0
    assert "STAGE" in report.table() and report.summary().startswith("PASSED")
    with pytest.raises(KeyError, match="no check named"):
        report["nope"]


def test_a_class_is_checked_by_its_import_path():
    from tests.fixtures_check import NaNLoss

    report = check_algorithm(NaNLoss, stages=("api",), **TINY)
    assert report.subject == "tests.fixtures_check:NaNLoss" and report["loss finite (vector)"].failed

    class Local(A3C):
        name = "local"

    with pytest.raises(ValueError, match="cannot be imported by worker processes"):
        check_algorithm(Local)


def test_unknown_names_raise():
    with pytest.raises(AlgorithmError, match="unknown algorithm 'a3cc'.*did you mean a3c"):
        check_algorithm("a3cc")
    with pytest.raises(EnvError, match="unknown environment"):
        check_algorithm("a3c", env="NoSuchEnv-v9")
    with pytest.raises(ValueError, match="unknown check stage"):
        check_algorithm("a3c", stages=("speed",))


# -- algorithm checks that train (short real runs) -----------------------------------------------
@pytest.mark.slow
def test_loss_that_never_changes_the_parameters():
    report = check_algorithm(f"{FIX}:FrozenLoss", stages=("api",), **TINY)
    grad = report["loss has a gradient (vector)"]
    assert grad.failed and "zero for every parameter" in grad.measured
    row = report["async updates change θ"]
    assert row.failed and "θ unchanged" in row.measured and "2 workers" in row.measured
    assert ".detach()" in row.fix
    assert row.values["max_abs_delta"] == 0.0 and row.values["frames"] >= 600


@pytest.mark.slow
def test_algorithm_that_ignores_the_seed():
    report = check_algorithm(f"{FIX}:IgnoresSeed", stages=("seed",), **TINY)
    assert report["contract"].passed and report["actions valid (vector)"].passed
    unit = report["act draws only from its rng"]
    assert unit.failed and "identically seeded rngs" in unit.measured
    run = report["same seed, same episodes"]
    assert run.failed and "two 1-worker runs with seed 0 differ" in run.measured
    assert "np.random.default_rng() without a seed" in run.fix
    assert report["network init follows the seed"].passed
    assert "async updates change θ" not in {r.name for r in report.rows}


@pytest.mark.slow
def test_training_checks_use_env_modules(tmp_path):
    report = check_algorithm("a3c", env="HarnessCheck/Corridor-v0", env_modules=ENVS, stages=("api",),
                             workdir=tmp_path, **TINY)
    assert report.passed, report
    assert report["async updates change θ"].values["max_abs_delta"] > 0
    config = json.loads((tmp_path / "async" / "config.json").read_text())
    assert config["env_modules"] == ENVS and config["threads"] == 2  # --keep: the run folder stays


# -- environments --------------------------------------------------------------------------------
def test_cartpole_passes_the_env_check():
    report = check_env("CartPole-v1", steps=300, perf_seconds=0.2)
    assert report.passed, report
    assert report["step contract"].values["episodes"] > 0
    assert report["frames/s"].values["frames_per_second"] > 500
    assert report["different seeds"].values["differ"] is True


def test_one_stage_of_the_env_check_builds_the_environment_it_checks():
    """--only seed / --only performance: the api checks that build and reset the environment run
    anyway (they are what the other stages check), so the chosen stage checks the environment."""
    for stage, row in (("seed", "seeded reset reproducible"), ("performance", "frames/s")):
        report = check_env("CartPole-v1", steps=300, perf_seconds=0.2, stages=(stage,))
        assert report.passed, report
        assert report[row].passed and report["builds"].passed
        assert not any(r.stage not in ("api", stage) for r in report.rows)
    report = check_env("HarnessCheck/LeakyReset-v0", env_modules=ENVS, steps=300, perf_seconds=0.1, stages=("seed",))
    assert not report.passed  # the seed stage alone still catches what it exists for


def test_third_party_env_by_env_module_passes():
    report = check_env("HarnessCheck/Corridor-v0", env_modules=ENVS, steps=300, perf_seconds=0.2)
    assert report.passed, report
    assert report["observation space"].values["kind"] == "vector"


@pytest.mark.parametrize("env_id, check, expected, fix", [
    ("HarnessCheck/Unseeded-v0", "seeded reset reproducible", "reset(seed=2968811710) in", "self.np_random"),
    ("HarnessCheck/Leaky-v0", "step contract", "is outside the observation space's bounds [0, 1]", "inside observation_space"),
    ("HarnessCheck/Continuous-v0", "builds", "the harness needs a Discrete one", "Discrete"),
    ("HarnessCheck/Grid-v0", "observation space", "has rank 2", "[C, H, W]"),
])
def test_broken_envs_are_caught_by_the_right_check(env_id, check, expected, fix):
    report = check_env(env_id, env_modules=ENVS, steps=300, perf_seconds=0.1)
    assert not report.passed
    assert set(failed(report)) == {check}
    row = report[check]
    assert expected in row.measured and fix in row.fix


GYM_ROW = "gymnasium check_env"


@pytest.mark.parametrize("env_id, expected", [
    # reset never calls super().reset(seed=seed): deterministic, so the harness trains it reproducibly
    ("HarnessCheck/SeedIgnoring-v0", "AssertionError in check_reset_seed_determinism: Expects the random number "
                                     "generator to have been generated"),
    # built with a lambda, as CartPoleNoVelocity-v1 was: gymnasium cannot re-create it from its spec
    ("HarnessCheck/LambdaWrapped-v0", "ValueError: The environment's wrapper spec"),
])
def test_gymnasiums_checker_is_a_row_that_fails_what_gymnasium_rejects(env_id, expected):
    report = check_env(env_id, env_modules=ENVS, steps=300, perf_seconds=0.1)
    row = report[GYM_ROW]
    assert row.stage == "gymnasium" and row.failed and row.advisory
    assert f"gymnasium.make('{env_id}') fails gymnasium" in row.measured and expected in row.measured
    assert "\n" not in row.measured and "super().reset(seed=seed)" in row.fix
    # advisory: the harness's own checks pass, so the verdict is still a pass, and the summary says so
    assert report.passed and report.failures == [] and report.advisory_failures == [row]
    assert "PASSED: 12 of 13 checks; failed, advisory" in report.summary()


def test_gymnasiums_checker_rejects_a_first_observation_outside_the_space():
    report = check_env("HarnessCheck/LeakyReset-v0", env_modules=ENVS, steps=300, perf_seconds=0.1)
    row = report[GYM_ROW]
    assert row.failed and "The first element returned by `env.reset()` is not within the observation space" in row.measured
    assert set(failed(report)) == {"reset"} and not report.passed  # the harness's own reset check fails the report
    assert "gymnasium check_env (advisory, not counted)" in report.summary()


def test_gymnasiums_warnings_are_listed_but_do_not_fail_its_row():
    # observations that leave the space after a step: gymnasium's passive checker only warns
    report = check_env("HarnessCheck/Leaky-v0", env_modules=ENVS, steps=300, perf_seconds=0.1)
    row = report[GYM_ROW]
    assert row.passed and row.values["warnings"] == ["The obs returned by the `step()` method is not within the "
                                                     "observation space."]
    assert "passes gymnasium" in row.measured and "1 warning(s), not counted: The obs returned" in row.measured


@pytest.mark.parametrize("env_id", SHIPPED_ENVS)
def test_shipped_envs_pass_the_gymnasium_row(env_id):
    report = check_env(env_id, stages=("gymnasium",))
    assert [r.name for r in report.rows] == [GYM_ROW]
    assert report[GYM_ROW].passed and report[GYM_ROW].values["warnings"] == [], report[GYM_ROW].measured


@pytest.mark.parametrize("env_id", SHIPPED_ENVS)
def test_shipped_envs_pass_gymnasiums_own_checker(env_id):
    """gymnasium's check_env re-creates the environment from its spec (env.spec.make()): every
    piece of a shipped environment must be importable, no lambda."""
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env as gymnasium_check_env

    register_shipped_envs()
    env = gym.make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gymnasium_check_env(env, skip_render_check=True)
    assert env.spec.make().observation_space == env.observation_space
    # and no warning either, but the one about checking a gymnasium.make()-wrapped env
    assert [str(w.message) for w in caught if "different from the unwrapped" not in str(w.message)] == []


def test_unknown_env_raises():
    with pytest.raises(EnvError, match="unknown environment 'CartPol-v1'.*did you mean CartPole-v1"):
        check_env("CartPol-v1")


@pytest.mark.slow
def test_atari_env_check():
    report = check_env("Pong", seed=3, steps=150, perf_seconds=0.3, min_fps=100)
    assert report.passed, report
    assert report["observation space"].values == {"shape": [4, 84, 84], "kind": "image"}
    assert report["builds"].values["frames_per_step"] == 4
    assert report["reset"].values["seed"] == worker_seeds(3, 0)[0]  # the seed worker 0 resets with


def test_atari_env_accepts_every_worker_seed():
    # regression: worker_seeds gives 32-bit seeds (run seed 0 -> 2968811710) and ALE takes int32
    report = check_env("Pong", seed=0, steps=20, stages=("api",))
    assert report["reset"].passed, report["reset"].measured


# -- command line --------------------------------------------------------------------------------
def run_cli(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["check", *args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.mark.parametrize("args, expected", [
    (["algorithm", "no_such_algo"], "unknown algorithm 'no_such_algo'"),
    (["algorithm", "no_such_module:Algo"], "cannot import algorithm 'no_such_module:Algo'"),
    (["algorithm", "a3c", "--env", "NoSuchEnv-v9"], "unknown environment 'NoSuchEnv-v9'"),
    (["env", "NoSuchEnv-v9"], "unknown environment 'NoSuchEnv-v9'"),
    (["algorithm", "a3c", "--only", "speed"], "'speed' is not one of"),
])
def test_cli_unknown_names_are_one_line_exit_2(capsys, args, expected):
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    assert expected in err and err.startswith("harness: error:") and err.count("\n") == 1
    assert "Traceback" not in err + out


def test_cli_failure_exits_1_with_the_table_and_what_to_fix(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "algorithm", f"{FIX}:NaNLoss", "--only", "api", "--json", str(tmp_path / "r.json"))
    assert code == 1
    assert "STAGE" in out and "RESULT" in out
    assert "loss finite (vector)" in out and "FAIL" in out and "SKIP" in out
    assert "FAILED:" in out and "What to fix" in out and "look for log(0)" in out
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["passed"] is False and saved["subject"] == f"{FIX}:NaNLoss"


def test_cli_writes_junit_and_markdown_for_ci(capsys, tmp_path, monkeypatch):
    """One JUnit test case per check (the fix as a failure's message, skipped checks skipped), and
    the same table as Markdown, also appended to GitHub's step summary."""
    import xml.etree.ElementTree as ET

    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    code, out, _ = run_cli(capsys, "algorithm", f"{FIX}:NaNLoss", "--only", "api",
                           "--junit", str(tmp_path / "check.xml"), "--markdown", str(tmp_path / "check.md"))
    assert code == 1
    suite = ET.parse(tmp_path / "check.xml").getroot().find("testsuite")
    cases = suite.findall("testcase")
    failed = [c for c in cases if c.find("failure") is not None]
    assert len(cases) == int(suite.get("tests")) > len(failed) >= 1 and suite.get("failures") == str(len(failed))
    loss = next(c for c in failed if c.get("name") == "loss finite (vector)")
    assert "look for log(0)" in loss.find("failure").get("message")
    assert int(suite.get("skipped")) == sum(c.find("skipped") is not None for c in cases) >= 1
    md = (tmp_path / "check.md").read_text()
    assert md.startswith(f"### harness check algorithm {FIX}:NaNLoss: FAILED") and "| api | loss finite (vector) | FAIL |" in md
    assert (tmp_path / "summary.md").read_text() == md + "\n"


def test_cli_env_check_passes_with_exit_0(capsys):
    code, out, _ = run_cli(capsys, "env", "HarnessCheck/Corridor-v0", "--env-module", ENVS[0],
                           "--steps", "200", "--perf-seconds", "0.1")
    assert code == 0
    assert "PASSED: 13 of 13 checks" in out and "frames/s" in out  # api 4, gymnasium 1, network 5, seed 2, performance 1
    assert "gymnasium check_env" in out


def test_cli_gymnasium_rejection_is_reported_and_exits_0(capsys, tmp_path):
    """gymnasium's checker rejects the env, the harness's own checks pass: the row says FAIL with
    gymnasium's message on one line, the summary says it is advisory, the exit status is 0, and
    CI output shows the row as skipped with that message, not as a failure."""
    import xml.etree.ElementTree as ET

    code, out, _ = run_cli(capsys, "env", "HarnessCheck/SeedIgnoring-v0", "--env-module", ENVS[0], "--steps", "200",
                           "--perf-seconds", "0.1", "--junit", str(tmp_path / "check.xml"), "--json", str(tmp_path / "r.json"))
    assert code == 0
    row = next(line for line in out.splitlines() if "gymnasium check_env" in line)
    assert row.split()[:4] == ["gymnasium", "gymnasium", "check_env", "FAIL"] and "super().reset(seed=seed)" in row
    assert "PASSED: 12 of 13 checks; failed, advisory (not counted in the verdict or the exit status):" in out
    suite = ET.parse(tmp_path / "check.xml").getroot().find("testsuite")
    assert suite.get("failures") == "0"
    case = next(c for c in suite.findall("testcase") if c.get("name") == "gymnasium check_env")
    assert "advisory check failed (not counted)" in case.find("skipped").get("message")
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["passed"] is True
    assert [r["status"] for r in saved["rows"] if r["advisory"]] == ["fail"]


def test_cli_hyperparameter_overrides(capsys):
    code, out, _ = run_cli(capsys, "algorithm", "a3c", "--only", "performance", "--perf-seconds", "0.1",
                           "--min-fps", "1", "--hp", "entropy_beta=0.05", "--hp", "t-max=3")
    assert code == 0, out
    code, out, err = run_cli(capsys, "algorithm", "a3c", "--only", "performance", "--hp", "nope=1")
    assert code == 2 and "unknown hyperparameter(s) nope for a3c" in err
