"""Results as pandas DataFrames: the one reader of run folders, for notebooks, the report and exports.

::

    from harness import results

    res = results.load("results/minatar2")          # a results folder, several, or one run folder
    res.runs          # one row per run folder (docs/RUN_FORMAT.md, "Reading results with pandas")
    res.episodes      # long form: one row per training episode, keyed by ``run``
    res.evals         # long form: one row per evaluation, keyed by ``run``
    res.problems      # one line per thing that was wrong or missing (a half-written run, a corrupt file)

``runs`` holds what ``harness report`` computes per run, by the same code: the identity keys
(``suite``, ``run_id``, ``algorithm`` as the report's method key with ``/virtual`` or ``/sync`` for
those schedules, ``schedule``, ``game``, ``threads``, ``lr``, ``seed``, ``optimizer``), ``state``,
frames (budget, reached, ``progress``), throughput (``frames_per_second``: the virtual clock's for
virtual runs), time per phase and policy lag where ``status.json`` records them, the machine, the
final score (``final_score`` and ``score_source``: the mean of the last 10% of the frames' training
episodes, or the final evaluation), ``normalised_score``, and for diverged runs the score before
divergence (``pre_divergence_score``) and the collapse score that replaces it (``collapse_score``;
a diverged run is a failure). Each hyperparameter of ``config.json`` is a column ``hp_<name>``.

``episodes`` and ``evals`` carry the integer key ``run`` (a row of ``runs``; join with
``res.episodes.merge(res.runs, on="run")``), ``suite`` and ``run_id``; they are built when first
asked for. Nothing here raises on a bad run folder: it is listed in ``problems`` and skipped, as the
report does. ``load`` raises :class:`ResultsError` (one line) only when a folder does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from harness.report.load import BASELINES, ReportError, RunSet, load_runs
from harness.report.scores import Normaliser, run_table

ResultsError = ReportError  # one-line message; the report's own error, so the CLI reports both alike

HP_PREFIX = "hp_"
EPISODE_COLUMNS = ("run", "suite", "run_id", "frames", "wall_seconds", "return")
EVAL_COLUMNS = ("run", "suite", "run_id", "frames", "wall_seconds", "mean_return")


@dataclass
class Results:
    """What :func:`load` read. ``runs`` is a DataFrame with one row per run folder (index = ``run``)."""

    runs: pd.DataFrame
    problems: list[str]
    suites: dict[str, dict[str, Any]]  # suite name -> {"path": folder, "config": suite.json's content}
    normalisers: dict[str, Normaliser]  # game -> how its scores are normalised (report "normalisation")
    runset: RunSet = field(repr=False)  # the parsed folders (arrays per run), for the report's analyses
    _episodes: pd.DataFrame | None = field(default=None, repr=False)
    _evals: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def hyperparameter_columns(self) -> list[str]:
        return [c for c in self.runs.columns if c.startswith(HP_PREFIX)]

    @property
    def episodes(self) -> pd.DataFrame:
        """Training episodes, one row each: ``run``, ``suite``, ``run_id``, ``frames`` (the run's frame
        counter when the episode ended), ``wall_seconds`` (virtual clock for virtual runs), ``return``."""
        if self._episodes is None:
            self._episodes = self._long("ep", EPISODE_COLUMNS)
        return self._episodes

    @property
    def evals(self) -> pd.DataFrame:
        """Evaluations of the greedy-or-stochastic policy (README "Evaluation"), one row each: ``run``,
        ``suite``, ``run_id``, ``frames``, ``wall_seconds``, ``mean_return``."""
        if self._evals is None:
            self._evals = self._long("ev", EVAL_COLUMNS)
        return self._evals

    def _long(self, kind: str, columns: tuple[str, ...]) -> pd.DataFrame:
        runs = self.runset.runs
        sizes = np.array([getattr(r, f"{kind}_frames").size for r in runs], dtype=np.int64)
        key = np.repeat(np.arange(len(runs), dtype=np.int64), sizes)
        cat = (lambda a: np.concatenate(a) if a else np.empty(0))
        data = {
            "run": key,
            "suite": pd.Categorical(self.runs["suite"].to_numpy()[key] if len(runs) else []),
            "run_id": pd.Categorical(self.runs["run_id"].to_numpy()[key] if len(runs) else []),
            "frames": cat([getattr(r, f"{kind}_frames") for r in runs]).astype(np.int64),
            "wall_seconds": cat([getattr(r, f"{kind}_wall") for r in runs]),
            columns[-1]: cat([getattr(r, f"{kind}_return") for r in runs]),
        }
        return pd.DataFrame(data, columns=list(columns))


def load(paths: str | Path | Iterable[str | Path], *, baseline: str = "no-op", workers: int | None = None,
         skip: Iterable[str | Path] | None = None) -> Results:
    """Read every run folder under ``paths`` (a results folder, a list of them, or one run folder).

    ``baseline``: the human/random table for Atari's human-normalised scores (``no-op`` or
    ``human-start``); other games are normalised min-max as the report does. ``workers``: processes
    that read folders when there are thousands (default: two where there are two cores). ``skip``:
    folders not to descend into (the report passes its own output folder)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    roots = [Path(p) for p in paths]
    if not roots:
        raise ResultsError("no results folder given")
    if baseline not in BASELINES:
        raise ResultsError(f"baseline must be one of {', '.join(BASELINES)}, not {baseline!r}")
    runset = load_runs(roots, skip=[Path(s) for s in (skip or [])], workers=workers)
    table, norms = run_table(runset.runs, baseline)
    if table.empty:
        table = pd.DataFrame(columns=["run", "suite", "run_id", "algorithm", "game", "threads", "lr", "seed", "state"])
    else:
        hps = pd.DataFrame([r.config.get("hyperparameters") if isinstance(r.config.get("hyperparameters"), dict)
                            else {} for r in runset.runs], index=table.index)
        hps = hps.rename(columns=lambda c: f"{HP_PREFIX}{c}")
        for c in hps.columns:  # tuples (a list in JSON) stay one value per cell
            hps[c] = hps[c].map(lambda v: tuple(v) if isinstance(v, list) else v)
        table = pd.concat([table, hps], axis=1)
    table.index.name = None
    return Results(runs=table, problems=list(runset.problems), suites=runset.suites, normalisers=norms, runset=runset)


__all__ = ["Results", "ResultsError", "load", "HP_PREFIX"]
