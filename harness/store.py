"""The run folder on disk: crash-safe writes and reads of the files of the results contract.

JSON files are replaced atomically (temporary file, fsync, rename). CSV files are appended whole
lines at a time with one ``write`` call each, so a killed process never leaves half a row; readers
still drop an unterminated last line, in case a disk filled up mid-write.
"""

from __future__ import annotations

import io
import json
import os
import platform
import socket
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

EPISODE_COLUMNS = ("frames", "wall_seconds", "worker", "return", "length")
EVAL_COLUMNS = ("frames", "wall_seconds", "episodes", "mean_return", "median_return", "min_return", "max_return")
STATES = ("running", "done", "failed", "diverged", "interrupted")
FINAL_STATES = ("done", "failed", "diverged", "interrupted")


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json_atomic(path: Path, obj: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=False, default=str)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are for everyone who can read the folder
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    """The object in ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return repr(v)
    return str(v)


class CsvLog:
    """Append-only CSV with a fixed header."""

    def __init__(self, path: Path, columns: Iterable[str]):
        self.path = Path(path)
        self.columns = tuple(columns)
        if not self.path.exists() or self.path.stat().st_size == 0:
            self._write(",".join(self.columns) + "\n")

    def _write(self, text: str) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        text = "".join(",".join(_fmt(r[c]) for c in self.columns) + "\n" for r in rows)
        if text:
            self._write(text)


def read_csv(path: Path, columns: Iterable[str]) -> pd.DataFrame:
    """A results CSV as a DataFrame; missing or empty files give an empty frame with the columns."""
    columns = list(columns)
    try:
        text = Path(path).read_text()
    except OSError:
        return pd.DataFrame(columns=columns)
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # drop an unterminated last line
    if not text.strip():
        return pd.DataFrame(columns=columns)
    return pd.read_csv(io.StringIO(text))


def truncate_csv_after(path: Path, frames: int) -> None:
    """Keep only rows with ``frames <= frames`` (resume from a checkpoint without duplicates)."""
    path = Path(path)
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    if not lines:
        return
    head, rows = lines[0], [ln for ln in lines[1:] if ln.endswith("\n")]
    kept = [ln for ln in rows if int(float(ln.split(",", 1)[0])) <= frames]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(head + "".join(kept))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    """Cores this process may run on (affinity / cgroup aware where the OS says)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def host_info(threads: int | None = None) -> dict[str, Any]:
    import psutil

    logical = psutil.cpu_count(logical=True) or 1
    physical = psutil.cpu_count(logical=False) or logical
    usable = usable_cores()
    info = {
        "hostname": socket.gethostname(),
        "logical_cores": logical,
        "physical_cores": physical,
        "usable_cores": usable,
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
    }
    if threads is not None:
        info["oversubscribed"] = threads > min(usable, physical)
    return info


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for key, dist in (("torch", "torch"), ("gymnasium", "gymnasium"), ("ale_py", "ale-py"), ("harness", "async-rl-harness")):
        try:
            out[key] = version(dist)
        except PackageNotFoundError:
            out[key] = "unknown"
    return out
