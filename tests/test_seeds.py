"""Seeds: every command and entry point that takes one accepts 0 <= seed < 2**32 (harness.seeds) and
refuses the rest with one line naming the range (exit 2, no traceback); the largest accepted seed
trains, and every seed the engine derives from it is one the libraries take."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from harness.cli import main
from harness.config import ConfigError, make_run_config
from harness.engine.worker import worker_seeds
from harness.evaluate import eval_seeds

SEED_LIMIT = 2**32  # the contract (harness.seeds.SEED_LIMIT), stated here on its own
LARGEST = SEED_LIMIT - 1  # 4294967295
RANGE = "use a whole number from 0 to 4294967295 (0 <= seed < 2**32)"

COMMANDS = {
    "train": ["train", "--algo", "a3c", "--env", "CartPole-v1", "--frames", "500", "--threads", "1"],
    "check env": ["check", "env", "CartPole-v1", "--perf-seconds", "0.1"],
    "check algorithm": ["check", "algorithm", "a3c", "--only", "api"],
}


def run_cli(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.mark.parametrize("seed", ["-1", str(2**64), str(SEED_LIMIT)])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_seed_out_of_range_is_one_line_exit_2(capsys, tmp_path, command, seed):
    args = COMMANDS[command] + (["--out", str(tmp_path / "run")] if command == "train" else [])
    code, out, err = run_cli(capsys, *args, "--seed", seed)
    assert code == 2
    assert err == f"harness: error: Invalid value for '--seed': {seed} is outside the seed range: {RANGE}\n"
    assert "Traceback" not in out + err
    assert not (tmp_path / "run").exists()  # nothing started, nothing written


def test_the_largest_seed_trains(capsys, tmp_path):
    out = tmp_path / "run"
    code, stdout, err = run_cli(capsys, *COMMANDS["train"], "--seed", str(LARGEST), "--out", str(out))
    assert code == 0, err
    assert json.loads((out / "status.json").read_text())["state"] == "done"
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == config["run_seed"] == LARGEST


@pytest.mark.parametrize("seed", [0, LARGEST])
def test_every_seed_derived_from_a_seed_in_range_is_valid(seed):
    torch.manual_seed(seed)  # the shared network's initialisation
    torch.manual_seed(seed + 1)  # harness check algorithm's target network
    derived = [s for w in range(64) for s in worker_seeds(seed, w)] + list(eval_seeds(seed))
    assert all(isinstance(s, int) and 0 <= s < 2**32 for s in derived)
    for s in derived[:4]:
        torch.manual_seed(s)
        np.random.default_rng(s)
        np.random.RandomState(s)  # numpy's legacy seeding (MinAtar's), the narrowest of them


def test_python_entry_points_refuse_a_seed_out_of_range():
    from harness.check import check_algorithm, check_env
    from harness.seeds import SEED_LIMIT as limit

    assert limit == SEED_LIMIT

    with pytest.raises(ConfigError, match=r"seed: -1 is outside the seed range: use a whole number from 0 to 4294967295"):
        make_run_config(algorithm="a3c", env="CartPole-v1", seed=-1)
    with pytest.raises(ValueError, match=r"seed: 4294967296 is outside the seed range"):
        check_env("CartPole-v1", seed=SEED_LIMIT)
    with pytest.raises(ValueError, match=r"seed: 18446744073709551616 is outside the seed range"):
        check_algorithm("a3c", seed=2**64)
    assert make_run_config(algorithm="a3c", env="CartPole-v1", seed=LARGEST).run_seed == LARGEST
