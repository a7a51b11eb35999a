"""``harness export tensorboard``: run folders as TensorBoard runs (README "Use the results").

One TensorBoard run per run folder, ``OUT/<suite>/<run_id>`` (``OUT/<folder name>`` for a run outside
a suite), read through :mod:`harness.results` so that scores follow the report's rules:

* ``train/return``: each training episode's raw return, at its frame count (the step) and at its
  wall-clock time (the event's time: the run's ``started_at`` plus the episode's ``wall_seconds``;
  the virtual clock for virtual runs), so TensorBoard's STEP axis is frames and its WALL axis is time;
* ``eval/mean_return``: each evaluation's mean return;
* ``train/learning_rate``: the learning rate the run used, annealed linearly from ``lr`` to 0 over
  the frame budget (the paper's schedule, README "What the engine does"), at 1% steps of the budget;
* ``perf/frames_per_second`` and ``lag/mean``, ``lag/median``, ``lag/p95``, ``lag/max`` (policy lag,
  where ``status.json`` records it), at the frames the run had reached when exported;
* the HParams plug-in: the run's method, game, threads, learning rate, seed, optimizer, schedule and
  hyperparameters, with ``hparams/final_score`` and ``hparams/normalised_score`` once it has finished
  (a diverged run scores its collapse score, as in the report) and its status (success, failure,
  running), so the HParams dashboard shows a sweep's learning-rate robustness.

Incremental: ``OUT/.../.harness-export.json`` records what each run has had written; a later export
writes only new episodes, evaluations and status points, and the final scores when they are new or
have changed (a collapse score moves when more runs finish). Runs of a sweep still in progress can be
exported again and again while it runs.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import threading
from pathlib import Path
from typing import Any, Iterable

import numpy as np

STATE_FILE = ".harness-export.json"
STATE_VERSION = 1
LR_STEPS = 100  # the learning rate is written at 1% steps of the budget
EXTRA_HINT = "pip install 'async-rl-harness[tensorboard]'"


class ExportError(ValueError):
    """One-line message for the user (missing extra, missing folder)."""


def _writer_class():
    try:
        from torch.utils.tensorboard import SummaryWriter
        from tensorboard.plugins.hparams import summary_v2  # noqa: F401 - needed below
    except ImportError:
        raise ExportError(f"harness export tensorboard needs the tensorboard extra, which is not installed: {EXTRA_HINT}") from None
    return SummaryWriter


def _epoch(text: Any, fallback: float) -> float:
    try:
        t = _dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return fallback
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return t.timestamp()


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _hparam_value(v: Any) -> Any:
    """HParams hold numbers, strings and booleans: anything else is shown as text."""
    if isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v) if isinstance(v, (float, np.floating)) else int(v)
    return str(v)


def _hparams(row: dict[str, Any]) -> dict[str, Any]:
    keys = ["algorithm", "game", "threads", "lr", "seed", "optimizer", "schedule", "suite"]
    out = {k: _hparam_value(row[k]) for k in keys if row.get(k) is not None and not (
        isinstance(row.get(k), float) and math.isnan(row[k]))}
    for k, v in row.items():
        if k.startswith("hp_") and v is not None and not (isinstance(v, float) and math.isnan(v)):
            out[k] = _hparam_value(v)
    return out


METRICS = ("hparams/final_score", "hparams/normalised_score")


def _hparams_summaries(hp: dict[str, Any], trial: str, start: float):
    from tensorboard.plugins.hparams import summary_v2 as hp_summary

    config = hp_summary.hparams_config_pb(hparams=[hp_summary.HParam(k) for k in sorted(hp)],
                                          metrics=[hp_summary.Metric(m) for m in METRICS], time_created_secs=start)
    return config, hp_summary.hparams_pb(hp, trial_id=trial, start_time_secs=start)


def _session_end(status: int, end: float):
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    info = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=end)
    meta = metadata.create_summary_metadata(plugin_data_pb2.HParamsPluginData(session_end_info=info))
    return Summary(value=[Summary.Value(tag=metadata.SESSION_END_INFO_TAG, metadata=meta, tensor=metadata.NULL_TENSOR)])


def _read_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("version") == STATE_VERSION else {}


def _write_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state | {"version": STATE_VERSION}, indent=1))
    os.replace(tmp, path)


def _new_rows(frames: np.ndarray, done: int, last: float | None) -> int:
    """Index of the first row not written yet: after the ``done`` rows written before, unless the file
    no longer starts with them (a run resumed from a checkpoint rewrote its tail): then after the
    last frame written."""
    if last is None:
        return 0
    if 0 < done <= frames.size and frames[done - 1] == last:
        return done
    return int(np.searchsorted(frames, last, side="right"))


def export_tensorboard(paths: Iterable[str | Path], out: str | Path, baseline: str = "no-op") -> dict[str, int]:
    """Write (or bring up to date) one TensorBoard run per run folder under ``paths`` into ``out``.
    Returns counts: runs written to, episodes, evaluations, runs finished in this export."""
    SummaryWriter = _writer_class()
    out = Path(out)
    roots = [Path(p) for p in paths]
    thread_errors: list[BaseException] = []
    hook = threading.excepthook
    threading.excepthook = lambda args: thread_errors.append(args.exc_value)  # no traceback on the terminal
    try:
        return _export(roots, out, baseline, SummaryWriter, thread_errors)
    finally:
        threading.excepthook = hook


def _export(roots: list[Path], out: Path, baseline: str, SummaryWriter, thread_errors: list) -> dict[str, int]:
    from harness import results
    from tensorboard.plugins.hparams import api_pb2

    res = results.load(roots, baseline=baseline, skip=[out])
    counts = {"runs": 0, "episodes": 0, "evals": 0, "finished": 0, "unchanged": 0}
    runset = res.runset.runs
    for row in res.runs.to_dict("records"):
        run = runset[int(row["run"])]
        where = out / str(row["suite"]) / str(row["run_id"]) if row.get("suite") else out / run.path.name
        where.mkdir(parents=True, exist_ok=True)
        state_path = where / STATE_FILE
        state = _read_state(state_path)
        start = _epoch(run.status.get("started_at"), (run.path / "config.json").stat().st_mtime)
        first_ep = _new_rows(run.ep_frames, int(state.get("episodes", 0)), state.get("episode_frames"))
        first_ev = _new_rows(run.ev_frames, int(state.get("evals", 0)), state.get("eval_frames"))
        reached = float(row["frames_reached"]) if _finite(row.get("frames_reached")) is not None else 0.0
        finished = bool(row["finished"]) or row["state"] == "failed"
        score = (_finite(row.get("final_score")), _finite(row.get("normalised_score")))
        todo_final = finished and (not state.get("final") or state.get("scores") != list(score))
        todo_status = reached > float(state.get("status_frames", -1.0))
        if (first_ep >= run.ep_frames.size and first_ev >= run.ev_frames.size and not todo_final
                and not todo_status and state.get("hparams")):
            counts["unchanged"] += 1
            continue
        before = set(where.glob("events.out.tfevents.*"))
        thread_errors.clear()
        w = None
        try:
            w = SummaryWriter(log_dir=str(where), max_queue=1000, flush_secs=3600)
            fw = w._get_file_writer()
            if not state.get("hparams"):
                config, session = _hparams_summaries(_hparams(row), str(row["run_id"]), start)
                fw.add_summary(config, walltime=start)
                fw.add_summary(session, walltime=start)
                state["hparams"] = True
            for f, t, r in zip(run.ep_frames[first_ep:], run.ep_wall[first_ep:], run.ep_return[first_ep:]):
                w.add_scalar("train/return", float(r), int(f), walltime=start + float(t))
            if run.ep_frames.size:
                state.update(episodes=int(run.ep_frames.size), episode_frames=float(run.ep_frames[-1]))
            for f, t, r in zip(run.ev_frames[first_ev:], run.ev_wall[first_ev:], run.ev_return[first_ev:]):
                w.add_scalar("eval/mean_return", float(r), int(f), walltime=start + float(t))
            if run.ev_frames.size:
                state.update(evals=int(run.ev_frames.size), eval_frames=float(run.ev_frames[-1]))
            counts["episodes"] += max(0, run.ep_frames.size - first_ep)
            counts["evals"] += max(0, run.ev_frames.size - first_ev)
            budget, lr = _finite(row.get("frames_budget")), _finite(row.get("lr"))
            wall = _finite(run.status.get("wall_seconds")) or 0.0
            if todo_status:
                if budget and lr is not None:  # the linear anneal, at 1% steps up to the frames reached
                    step = budget / LR_STEPS
                    k0 = int(math.floor(float(state.get("lr_frames", -step)) / step)) + 1
                    k1 = int(math.floor(min(reached, budget) / step))
                    for k in range(max(k0, 0), k1 + 1):
                        f = k * step
                        t = start + (wall * f / reached if reached > 0 else 0.0)
                        w.add_scalar("train/learning_rate", lr * max(0.0, 1.0 - f / budget), int(f), walltime=t)
                    state["lr_frames"] = k1 * step
                fps = _finite(row.get("frames_per_second"))
                if fps is not None:
                    w.add_scalar("perf/frames_per_second", fps, int(reached), walltime=start + wall)
                for key in ("lag_mean", "lag_median", "lag_p95", "lag_max"):
                    v = _finite(row.get(key))
                    if v is not None:
                        w.add_scalar(f"lag/{key[4:]}", v, int(reached), walltime=start + wall)
                state["status_frames"] = reached
            if todo_final:
                end = _epoch(run.status.get("ended_at"), start + wall)
                step = int(budget or reached)
                for tag, value in zip(METRICS, score):
                    if value is not None:
                        w.add_scalar(tag, value, step, walltime=end)
                status = api_pb2.STATUS_SUCCESS if row["state"] == "done" else api_pb2.STATUS_FAILURE
                if not state.get("final"):
                    fw.add_summary(_session_end(status, end), walltime=end)
                    counts["finished"] += 1
                state.update(final=True, scores=list(score))
            w.flush()
            w.close()
            if thread_errors:  # TensorBoard writes from a thread of its own: its failure is this run's
                raise thread_errors[0]
            _write_state(state_path, state)
        except BaseException:
            # a full disk, an interruption: take back this attempt's event file, so that the state file
            # (unchanged) tells the truth and the next export writes these events once, not twice
            if w is not None:
                try:
                    w.close()  # its writer thread raises the disk's error again: it is the one we report
                except BaseException:  # noqa: BLE001
                    pass
            for new_file in set(where.glob("events.out.tfevents.*")) - before:
                new_file.unlink(missing_ok=True)
            raise
        counts["runs"] += 1
    counts["problems"] = len(res.problems)
    return counts


__all__ = ["export_tensorboard", "ExportError", "STATE_FILE"]
