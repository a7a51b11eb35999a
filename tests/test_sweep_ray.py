"""The smoke suite on a real local Ray instance (no mocks): every run a Ray task working in a scratch
folder, its files shipped back to the driver's results folder; then a run resumed from its shipped
checkpoint through plain (non-streaming) tasks, the mode used for Ray Client addresses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import store
from harness.suite import load_suite

pytest.importorskip("ray", reason="ray is an optional extra: pip install '.[ray]'")

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_smoke_suite_on_a_local_ray_instance(tmp_path):
    from harness.sweep.ray_executor import RayExecutor
    from harness.sweep.run import run_sweep
    from rich.console import Console

    suite = load_suite(ROOT / "suites" / "smoke.yaml")
    results = tmp_path / "results"
    log = tmp_path / "console.txt"
    with open(log, "w") as fh:
        console = Console(file=fh, width=200, highlight=False)
        # the executor the CLI builds for --executor ray without --address: ray.init(num_cpus=2)
        outcome = run_sweep(suite, results, executor="ray", cores=2, console=console, live=False)
    out = log.read_text()
    assert outcome.exit_code == 0, out
    assert "ray executor (local instance): 2 CPUs" in out
    base = results / "smoke"
    planned = sorted(r.run_id for r in suite.runs())
    assert sorted(p.name for p in base.iterdir() if p.is_dir()) == planned
    for rid in planned:
        d = base / rid
        st = store.read_json(d / "status.json")
        assert st["state"] == "done" and st["frames_done"] >= suite.frames, (rid, st)
        # the run happened in a scratch folder on the node; everything came back to the driver
        assert json.loads((d / "config.json").read_text())["run_id"] == rid
        assert (d / "checkpoint.pt").stat().st_size > 0
        assert len((d / "episodes.csv").read_text().splitlines()) >= 2
        assert len((d / "evals.csv").read_text().splitlines()) >= 2
        assert "[runner" in (d / "runner.log").read_text()
        assert not (d / "progress.json").exists()
    assert (base / "suite.json").exists()
    # resume works the same: a run cut off after its last checkpoint resumes from it on Ray; this time
    # through plain tasks that report only at their end (what Ray Client, ray:// addresses, gets)
    victim = base / planned[0]
    st = store.read_json(victim / "status.json")
    st["state"] = "interrupted"
    store.write_json_atomic(victim / "status.json", st)
    with open(log, "w") as fh:
        console = Console(file=fh, width=200, highlight=False)
        outcome = run_sweep(suite, results, executor=RayExecutor(num_cpus=2, streaming=False), console=console,
                            live=False)
    out = log.read_text()
    assert outcome.exit_code == 0, out
    assert "1 to run (1 resumed" in out and f"submit   {planned[0]}" in out
    st = store.read_json(victim / "status.json")
    assert st["state"] == "done" and st["resumed_from_frames"] >= suite.frames  # from the shipped checkpoint
    assert not (victim / "progress.json").exists()
