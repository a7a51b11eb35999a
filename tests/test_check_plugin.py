"""The example plug-in package (examples/a3c-gae) end to end: pip-installed, found through the
``harness.algorithms`` entry point, passes ``harness check``, trains, and sweeps with a tiny suite.

The package is installed with pip (``--no-deps --no-build-isolation --no-index``: nothing is
downloaded, torch is untouched) into a private ``--target`` folder put on PYTHONPATH, not into the
project's virtualenv, so no other test ever sees the plug-in.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "a3c-gae"
HARNESS = [sys.executable, "-c", "from harness.cli import main; main()"]


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict[str, str]:
    src = tmp_path_factory.mktemp("src") / "a3c-gae"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp_path_factory.mktemp("site-packages")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--no-build-isolation", "--no-index", "--target", str(target), str(src)],
        check=True, timeout=300,
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(target), str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def harness(env, *args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([*HARNESS, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_plugin_is_found_through_the_entry_point(plugin_env):
    code = ("from harness.plugins import available_algorithms, load_algorithm\n"
            "cls = load_algorithm('a3c_gae')\n"
            "print(available_algorithms()[-1], cls.__module__, cls.Hyperparameters().gae_lambda)")
    out = subprocess.run([sys.executable, "-c", code], env=plugin_env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["a3c_gae", "a3c_gae.algorithm", "0.95"]


def test_harness_check_passes_for_the_plugin(plugin_env):
    res = harness(plugin_env, "check", "algorithm", "a3c_gae", "--frames", "600", "--perf-seconds", "0.3",
                  "--min-fps", "20")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "PASSED: 18 of 18 checks" in res.stdout
    assert "async updates change θ" in res.stdout and "same seed, same episodes" in res.stdout
    assert "sync updates change θ" in res.stdout and "virtual schedule repeats exactly" in res.stdout


def test_plugin_trains_with_its_own_hyperparameter_option(plugin_env, tmp_path):
    out = tmp_path / "run"
    res = harness(plugin_env, "train", "--algo", "a3c_gae", "--env", "CartPole-v1", "--threads", "2",
                  "--frames", "1000", "--gae-lambda", "0.8", "--eval-episodes", "1", "--out", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["algorithm"] == "a3c_gae" and config["hyperparameters"]["gae_lambda"] == 0.8
    assert json.loads((out / "status.json").read_text())["state"] == "done"


def test_example_suite_is_valid(plugin_env, tmp_path):
    res = harness(plugin_env, "sweep", str(EXAMPLE / "suite.yaml"), "--dry-run", "--results-dir", str(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    assert re.search(r"total runs\s+12\b", res.stdout), res.stdout  # 2 algorithms x 2 worker counts x 3 seeds
    assert "a3c_gae, a3c" in res.stdout


def test_plugin_sweeps_with_a_tiny_suite(plugin_env, tmp_path):
    suite = yaml.safe_load((EXAMPLE / "suite.yaml").read_text())
    suite.update(name="a3c-gae-tiny", algorithms=["a3c_gae"], threads=[1, 2], seeds=1, frames=600,
                 eval={"episodes": 1})
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(suite))
    results = tmp_path / "results"
    res = harness(plugin_env, "sweep", str(path), "--results-dir", str(results), "--max-parallel", "1")
    assert res.returncode == 0, res.stdout + res.stderr
    statuses = sorted((results / "a3c-gae-tiny").glob("*/status.json"))
    assert len(statuses) == 2
    for status in statuses:
        assert json.loads(status.read_text())["state"] == "done"
        config = json.loads((status.parent / "config.json").read_text())
        assert config["algorithm"] == "a3c_gae" and config["hyperparameters"]["gae_lambda"] == 0.95
        assert (status.parent / "episodes.csv").stat().st_size > 0
