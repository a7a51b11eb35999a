"""Find and read run folders (docs/RUN_FORMAT.md) without ever failing on a bad one.

A *run folder* is a directory holding ``config.json``.  A directory holding ``status.json`` or
``episodes.csv`` but no ``config.json`` is a half-written run: it is listed as a problem and skipped.
Everything that is wrong or missing is recorded as a one-line message in ``RunSet.problems``; the
report prints them, it never raises on a single run's content.

``suite.json`` / ``suite.yaml`` at the top of a results directory (``results/<suite>/suite.json``)
is read as that suite's configuration (its optional ``reference_scores`` mapping game -> score is
used by the speedup analysis).
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPORT_MARKER = ".harness-report"  # written into a report folder so a later scan skips it
FINISHED_STATES = ("done", "diverged")
STATES = ("running", "done", "failed", "diverged", "interrupted")
SUITE_FILES = ("suite.json", "suite.yaml", "suite.yml")
GROUP_KEYS = ("algorithm", "game", "threads", "lr", "seed", "optimizer")


BASELINES = ("no-op", "human-start")  # human/random tables for human-normalised Atari scores


class ReportError(ValueError):
    """Nothing (or nothing usable) to report; the message is one line meant for the user."""


def parse_reference(text: str) -> tuple[str, float]:
    """``"Pong=12.5"`` -> ``("Pong", 12.5)``; raises ``ValueError`` with a one-line message."""
    game, sep, score = text.partition("=")
    if not sep or not game.strip() or not score.strip():
        raise ValueError(f"expected GAME=SCORE, got {text!r}")
    try:
        value = float(score)
    except ValueError:
        raise ValueError(f"score in {text!r} is not a number") from None
    if not np.isfinite(value):
        raise ValueError(f"score in {text!r} is not finite")
    return game.strip(), value


@dataclass
class Run:
    """One run folder, parsed.  Arrays are sorted by ``frames`` (episodes) / ``frames`` (evals)."""

    path: Path
    suite: str | None
    config: dict[str, Any]
    status: dict[str, Any]
    ep_frames: np.ndarray
    ep_wall: np.ndarray
    ep_return: np.ndarray
    ev_frames: np.ndarray
    ev_wall: np.ndarray
    ev_return: np.ndarray
    problems: list[str] = field(default_factory=list)

    @property
    def state(self) -> str:
        state = self.status.get("state")
        return state if state in STATES else "unknown"

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def has_data(self) -> bool:
        return self.ep_frames.size > 0 or self.ev_frames.size > 0

    def get(self, key: str, default: Any = None) -> Any:
        return self.config.get(key, default)


@dataclass
class RunSet:
    runs: list[Run]
    problems: list[str]
    suites: dict[str, dict[str, Any]]  # suite name -> {"path": str, "config": dict}
    roots: list[Path]


# ----------------------------------------------------------------------------------------------
def _read_json(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None, "missing"
    except (OSError, ValueError) as exc:
        return None, f"unreadable ({type(exc).__name__})"
    if not isinstance(data, dict):
        return None, "not a JSON object"
    return data, None


def _read_columns(path: Path, columns: tuple[str, ...]) -> tuple[np.ndarray | None, str | None]:
    """Read the named numeric columns of a CSV into an ``(n, len(columns))`` float array.

    Lines with the wrong number of fields or unparsable numbers (a half-written last line) are
    skipped and counted.  Returns ``(None, reason)`` when the file is missing or has no header.
    """
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except FileNotFoundError:
        return None, "missing"
    except OSError as exc:
        return None, f"unreadable ({type(exc).__name__})"
    lines = text.splitlines()
    if not lines:
        return None, "empty (no header)"
    header = [h.strip() for h in lines[0].split(",")]
    try:
        cols = [header.index(c) for c in columns]
    except ValueError:
        return None, f"header lacks one of {', '.join(columns)}"
    body = [ln for ln in lines[1:] if ln.strip()]
    if not body:
        return np.empty((0, len(columns))), None
    width = len(header)
    try:  # fast path: a well-formed file
        rows = [ln.split(",") for ln in body]
        if any(len(r) != width for r in rows):
            raise ValueError
        return np.array(rows, dtype=object)[:, cols].astype(float), None
    except ValueError:
        pass
    good, bad = [], 0
    for r in csv.reader(io.StringIO("\n".join(body))):
        try:
            if len(r) != width:
                raise ValueError
            good.append([float(r[c]) for c in cols])
        except ValueError:
            bad += 1
    arr = np.array(good, dtype=float).reshape(-1, len(columns))
    return arr, (f"{bad} malformed line(s) ignored" if bad else None)


def _sorted_by_first(arr: np.ndarray) -> np.ndarray:
    if arr.size == 0:
        return arr
    return arr[np.argsort(arr[:, 0], kind="stable")]


def read_run(path: Path, suite: str | None = None) -> tuple[Run | None, list[str]]:
    """Parse one run folder.  Returns ``(None, problems)`` when it cannot be used at all."""
    name = str(path)
    config, why = _read_json(path / "config.json")
    if config is None:
        return None, [f"{name}: config.json {why}; run skipped"]
    missing = [k for k in ("algorithm", "game", "threads") if k not in config]
    if missing:
        return None, [f"{name}: config.json lacks {', '.join(missing)}; run skipped"]
    problems: list[str] = []
    status, why = _read_json(path / "status.json")
    if status is None:
        problems.append(f"{name}: status.json {why} (treated as still running)")
        status = {}
    state = status.get("state")
    if state == "failed":
        err = status.get("error") or "no error message"
        problems.append(f"{name}: run failed: {str(err).splitlines()[0] if str(err) else err}")
    elif state == "interrupted":
        problems.append(f"{name}: run interrupted at {status.get('frames_done', '?')} frames")

    ep, why = _read_columns(path / "episodes.csv", ("frames", "wall_seconds", "return"))
    if why:
        problems.append(f"{name}: episodes.csv {why}")
    ep = _sorted_by_first(ep if ep is not None else np.empty((0, 3)))
    ev, why = _read_columns(path / "evals.csv", ("frames", "wall_seconds", "mean_return"))
    if why and why != "missing":
        problems.append(f"{name}: evals.csv {why}")
    elif why == "missing" and state == "done":
        problems.append(f"{name}: evals.csv missing although the run is done")
    ev = _sorted_by_first(ev if ev is not None else np.empty((0, 3)))
    if ep.shape[0] == 0 and ev.shape[0] == 0 and state not in ("failed",):
        problems.append(f"{name}: no finished episode or evaluation yet (state {state or 'unknown'})")
    ok_ep = np.isfinite(ep).all(axis=1)
    ep = ep[ok_ep]
    ev = ev[np.isfinite(ev).all(axis=1)]
    run = Run(
        path=path,
        suite=config.get("suite") or suite,
        config=config,
        status=status,
        ep_frames=ep[:, 0],
        ep_wall=ep[:, 1],
        ep_return=ep[:, 2],
        ev_frames=ev[:, 0],
        ev_wall=ev[:, 1],
        ev_return=ev[:, 2],
        problems=problems,
    )
    return run, problems


def read_suite_file(directory: Path) -> tuple[dict[str, Any] | None, str | None]:
    for fname in SUITE_FILES:
        path = directory / fname
        if not path.is_file():
            continue
        if fname.endswith(".json"):
            data, why = _read_json(path)
            return data, (f"{path}: {why}" if why else None)
        try:
            import yaml

            with open(path, encoding="utf-8") as f:
                data = yaml.safe_load(f)
        except Exception as exc:  # noqa: BLE001 - any YAML problem is reported, not raised
            return None, f"{path}: unreadable ({type(exc).__name__})"
        if not isinstance(data, dict):
            return None, f"{path}: not a mapping"
        return data, None
    return None, None


def discover(roots: list[Path], skip: list[Path] | None = None) -> tuple[list[tuple[Path, str | None]], list[str], dict[str, dict]]:
    """Walk the results directories.  Returns (run folders with their suite, problems, suites)."""
    skip_set = {p.resolve() for p in (skip or [])}
    found: list[tuple[Path, str | None]] = []
    problems: list[str] = []
    suites: dict[str, dict] = {}
    for root in roots:
        top, real_top = str(root), root.resolve()
        for dirpath, dirnames, filenames in os.walk(top):
            here = Path(dirpath)
            # os.walk does not follow symbolic links, so every folder it visits lies under the root's
            # real path: no resolve() (a system call per path component) per run folder
            real = real_top / dirpath[len(top):].lstrip(os.sep) if dirpath != top else real_top
            names = set(filenames)
            if REPORT_MARKER in names or real in skip_set:
                dirnames[:] = []
                continue
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            if "config.json" in names:
                found.append((here, _suite_of(here, real, real_top, suites)))
                dirnames[:] = []
                continue
            if names & {"status.json", "episodes.csv", "evals.csv"}:
                problems.append(f"{here}: no config.json (half-written run folder); skipped")
                dirnames[:] = []
                continue
            if names & set(SUITE_FILES):
                data, why = read_suite_file(here)
                if why:
                    problems.append(why)
                if data is not None:
                    name = str(data.get("name") or here.name)
                    suites.setdefault(name, {"path": str(here), "config": data, "dir": real})
    return found, problems, suites


def _suite_of(run_dir: Path, real: Path, real_root: Path, suites: dict[str, dict]) -> str | None:
    """The suite of a run folder (``real``: its resolved path): the suite file's folder above it,
    else its parent folder's name (none for a run given as the root itself)."""
    for name, info in suites.items():
        if info["dir"] in real.parents:
            return name
    parent = run_dir.parent
    return parent.name if parent != run_dir and real != real_root else None


#: from this many run folders on, two forked processes read them (each folder costs 1-2 ms to parse)
PARALLEL_READ_RUNS = 2000


def default_workers() -> int:
    """Processes a report uses by default, to read run folders and to draw figures: two, or one on a
    single core (measured on a 2-core machine, docs/BENCHMARKS.md; more were never tried)."""
    return max(1, min(2, os.cpu_count() or 1))


def _read_all(found: list[tuple[Path, str | None]], workers: int | None = None) -> list[tuple[Run | None, list[str]]]:
    import multiprocessing as mp

    workers = default_workers() if workers is None else workers
    if workers > 1 and len(found) >= PARALLEL_READ_RUNS and "fork" in mp.get_all_start_methods():
        with mp.get_context("fork").Pool(workers) as pool:
            return pool.starmap(read_run, found, chunksize=max(1, len(found) // (8 * workers)))
    return [read_run(path, suite) for path, suite in found]


def load_runs(roots: list[Path], skip: list[Path] | None = None, workers: int | None = None) -> RunSet:
    """Read every run folder under ``roots`` (in ``workers`` processes when there are many; default
    two where there are two cores).  Raises ``ReportError`` only for a missing directory."""
    roots = [Path(r) for r in roots]
    for r in roots:
        if not r.is_dir():
            raise ReportError(f"results directory {r} does not exist or is not a directory")
    found, problems, suites = discover(roots, skip)
    runs: list[Run] = []
    for run, probs in _read_all(found, workers):
        problems.extend(probs)
        if run is not None:
            runs.append(run)
    for info in suites.values():
        info.pop("dir", None)
    return RunSet(runs=runs, problems=problems, suites=suites, roots=roots)
