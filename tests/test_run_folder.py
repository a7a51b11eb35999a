"""Reliability of one run folder: one writer, resume only what matches, one line and an
honest status.json after any fault, and no finished episode lost or duplicated by a kill."""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from harness import store
from harness.cli import cli
from harness.config import make_run_config
from harness.engine import train
from harness.engine.run import CHECKPOINT, PREVIOUS_CHECKPOINT
from tests.real_faults import fill, remount, small_disk  # noqa: F401 - small_disk is a fixture

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TINY = ["--algo", "a3c", "--env", "CartPole-v1", "--frames", "3000", "--eval-episodes", "1"]


def _cli(*args):
    return CliRunner().invoke(cli, ["train", *args])


def _one_line_error(result, code: int, *needles: str) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.startswith("harness: error:")]
    assert len(lines) == 1, result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _harness(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``harness ARGS`` in its own process, as a user runs it (``tests/fixtures`` importable)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(FIXTURES), env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def _one_error_line(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """The process exited with ``code``, printed no traceback and exactly one error line on stderr."""
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("harness: error:")]
    assert len(lines) == 1, proc.stdout + proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _no_temporary_files(folder: Path) -> None:
    assert not list(folder.glob("*.tmp")) and not list(folder.glob(".*.tmp")), sorted(os.listdir(folder))


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != store.RUN_LOCK}


def _interrupted_run(out: Path, frames: int = 8_000) -> None:
    """A run cut off after a checkpoint, as a kill or Ctrl-C leaves it, at most half-way through its
    budget whatever the machine's speed: it trains for 0.5 s (a fast machine finishes all 8,000 frames
    in that time), then its checkpoint is set back to half the budget if it got further, so that the
    run always has frames left to train when resumed."""
    cfg = make_run_config(algorithm="a3c", env="CartPole-v1", frames=frames, eval={"episodes": 1},
                          engine={"max_seconds": 0.5})
    assert train(cfg, out).state == "done"  # stopped early, or finished, with a checkpoint...
    ckpt = torch.load(out / CHECKPOINT, weights_only=False)
    cut = min(int(ckpt["frames"]), frames // 2)
    if cut < int(ckpt["frames"]):
        ckpt.update(frames=cut, snapshots=[s for s in ckpt["snapshots"] if s[0] <= cut])
        torch.save(ckpt, out / CHECKPOINT)
    status = json.loads((out / "status.json").read_text())
    status.update(state="interrupted", error="received SIGTERM", frames_done=cut)  # ...which we make look cut off
    status.pop("stopped_early", None)
    store.write_json_atomic(out / "status.json", status)
    assert (out / CHECKPOINT).exists()


# ---------------------------------------------------------------------------------------------- one writer
_HOLD = """
import sys, time
from harness import store
store.FolderLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(60)
"""


def test_a_second_process_on_the_same_folder_is_refused_and_a_dead_holder_is_taken_over(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = _snapshot(out)
        _one_line_error(_cli(*TINY, "--out", str(out)), 2, f"in use by pid {holder.pid}", "another --out")
        assert _snapshot(out) == before  # nothing written
    finally:
        holder.kill()
        holder.wait()
    # the kernel dropped the dead holder's flock; its record is still in the file: taken over
    assert json.loads((out / store.RUN_LOCK).read_text())["pid"] == holder.pid
    result = _cli(*TINY, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"taking over the lock of pid {holder.pid}" in result.output


def test_the_lock_is_reentrant_within_one_process(tmp_path):
    with store.FolderLock(tmp_path):
        with store.FolderLock(tmp_path):  # a sweep's run process, then the engine it calls
            pass
        assert json.loads((tmp_path / store.RUN_LOCK).read_text())["pid"] == os.getpid()
    assert (tmp_path / store.RUN_LOCK).read_text() == ""  # released


# ---------------------------------------------------------------------------------------------- resume what matches
def test_resume_only_continues_the_same_run(tmp_path):
    out = tmp_path / "run"
    _interrupted_run(out)
    before = _snapshot(out)
    line = _one_line_error(_cli("--algo", "a3c", "--env", "CartPole-v1", "--frames", "8000", "--lr", "0.01",
                                "--out", str(out)), 2, "lr: 0.001 on disk, 0.01 now", "--fresh", "another --out")
    assert "holds another run" in line
    _one_line_error(_cli("--algo", "one_step_q", "--env", "CartPole-v1", "--frames", "8000", "--out", str(out)),
                    2, "algorithm: 'a3c' on disk, 'one_step_q' now")
    assert _snapshot(out) == before  # config.json not rewritten, nothing else touched
    # --fresh is the way out: the other run replaces it
    result = _cli("--algo", "a3c", "--env", "CartPole-v1", "--frames", "3000", "--lr", "0.01", "--fresh",
                  "--out", str(out), "--eval-episodes", "1")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["lr"] == 0.01


def test_rerunning_a_finished_run_changes_nothing(tmp_path):
    out = tmp_path / "run"
    assert _cli(*TINY, "--out", str(out)).exit_code == 0
    before = _snapshot(out)
    result = _cli(*TINY, "--out", str(out))
    assert result.exit_code == 0 and "already done" in result.output and "nothing to do" in result.output
    assert _snapshot(out) == before  # no second evaluation, status.json untouched


# ---------------------------------------------------------------------------------------------- faults
def test_corrupt_checkpoint_falls_back_to_the_previous_one(tmp_path):
    out = tmp_path / "run"
    _interrupted_run(out)
    ckpt = torch.load(out / CHECKPOINT, weights_only=False)
    prev = dict(ckpt, frames=int(ckpt["frames"]) // 2)
    torch.save(prev, out / PREVIOUS_CHECKPOINT)
    data = (out / CHECKPOINT).read_bytes()
    (out / CHECKPOINT).write_bytes(data[: len(data) // 3])  # truncated
    result = _cli("--algo", "a3c", "--env", "CartPole-v1", "--frames", "8000", "--eval-episodes", "1",
                  "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "checkpoint.pt is unreadable" in result.output and f"resuming from {PREVIOUS_CHECKPOINT}" in result.output
    status = json.loads((out / "status.json").read_text())
    assert status["resumed_from_frames"] == prev["frames"]
    episodes = pd.read_csv(out / "episodes.csv")
    assert episodes["frames"].is_monotonic_increasing and not episodes.duplicated().any()


def test_unreadable_checkpoints_fail_the_run_with_one_line(tmp_path):
    out = tmp_path / "run"
    _interrupted_run(out)
    (out / CHECKPOINT).write_bytes(b"PK\x03\x04 not a checkpoint")
    line = _one_line_error(_cli("--algo", "a3c", "--env", "CartPole-v1", "--frames", "8000", "--out", str(out)),
                           1, "checkpoint.pt is unreadable", "--fresh", "restore")
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "failed" and status["error"] in line
    assert not list(out.glob("*.tmp"))


def test_a_malformed_row_in_the_middle_of_episodes_csv_names_the_line(tmp_path):
    out = tmp_path / "run"
    _interrupted_run(out)
    lines = (out / "episodes.csv").read_text().splitlines(keepends=True)
    assert len(lines) > 5
    lines[3] = "12x,oops\n"
    (out / "episodes.csv").write_text("".join(lines))
    _one_line_error(_cli("--algo", "a3c", "--env", "CartPole-v1", "--frames", "8000", "--out", str(out)),
                    1, "episodes.csv line 4 is malformed", "--fresh")
    assert json.loads((out / "status.json").read_text())["state"] == "failed"
    assert (out / "episodes.csv").read_text().splitlines(keepends=True)[3] == "12x,oops\n"  # left for the user


def test_a_half_written_last_line_is_dropped_with_a_warning(tmp_path):
    out = tmp_path / "run"
    _interrupted_run(out)
    ckpt_frames = int(torch.load(out / CHECKPOINT, weights_only=False)["frames"])
    kept = pd.read_csv(out / "episodes.csv")
    kept = kept[kept["frames"] <= ckpt_frames]
    with open(out / "episodes.csv", "a") as f:
        f.write(f"{ckpt_frames - 1},3.5,0,17")  # a kill in the middle of a row
    result = _cli("--algo", "a3c", "--env", "CartPole-v1", "--frames", "8000", "--eval-episodes", "1",
                  "--out", str(out))
    assert result.exit_code == 0, result.output
    warnings = [ln for ln in result.output.splitlines() if ln.startswith("harness: warning:")]
    assert len(warnings) == 1 and "half-written last line" in warnings[0]
    after = pd.read_csv(out / "episodes.csv")
    assert after.iloc[: len(kept)].equals(kept.reset_index(drop=True))  # every finished episode kept
    assert not ((after["frames"] == ckpt_frames - 1) & (after["length"] == 17) & (after["wall_seconds"] == 3.5)).any()


def test_disk_full_during_a_checkpoint_fails_the_run_honestly(tmp_path, monkeypatch):
    import harness.engine.run as engine_run

    real_save = torch.save
    saved = []

    def full_disk_save(obj, f, *a, **k):
        if any(n > 0 for n in saved) and obj["frames"] > max(saved):  # the next checkpoint with progress: disk full
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device", str(f.name))
        saved.append(obj["frames"])
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(engine_run.torch, "save", full_disk_save)
    out = tmp_path / "run"
    cfg = make_run_config(algorithm="a3c", env="CartPole-v1", frames=10_000_000, eval={"episodes": 1},
                          engine={"checkpoint_seconds": 0.5, "max_seconds": 120.0})
    result = train(cfg, out)
    assert result.state == "failed"
    assert f"{out / CHECKPOINT}: No space left on device" in result.error and "free disk space" in result.error
    assert "rerun the same command" in result.error and "\n" not in result.error
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))  # no stray temporary file
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "failed" and status["error"] == result.error
    episodes = pd.read_csv(out / "episodes.csv")
    assert len(episodes) > 0 and status["frames_done"] >= episodes["frames"].max() > 0  # the truth, not 0 frames
    assert torch.load(out / CHECKPOINT, weights_only=False)["frames"] > 0  # the good checkpoint is intact


def test_a_short_csv_append_is_cut_back_off(tmp_path, monkeypatch):
    log = store.CsvLog(tmp_path / "e.csv", ("a", "b"))
    log.append([{"a": 1, "b": 2}])
    real_write = os.write
    monkeypatch.setattr(store.os, "write", lambda fd, data: real_write(fd, data[:3]))
    with pytest.raises(OSError) as info:
        log.append([{"a": 10, "b": 20}])
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "e.csv")
    assert (tmp_path / "e.csv").read_text() == "a,b\n1,2\n"  # no half row left for the next append


def test_unwritable_out_folders_are_one_line_exit_2(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    _one_line_error(_cli(*TINY, "--out", str(tmp_path / "afile" / "run")), 2, "Not a directory", "another --out")
    _one_line_error(_cli(*TINY, "--out", str(tmp_path / ("x" * 300))), 2, "File name too long")

    def read_only(self, wait_seconds=0.0):
        raise OSError(errno.EROFS, "Read-only file system", str(self.path))

    monkeypatch.setattr(store.FolderLock, "acquire", read_only)
    _one_line_error(_cli(*TINY, "--out", str(tmp_path / "ro")), 2, "Read-only file system", "another --out")


# ---------------------------------------------------------------------------------------------- real faults
# The faults above are raised by hand; these make them happen: a small file system that fills up, one
# that is read-only, environments whose package is missing or broken.
def test_a_disk_that_fills_up_while_the_checkpoint_is_written(small_disk):
    """The checkpoint (about 280 KB for CartPole's A3C) cannot fit on a 200 KiB disk. torch's zip writer
    reports the ENOSPC as a RuntimeError ('unexpected pos ...') raised while it closes the file."""
    out = small_disk("200k") / "run"
    proc = _harness("train", "--algo", "a3c", "--env", "CartPole-v1", "--threads", "1", "--seed", "3",
                    "--frames", "6000", "--eval-episodes", "1", "--out", str(out))
    line = _one_error_line(proc, 1, f"{out / CHECKPOINT}: No space left on device", "(free disk space)",
                           "rerun the same command (no checkpoint yet: it starts over)")
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "failed" and line == f"harness: error: {status['error']}"
    episodes = pd.read_csv(out / "episodes.csv")
    assert len(episodes) > 0 and status["frames_done"] >= max(6000, episodes["frames"].max())
    assert not (out / CHECKPOINT).exists()  # none ever fitted
    _no_temporary_files(out)


def test_a_full_disk_keeps_the_previous_checkpoint_and_every_episode_up_to_it(small_disk):
    disk = small_disk("450k")  # room for one checkpoint, not for a second beside it
    out = disk / "run"
    _interrupted_run(out)
    kept_checkpoint = (out / CHECKPOINT).read_bytes()
    ckpt_frames = int(torch.load(out / CHECKPOINT, weights_only=False)["frames"])
    episodes = pd.read_csv(out / "episodes.csv")
    kept = episodes[episodes["frames"] <= ckpt_frames].reset_index(drop=True)
    command = ("train", "--algo", "a3c", "--env", "CartPole-v1", "--frames", "8000", "--eval-episodes", "1",
               "--out", str(out))
    proc = _harness(*command)
    line = _one_error_line(proc, 1, f"{out / CHECKPOINT}: No space left on device",
                           "rerun the same command to resume from the last checkpoint")
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "failed" and line.endswith(status["error"])
    assert status["frames_done"] >= 8000 and status["resumed_from_frames"] == ckpt_frames
    assert (out / CHECKPOINT).read_bytes() == kept_checkpoint and not (out / PREVIOUS_CHECKPOINT).exists()
    _no_temporary_files(out)
    after = pd.read_csv(out / "episodes.csv")
    assert after.iloc[: len(kept)].equals(kept) and len(after) > len(kept)  # nothing finished lost
    # what the line says: free disk space, rerun the same command; it resumes from the kept checkpoint
    remount(disk, "size=4m")
    proc = _harness(*command)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "done" and status["resumed_from_frames"] == ckpt_frames


def test_a_disk_that_fills_up_mid_run_fails_it_and_status_json_still_tells(small_disk, monkeypatch):
    """The disk fills while episodes are being written (a filler file takes its last byte): episodes.csv
    and the shutdown, which still has episodes in flight, meet ENOSPC; status.json is written in the
    space the run held back for it (store.SpaceReserve)."""
    import harness.cli as cli_module

    disk = small_disk("1m")
    out = disk / "run"
    filled = []

    def filling_printer(label):
        def on_progress(p):
            if p.episodes > 0 and not filled:
                filled.append(fill(disk))
        return on_progress

    monkeypatch.setattr(cli_module, "_progress_printer", filling_printer)
    result = _cli("--algo", "a3c", "--env", "CartPole-v1", "--threads", "2", "--frames", "1e7", "--max-seconds", "120",
                  "--checkpoint-seconds", "0", "--eval-episodes", "1", "--out", str(out))
    assert filled, (result.output, result.exception, result.exit_code)
    line = _one_line_error(result, 1, f"{out / 'episodes.csv'}: No space left on device", "(free disk space)",
                           "rerun the same command")
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "failed" and line == f"harness: error: {status['error']}"
    text = (out / "episodes.csv").read_text()
    episodes = pd.read_csv(out / "episodes.csv")
    assert text.endswith("\n") and len(episodes) > 0  # whole rows only
    assert status["frames_done"] >= episodes["frames"].max() > 0  # the frames trained, not 0
    _no_temporary_files(out)
    assert not (out / store.RESERVE).exists()


def test_where_not_even_status_json_can_be_written_the_run_still_ends_with_one_line(small_disk):
    """A disk with 16 KiB free: room for the lock, config.json, status.json and the first 4 KiB of
    episodes.csv, none for the space a run holds back. episodes.csv fills the disk, and the final
    status.json cannot be written."""
    disk = small_disk("1m")
    filler = fill(disk)
    os.truncate(filler, filler.stat().st_size - 16 * 1024)  # exactly four 4 KiB pages free
    out = disk / "run"
    proc = _harness("train", "--algo", "a3c", "--env", "CartPole-v1", "--frames", "1e7", "--max-seconds", "120",
                    "--checkpoint-seconds", "0", "--out", str(out))
    line = _one_error_line(proc, 1, f"{out / 'episodes.csv'}: No space left on device", "(free disk space)",
                           "rerun the same command", f"{out / 'status.json'} could not be written either",
                           "it still says 'running'")
    assert "\n" not in line
    # status.json holds what this attempt wrote as it started; `harness status` shows such a run as cut off
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "running" and status["frames_done"] == 0
    text = (out / "episodes.csv").read_text()
    assert text.endswith("\n") and len(pd.read_csv(out / "episodes.csv")) > 0  # whole rows only
    _no_temporary_files(out)
    assert not (out / store.RESERVE).exists()


def test_a_read_only_file_system_as_out_is_one_line_exit_2(small_disk):
    disk = small_disk("64k")
    remount(disk, "ro")
    _one_line_error(_cli(*TINY, "--out", str(disk / "run")), 2, "Read-only file system", "another --out")
    assert not (disk / "run").exists()


def test_an_environment_whose_optional_dependency_is_missing_is_one_line_exit_2(tmp_path):
    import importlib.util

    if importlib.util.find_spec("Box2D") is not None:
        pytest.skip("Box2D is installed here, so LunarLander-v3 builds")
    out = tmp_path / "run"
    proc = _harness("train", "--algo", "a3c", "--env", "LunarLander-v3", "--frames", "3000", "--out", str(out))
    _one_error_line(proc, 2, "environment 'LunarLander-v3' cannot be built", "DependencyNotInstalled",
                    "pip install swig", 'gymnasium[box2d]')
    assert not out.exists()  # a bad argument: nothing written


def test_an_environment_whose_entry_point_module_is_missing_is_one_line_exit_2(tmp_path):
    import gymnasium

    from harness.config import ConfigError

    gymnasium.register("MissingHere-v0", entry_point="no_such_module_xyz:Env")
    try:
        with pytest.raises(ConfigError, match="environment 'MissingHere-v0' cannot be built: ModuleNotFoundError: "
                                              "No module named 'no_such_module_xyz'"):
            make_run_config(algorithm="a3c", env="MissingHere-v0", frames=3000)
    finally:
        del gymnasium.registry["MissingHere-v0"]
    # the same from the command line, the id registered by an --env-module
    out = tmp_path / "run"
    proc = _harness("train", "--algo", "a3c", "--env", "Missing-v0", "--env-module", "fault_envs", "--frames", "3000",
                    "--out", str(out))
    _one_error_line(proc, 2, "environment 'Missing-v0' cannot be built", "No module named 'no_such_module_xyz'",
                    "install")
    assert not out.exists()


def test_an_env_module_that_raises_at_import_is_one_line_exit_2(tmp_path):
    out = tmp_path / "run"
    proc = _harness("train", "--algo", "a3c", "--env", "CartPole-v1", "--env-module", "broken_env_module",
                    "--frames", "3000", "--out", str(out))
    _one_error_line(proc, 2, "env module 'broken_env_module' cannot be imported",
                    "RuntimeError: broken_env_module 0.1 is broken: reinstall it")
    assert not out.exists()


def test_an_environment_that_fails_only_in_the_workers_fails_the_run_with_one_line(tmp_path):
    out = tmp_path / "run"
    proc = _harness("train", "--algo", "a3c", "--env", "WorkerOnly-v0", "--env-module", "fault_envs",
                    "--frames", "3000", "--out", str(out))
    line = _one_error_line(proc, 1, "worker 0 raised", "environment 'WorkerOnly-v0' cannot be built",
                           "pip install fake-sim")
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "failed" and line.endswith(status["error"])


# ---------------------------------------------------------------------------------------------- kills
@pytest.mark.slow
def test_no_finished_episode_is_lost_or_duplicated_by_kills_at_random_moments(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "harness.cli", "train", "--algo", "one_step_q", "--env", "CartPole-v1",
           "--threads", "2", "--frames", "120000", "--checkpoint-seconds", "0.3", "--eval-episodes", "1",
           "--out", str(out)]
    rng = np.random.default_rng(0)
    promised = []  # after each kill: the episodes up to the checkpoint, which every resume must keep

    def checkpoint_frames() -> int:
        try:
            return int(torch.load(out / CHECKPOINT, weights_only=False)["frames"])
        except Exception:  # noqa: BLE001 - missing, or being replaced right now
            return -1

    kills = 0
    while (len(promised) < 3 or kills < 4) and kills < 12:
        seen = checkpoint_frames()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if kills % 3 == 2:  # during start-up
            time.sleep(float(rng.uniform(0.2, 3.0)))
        else:  # while training: once it has progressed past the last checkpoint (robust to a slow machine)
            deadline = time.monotonic() + 180
            while checkpoint_frames() <= max(seen, 0) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(float(rng.uniform(0.0, 1.5)))  # then any instant: an update, a CSV append, a checkpoint
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        time.sleep(0.3)  # the workers follow their supervisor (PR_SET_PDEATHSIG)
        frames = checkpoint_frames()
        if frames <= 0 or not (out / "episodes.csv").exists():
            continue
        text = (out / "episodes.csv").read_text()
        rows = pd.read_csv(io.StringIO(text[: text.rfind("\n") + 1]))  # a torn last line is not a finished episode
        if (rows["frames"] <= frames).any():
            promised.append(rows[rows["frames"] <= frames].reset_index(drop=True))
    final = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr
    assert kills >= 4 and len(promised) >= 3, (kills, len(promised))
    episodes = pd.read_csv(out / "episodes.csv")
    assert episodes["frames"].is_monotonic_increasing and not episodes.duplicated().any()
    for kept in promised:
        assert episodes.iloc[: len(kept)].reset_index(drop=True).equals(kept)
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "done" and status["frames_done"] >= 120_000
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
