"""What "score" means in the report, defined once; and the reference numbers shipped with the package.

Score definition (also printed in every report)
-----------------------------------------------
* **Learning curve of a run**: the raw (unclipped) game score of its training episodes
  (``episodes.csv`` ``return``), smoothed by a *centred* moving average over a window of 5% of the
  run's frame budget (``config.json`` ``frames``), placed at each episode's end on the frame axis
  (global frames summed over threads) and on the wall-clock axis (``wall_seconds``, counted from the
  workers' start: ``status.json`` ``startup_seconds`` is subtracted, see ``wall_from_start``).  A centred
  window does not lag, so the time at which a curve reaches a score does not depend on how many
  episodes per second the thread count produces.
* **Final score of a run**: the ``mean_return`` of the run's last evaluation (``evals.csv``) when
  every completed run of that game has at least one evaluation; otherwise, for all runs of that
  game, the mean raw return of the training episodes that ended in the last 10% of the frames the
  run reached (at least its last episode).  Completed runs of one game never mix the two sources;
  the report's ``runs.csv`` says which one each run used.
* Only finished runs (state ``done`` or ``diverged``) enter final-score analyses (learning-rate
  selection, robustness, aggregates); running and interrupted runs are drawn as provisional.
* **A diverged run is a collapse**: its final score is the game's *collapse score*, the lower of the
  game's lower normalisation bound (random play for Atari, human-normalised 0; ``min_score`` of
  ``env_bounds.csv`` otherwise) and the lowest final score of any run of that game in the report
  that ran to the end of its budget (state ``done``: a failed, interrupted or running run's score, or a
  diverged run's score before it diverged, never sets it), so a diverged run never ranks above a run that did not diverge, whatever it scored before it
  diverged (kept in ``runs.csv`` as ``pre_divergence_score``).  Its learning curve drops to the
  collapse score where it diverged and stays there to the end of its frame budget (on the
  wall-clock axis: to the time the budget would have taken at the run's throughput).
* **Normalised score**: Atari games (``is_atari``) are human-normalised,
  ``(score - random) / |human - random|`` (1.0 = human), with the random and human scores of the
  chosen baseline table (``no-op``: Mnih et al. 2015 Extended Data Table 2, the default because the
  harness plays from no-op starts; ``human-start``: Nair et al. 2015 (Gorila), also printed by van
  Hasselt et al. 2015 (Double DQN); the A3C paper's Table S3 has the A3C scores, not these).  Other environments
  are min-max normalised with the bounds in ``harness/data/env_bounds.csv`` (CartPole-v1: 0..500),
  or the observed minimum and maximum final score over the report's ``done`` runs when the environment
  is not listed (over all its runs while none is done yet).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd

from harness.stats import centred_window_mean
from harness.report.load import BASELINES, Run

SMOOTH_FRAC = 0.05  # centred smoothing window, fraction of the frame budget
FINAL_WINDOW_FRAC = 0.10  # final-score window, fraction of the frames reached

SCORE_DEFINITION_HTML = """
<p><b>Learning curve</b> of a run: the raw (unclipped) game score of its training episodes,
smoothed by a centred moving average over 5% of the run's frame budget, placed at each episode's end
on the frame axis (frames summed over all threads) and on the wall-clock axis (counted from the workers'
start, so process start-up is not charged to the method).</p>
<p><b>Final score</b> of a run: the mean return of its last evaluation (<code>evals.csv</code>) when
every completed run of the game has one; otherwise, for all runs of that game, the mean raw return of
the training episodes that ended in the last 10% of the frames the run reached. Only finished runs
(done or diverged) enter final-score analyses; running runs are shown as provisional.</p>
<p><b>Diverged runs</b> are collapses: their final score is the game's collapse score (the lower of
random play, or the environment's lower bound, and the lowest final score of any run of the game that
ran to the end of its budget), and
their learning curves drop to it where they diverged and stay there to the end of the budget.</p>
<p><b>Normalised score</b>: Atari games are human-normalised, (score &minus; random) / |human &minus;
random| (1.0 = human); other environments are min&ndash;max normalised with the stated bounds.</p>
"""


def _data_path(name: str):
    return resources.files("harness").joinpath("data", name)


@lru_cache(maxsize=None)
def paper_table2() -> pd.DataFrame:
    with _data_path("paper_table2.csv").open("r", encoding="utf-8") as f:
        return pd.read_csv(f)


@lru_cache(maxsize=None)
def atari_baselines() -> pd.DataFrame:
    with _data_path("atari_baselines.csv").open("r", encoding="utf-8") as f:
        return pd.read_csv(f)


@lru_cache(maxsize=None)
def env_bounds() -> pd.DataFrame:
    with _data_path("env_bounds.csv").open("r", encoding="utf-8") as f:
        return pd.read_csv(f)


def game_key(name: str) -> str:
    """``ALE/Pong-v5``, ``PongNoFrameskip-v4``, ``Q*bert``, ``Space Invaders`` -> ``pong`` ... ``spaceinvaders``."""
    name = name.split("/")[-1]
    name = re.sub(r"-v\d+$", "", name)
    name = re.sub(r"(NoFrameskip|Deterministic)$", "", name)
    return re.sub(r"[^a-z0-9]", "", name.lower())


@dataclass(frozen=True)
class Normaliser:
    low: float
    high: float
    kind: str  # "human-normalised" | "min-max"
    source: str

    def __call__(self, score):
        span = abs(self.high - self.low)
        return (np.asarray(score, dtype=float) - self.low) / span


def atari_normaliser(game: str, baseline: str = "no-op") -> Normaliser | None:
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, not {baseline!r}")
    table = atari_baselines()
    rows = table[table["game"].map(game_key) == game_key(game)]
    if rows.empty:
        return None
    row = rows.iloc[0]
    suffix = "noop" if baseline == "no-op" else "human_starts"
    return Normaliser(
        low=float(row[f"random_{suffix}"]),
        high=float(row[f"human_{suffix}"]),
        kind="human-normalised",
        source=str(row[f"source_{suffix}"]),
    )


def normaliser_for(game: str, is_atari: bool, baseline: str, observed: np.ndarray) -> Normaliser | None:
    """The normalisation of a game; ``None`` when it cannot be normalised (no spread in the data)."""
    if is_atari:
        norm = atari_normaliser(game, baseline)
        if norm is not None:
            return norm
    table = env_bounds()
    rows = table[table["env"] == game]
    if rows.empty:
        rows = table[table["env"].map(game_key) == game_key(game)]
    if not rows.empty:
        row = rows.iloc[0]
        return Normaliser(float(row["min_score"]), float(row["max_score"]), "min-max", str(row["source"]))
    observed = np.asarray(observed, dtype=float)
    observed = observed[np.isfinite(observed)]
    if observed.size == 0 or observed.max() == observed.min():
        return None
    what = "Atari game without a human/random baseline; " if is_atari else ""
    return Normaliser(float(observed.min()), float(observed.max()), "min-max",
                      f"{what}observed minimum and maximum final score over this report's runs "
                      "(those done, when any is)")


# ----------------------------------------------------------------------------------------------
def frame_budget(run: Run) -> float:
    budget = run.get("frames")
    try:
        budget = float(budget)
    except (TypeError, ValueError):
        budget = float("nan")
    if not np.isfinite(budget) or budget <= 0:
        budget = float(max(run.ep_frames.max(initial=0.0), run.ev_frames.max(initial=0.0), 1.0))
    return budget


def frames_reached(run: Run) -> float:
    done = run.status.get("frames_done")
    reached = max(run.ep_frames.max(initial=0.0), run.ev_frames.max(initial=0.0))
    try:
        reached = max(reached, float(done))
    except (TypeError, ValueError):
        pass
    return float(reached)


def wall_from_start(run: Run, wall):
    """Wall-clock seconds counted from the workers' start (the run's first update) instead of the
    run's start: ``status.json`` ``startup_seconds`` (process spawn, imports, environments, network)
    is subtracted, so that time-to-reference does not charge short runs with start-up. Runs without
    that key are left as they are."""
    startup = _number(run.status.get("startup_seconds"), 0.0)
    if not np.isfinite(startup) or startup <= 0:
        return wall
    return np.maximum(np.asarray(wall, dtype=float) - startup, 0.0)


CURVE_SOURCES = ("train", "eval")


def learning_curve(run: Run, smooth_frac: float = SMOOTH_FRAC, collapse: float | None = None,
                   source: str = "train") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(frames, wall_seconds, score)`` of a run (see module doc).

    ``source="train"``: the smoothed return at each training episode's end.  ``source="eval"``: the
    mean return of each evaluation snapshot (``evals.csv``; the evaluation policy, no smoothing) at
    the frames and training time at which the snapshot was taken.
    ``collapse``: for a diverged run, its collapse score; the curve then drops to it at the frame
    where the run diverged and stays there to the end of the frame budget.
    """
    if source == "eval":
        frames, wall, smoothed = run.ev_frames, wall_from_start(run, run.ev_wall), run.ev_return
    elif source == "train":
        frames, wall = run.ep_frames, wall_from_start(run, run.ep_wall)
        smoothed = (centred_window_mean(frames, run.ep_return, smooth_frac * frame_budget(run)) if frames.size
                    else np.empty(0))
    else:
        raise ValueError(f"curve source must be one of {', '.join(CURVE_SOURCES)}, not {source!r}")
    if collapse is None or not np.isfinite(collapse):
        return frames, wall, smoothed
    end, budget = frames_reached(run), frame_budget(run)
    wall_end = float(wall_from_start(run, _number(run.status.get("wall_seconds"))))
    if not np.isfinite(wall_end):
        wall_end = float(wall[-1]) if wall.size else 0.0
    # from where it diverged to the end of the budget, at the run's own pace on the wall-clock axis
    start = float(end) if not frames.size or frames[-1] < end else float(np.nextafter(frames[-1], np.inf))
    rate = wall_end / end if end > 0 and wall_end > 0 else 0.0
    extra_f = [start] + ([float(budget)] if budget > start else [])
    extra_w = [wall_end + rate * (f - end) for f in extra_f]
    return (np.concatenate([frames, extra_f]), np.concatenate([wall, extra_w]),
            np.concatenate([smoothed, np.full(len(extra_f), float(collapse))]))


def training_final_score(run: Run, window_frac: float = FINAL_WINDOW_FRAC) -> float:
    if run.ep_frames.size == 0:
        return float("nan")
    end = frames_reached(run)
    inside = run.ep_frames > end - window_frac * end
    if not inside.any():
        inside = run.ep_frames == run.ep_frames.max()
    return float(run.ep_return[inside].mean())


def eval_final_score(run: Run) -> float:
    return float(run.ev_return[-1]) if run.ev_return.size else float("nan")


def final_scores(runs: list[Run], window_frac: float = FINAL_WINDOW_FRAC) -> tuple[np.ndarray, list[str]]:
    """Final score and its source (``"eval"`` / ``"train"`` / ``""``) for the runs of *one game*.

    Evaluations are used when every completed (``done``) run of the game with data has one; runs
    that are not done and have no evaluation (running, diverged) then fall back to their training
    score, which is marked as such.
    """
    basis = [r for r in runs if r.state == "done" and r.has_data] or [r for r in runs if r.has_data]
    use_eval = bool(basis) and all(r.ev_return.size > 0 for r in basis)
    scores, sources = [], []
    for r in runs:
        if use_eval and r.ev_return.size:
            scores.append(eval_final_score(r))
            sources.append("eval")
        else:
            s = training_final_score(r, window_frac)
            scores.append(s)
            sources.append("train" if np.isfinite(s) else "")
    return np.array(scores, dtype=float), sources


# ----------------------------------------------------------------------------------------------
def _number(value, default=float("nan")) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out


#: status.json "phases": where the workers' time went, ms per segment (NaN for runs without it)
PHASE_COLUMNS = ("sync_ms", "act_ms", "learn_ms", "update_ms")
#: status.json "policy_lag": other workers' updates applied between a worker's sync and its update
LAG_COLUMNS = ("lag_mean", "lag_median", "lag_p95", "lag_max")


def method(run: Run) -> str:
    """The report's method key of a run: its algorithm, and ``/virtual`` or ``/sync`` for the other
    schedules (``style.split_method``), so that every analysis tells the schedules apart."""
    algorithm, schedule = str(run.get("algorithm")), str(run.get("schedule") or "hogwild")
    return algorithm if schedule == "hogwild" else f"{algorithm}/{schedule}"


def frames_per_second(run: Run) -> float:
    """Training throughput of a run: ``status.json`` ``virtual_frames_per_second`` for the virtual
    schedule (what N cores would do under its time model), else ``steady_frames_per_second`` (measured
    once every worker is past start-up, so that process start-up of short runs does not pass for the
    method's speed), else ``frames_per_second``, else frames done / wall seconds, else from the episodes."""
    for key in ("virtual_frames_per_second", "steady_frames_per_second", "frames_per_second"):
        fps = _number(run.status.get(key))
        if np.isfinite(fps) and fps > 0:
            return fps
    frames, wall = _number(run.status.get("frames_done")), _number(run.status.get("wall_seconds"))
    if np.isfinite(frames) and np.isfinite(wall) and wall > 0 and frames > 0:
        return frames / wall
    if run.ep_frames.size and run.ep_wall[-1] > 0:
        return float(run.ep_frames[-1] / run.ep_wall[-1])
    return float("nan")


def run_table(runs: list[Run], baseline: str = "no-op", window_frac: float = FINAL_WINDOW_FRAC) -> tuple[pd.DataFrame, dict[str, Normaliser]]:
    """One row per run: its grouping keys, state, final score (raw and normalised) and provenance.

    The row index is the run's position in ``runs``.  Returns the table and the normaliser per game.
    """
    rows = []
    for i, r in enumerate(runs):
        host = r.status.get("host") if isinstance(r.status.get("host"), dict) else {}
        phases = r.status.get("phases") if isinstance(r.status.get("phases"), dict) else {}
        lag = r.status.get("policy_lag") if isinstance(r.status.get("policy_lag"), dict) else {}
        rows.append({
            "run": i,
            "path": str(r.path),
            "suite": r.suite,
            "run_id": r.get("run_id") or r.path.name,
            "algorithm": method(r),
            "schedule": str(r.get("schedule") or "hogwild"),
            "game": str(r.get("game")),
            "is_atari": bool(r.get("is_atari", False)),
            "threads": int(_number(r.get("threads"), 0)),
            "lr": _number(r.get("lr")),
            "seed": r.get("seed"),
            "optimizer": str(r.get("optimizer") or "unknown"),
            "state": r.state,
            "finished": r.finished,
            "frames_budget": frame_budget(r),
            "frames_reached": frames_reached(r),
            "n_episodes": int(r.ep_frames.size),
            "n_evals": int(r.ev_frames.size),
            "wall_seconds": _number(r.status.get("wall_seconds")),
            "frames_per_second": frames_per_second(r),
            **{k: _number(phases.get(k)) for k in PHASE_COLUMNS},
            **{k: _number(lag.get(k[4:])) for k in LAG_COLUMNS},
            "oversubscribed": bool(host.get("oversubscribed", False)),
            "hostname": host.get("hostname"),
            "physical_cores": host.get("physical_cores"),
            "logical_cores": host.get("logical_cores"),
            "cpu_model": host.get("cpu_model"),
            "started_at": r.status.get("started_at"),
            "ended_at": r.status.get("ended_at"),
        })
    table = pd.DataFrame(rows)
    if table.empty:
        return table, {}
    table["progress"] = (table["frames_reached"] / table["frames_budget"]).clip(upper=1.0)
    table["final_score"] = np.nan
    table["score_source"] = ""
    norms: dict[str, Normaliser] = {}
    table["normalised_score"] = np.nan
    table["pre_divergence_score"] = np.nan
    table["collapse_score"] = np.nan
    for game, idx in table.groupby("game").groups.items():
        idx = list(idx)
        scores, sources = final_scores([runs[i] for i in idx], window_frac)
        diverged = table.loc[idx, "state"].to_numpy() == "diverged"
        is_atari = bool(table.loc[idx, "is_atari"].any())
        done = table.loc[idx, "state"].to_numpy() == "done"
        norm = normaliser_for(game, is_atari, baseline, scores[done] if np.isfinite(scores[done]).any() else scores)
        floor = collapse_score(norm, scores[done])
        if diverged.any():
            table.loc[idx, "pre_divergence_score"] = np.where(diverged, scores, np.nan)
            scores = np.where(diverged, floor, scores)
            sources = ["collapse (diverged)" if d else s for d, s in zip(diverged, sources)]
        table.loc[idx, "collapse_score"] = floor
        table.loc[idx, "final_score"] = scores
        table.loc[idx, "score_source"] = sources
        if norm is None:
            continue
        norms[game] = norm
        table.loc[idx, "normalised_score"] = norm(scores)
    return table, norms


def collapse_score(norm: Normaliser | None, scores: np.ndarray) -> float:
    """The score of a diverged run of a game (see module doc): the lower of the game's lower
    normalisation bound and the lowest of ``scores``, the final scores of its ``done`` runs; NaN when
    neither exists."""
    finite = np.asarray(scores, dtype=float)
    finite = finite[np.isfinite(finite)]
    candidates = ([norm.low] if norm is not None else []) + ([float(finite.min())] if finite.size else [])
    return float(min(candidates)) if candidates else float("nan")


PAPER_SCORE_COLUMNS = ["game", "algorithm", "threads", "our_final_score", "n_runs", "paper_a3c_ff_1day",
                       "paper_a3c_ff_4days", "paper_a3c_lstm", "random_human_starts", "human_human_starts",
                       "random_noop", "human_noop"]


def paper_score_table(table: pd.DataFrame, selection: pd.DataFrame) -> pd.DataFrame:
    """Our final scores beside the paper's per-game Atari scores (Table S3, human starts).

    Ours: the mean final score of the finished runs of the selected (top-k) learning rates at each
    algorithm's largest thread count.  The paper's scores come from 57-game runs (t_max 20, 1 or 4
    days of training, human starts), so a short scaling run is not expected to match them.
    """
    base = atari_baselines().assign(key=lambda d: d["game"].map(game_key)).set_index("key")
    chosen = selection[selection["selected"]][["algorithm", "game", "threads", "optimizer", "lr"]]
    runs = table.merge(chosen, on=["algorithm", "game", "threads", "optimizer", "lr"])
    runs = runs[runs["finished"] & runs["is_atari"]]
    rows = []
    for (game, alg), g in runs.groupby(["game", "algorithm"]):
        key = game_key(game)
        if key not in base.index:
            continue
        top = g[g["threads"] == g["threads"].max()]
        b = base.loc[key]
        rows.append({"game": game, "algorithm": alg, "threads": int(top["threads"].iloc[0]),
                     "our_final_score": float(top["final_score"].mean()), "n_runs": len(top),
                     "paper_a3c_ff_1day": b["a3c_ff_1day_human_starts"], "paper_a3c_ff_4days": b["a3c_ff_4days_human_starts"],
                     "paper_a3c_lstm": b["a3c_lstm_human_starts"], "random_human_starts": b["random_human_starts"],
                     "human_human_starts": b["human_human_starts"], "random_noop": b["random_noop"],
                     "human_noop": b["human_noop"]})
    return pd.DataFrame(rows, columns=PAPER_SCORE_COLUMNS)
