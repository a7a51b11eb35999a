"""A suite's runs on disk: where each lives, what state it is in, what is left, what it will cost.

Each planned run lives in ``<results dir>/<suite name>/<run id>/`` (docs/RUN_FORMAT.md). Its state is
read from its ``status.json``:

======================  ==============================================================
on disk                 what a sweep does with it
======================  ==============================================================
``done``, ``diverged``  finished (a divergence is a result): skipped
``failed``              skipped; rerun (resuming from its checkpoint) with --retry-failed
``interrupted``         resumed from its checkpoint
``running`` / missing   resumed (the process that ran it is gone: a killed sweep)
======================  ==============================================================

A run folder whose ``config.json`` disagrees with the suite (another frame budget, other
hyperparameters) is never overwritten: planning stops with an error naming it.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import store
from harness.config import identity_differences
from harness.suite import PlannedRun, Suite

FINISHED = ("done", "diverged")
RUNNING = ("running", "evaluating")
PROGRESS_FILE = "progress.json"
RUNNER_LOG = "runner.log"
#: Training frames/s per actor-learner thread used by --dry-run when no finished run has been
#: measured, on a 2-core AMD EPYC VM shared with other jobs, on the fast path (the default gradient)
#: with its compiled loops (docs/BENCHMARKS.md, 2026-12-06): Atari with the Mnih-2013 network about
#: 1,000-1,300 frames/s (~300 agent steps/s x 4 frames); CartPole-v1 with the small MLP 14,600-19,100
#: (docs/bench/compiled-cartpole.csv); MinAtar's 10x10 grids with the small-image network 4,500-7,300
#: (docs/bench/ab-compiled-minatar.csv). Through autograd (--gradient autograd) about a third of the
#: last two. Finished runs under --results-dir replace them.
DEFAULT_FPS_PER_THREAD = {"atari": 1000.0, "image": 6000.0, "vector": 15000.0}


class PlanError(ValueError):
    """The plan cannot be carried out as asked (one line)."""


@dataclass
class RunRecord:
    """A planned run and what is known of it now."""

    run: PlannedRun
    dir: Path
    state: str = "pending"  # pending (no status yet), or a status.json state
    frames_done: int = 0
    error: str | None = None
    fps: float | None = None  # live while running, final when finished
    wall_seconds: float | None = None
    oversubscribed: bool = False
    node: str | None = None  # where a running run runs (progress.json "node": host, or Ray node)
    #: its final state is known to the sweep but could not be written to status.json (a full disk):
    #: the folder is not read again, or the state would go back to what the file still says
    unrecorded: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def threads(self) -> int:
        return self.run.config.threads

    @property
    def cores(self) -> int:
        """Cores the run occupies: one per worker under Hogwild; one in all for the virtual and
        synchronous schedules (one process, whatever the number of actor-learners)."""
        return self.run.config.threads if self.run.config.schedule == "hogwild" else 1

    @property
    def frames(self) -> int:
        return self.run.config.frames

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


def suite_dir(results_dir: Path, suite: Suite) -> Path:
    return Path(results_dir) / suite.name


def config_mismatch(run_dir: Path, run: PlannedRun) -> str | None:
    """What differs between ``run_dir/config.json`` and the planned config (None: same or absent);
    see :func:`harness.config.identity_differences`."""
    on_disk = store.read_json(Path(run_dir) / "config.json")
    if on_disk is None:
        return None
    diffs = identity_differences(on_disk, run.config.to_dict())
    return diffs[0].replace(" now", " in the suite") if diffs else None


def read_record(record: RunRecord) -> RunRecord:
    """Refresh ``record`` from its folder's status.json (and progress.json while running)."""
    if record.unrecorded:
        return record
    status = store.read_json(record.dir / "status.json")
    if status is None:
        record.state = "pending"
        prog = store.read_json(record.dir / PROGRESS_FILE)
        record.frames_done = int(prog.get("frames", 0)) if prog else 0
        return record
    record.state = str(status.get("state") or "running")
    record.frames_done = int(status.get("frames_done") or 0)
    record.error = status.get("error")
    record.fps = status.get("frames_per_second")
    record.wall_seconds = status.get("wall_seconds")
    record.oversubscribed = bool((status.get("host") or {}).get("oversubscribed"))
    if record.state in RUNNING:
        prog = store.read_json(record.dir / PROGRESS_FILE)
        if prog:
            record.frames_done = max(record.frames_done, int(prog.get("frames", 0)))
            record.fps = prog.get("frames_per_second")
            record.node = prog.get("node") or record.node
    return record


def records(suite: Suite, results_dir: Path, check: bool = True) -> list[RunRecord]:
    """Every planned run with its state on disk; raises PlanError if a folder holds another config."""
    base = suite_dir(results_dir, suite)
    out = []
    mismatches = []
    for run in suite.runs():
        rec = RunRecord(run, base / run.run_id)
        if rec.dir.exists():
            if check:
                why = config_mismatch(rec.dir, run)
                if why:
                    mismatches.append((rec.dir, why))
            read_record(rec)
        out.append(rec)
    if mismatches:
        d, why = mismatches[0]
        more = f" (and {len(mismatches) - 1} more run folder(s))" if len(mismatches) > 1 else ""
        raise PlanError(f"{d}: its config.json differs from the suite ({why}){more}; a finished run is never "
                        f"overwritten: give the suite another name, use another --results-dir, or delete the folder")
    return out


def to_run(rec: RunRecord, retry_failed: bool = False) -> bool:
    """Whether a sweep (re)starts this run."""
    if rec.state in FINISHED:
        return False
    if rec.state == "failed":
        return retry_failed
    return True  # pending, running (its process is gone), evaluating, interrupted


def extra_folders(suite: Suite, results_dir: Path) -> list[Path]:
    """Run folders under the suite folder that the suite no longer plans (e.g. after an edit)."""
    base = suite_dir(results_dir, suite)
    if not base.is_dir():
        return []
    planned = {r.run_id for r in suite.runs()}
    return sorted(p for p in base.iterdir() if p.is_dir() and (p / "config.json").exists() and p.name not in planned)


# ------------------------------------------------------------------------------------------------
# Cost estimate
@dataclass
class Throughput:
    """Training frames/s per thread, looked up by (algorithm, game), then game, then kind."""

    by_algo_game: dict[tuple[str, str], float]
    by_game: dict[str, float]
    by_kind: dict[str, float]
    n_measured: int

    def per_thread(self, algorithm: str, game: str, kind: str) -> tuple[float, str]:
        """``kind``: "atari", or "image" / "vector" for other environments (``throughput_kind``);
        measured runs of other games are pooled as Atari or not."""
        if (algorithm, game) in self.by_algo_game:
            return self.by_algo_game[(algorithm, game)], "measured"
        if game in self.by_game:
            return self.by_game[game], "measured (other algorithms)"
        if kind == "atari" and kind in self.by_kind:
            return self.by_kind[kind], f"measured (other {kind} games)"
        return DEFAULT_FPS_PER_THREAD[kind], "default"


def measured_throughput(results_dir: Path) -> Throughput:
    """Per-thread training throughput of finished, not oversubscribed runs under ``results_dir``."""
    samples: dict[str, dict] = {"ag": defaultdict(list), "g": defaultdict(list), "k": defaultdict(list)}
    n = 0
    root = Path(results_dir)
    if root.is_dir():
        for status_path in root.rglob("status.json"):
            status = store.read_json(status_path)
            config = store.read_json(status_path.parent / "config.json")
            if not status or not config or status.get("state") != "done":
                continue
            fps = status.get("frames_per_second")
            threads = config.get("threads") if config.get("schedule", "hogwild") == "hogwild" else 1
            if not fps or not threads or (status.get("host") or {}).get("oversubscribed"):
                continue
            per = float(fps) / int(threads)
            if not math.isfinite(per) or per <= 0:
                continue
            n += 1
            algo, game = str(config.get("algorithm")), str(config.get("game"))
            samples["ag"][(algo, game)].append(per)
            samples["g"][game].append(per)
            if config.get("is_atari"):
                samples["k"]["atari"].append(per)
    med = {k: {key: statistics.median(v) for key, v in d.items()} for k, d in samples.items()}
    return Throughput(med["ag"], med["g"], med["k"], n)


@dataclass
class Estimate:
    core_hours: float  # all planned runs
    core_hours_left: float  # runs not finished yet
    sources: dict[str, int]  # "measured"/"default" -> number of runs estimated that way
    n_measured: int


def throughput_kind(cfg) -> str:
    """"atari", "image" (other image observations: MinAtar's grids) or "vector"."""
    from harness.config import observation_kind

    if cfg.env_spec.is_atari:
        return "atari"
    return observation_kind(cfg.env_spec, cfg.env_settings)


def estimate(recs: list[RunRecord], results_dir: Path) -> Estimate:
    tp = measured_throughput(results_dir)
    total = left = 0.0
    sources: dict[str, int] = defaultdict(int)
    kinds: dict[str, str] = {}
    for rec in recs:
        cfg = rec.run.config
        if cfg.env_spec.env_id not in kinds:
            kinds[cfg.env_spec.env_id] = throughput_kind(cfg)
        per, src = tp.per_thread(cfg.algorithm, cfg.env_spec.game, kinds[cfg.env_spec.env_id])
        sources["default" if src == "default" else "measured"] += 1
        hours = cfg.frames / per / 3600.0  # = wall hours x threads, when throughput scales linearly
        total += hours
        if not rec.finished:
            left += hours * max(0.0, 1.0 - rec.frames_done / cfg.frames)
    return Estimate(total, left, dict(sources), tp.n_measured)


def machine_cores() -> int:
    """Cores a local sweep packs runs onto: usable (affinity) cores, at most the physical ones."""
    import psutil

    physical = psutil.cpu_count(logical=False) or store.usable_cores()
    return max(1, min(store.usable_cores(), physical))
