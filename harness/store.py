"""The run folder on disk: crash-safe writes and reads of the files of the results contract.

JSON files are replaced atomically (temporary file, fsync, rename). CSV files are appended whole
lines at a time with one ``write`` call each, so a killed process never leaves half a row; readers
still drop an unterminated last line, in case a disk filled up mid-write.
"""

from __future__ import annotations

import errno
import io
import json
import os
import platform
import socket
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
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
        """Append ``text`` whole or not at all: a short write (disk full) is cut back off, so the file
        never keeps half a row that the next append would turn into a malformed row mid-file."""
        data = text.encode()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None
        try:
            size = os.fstat(fd).st_size
            try:
                written = os.write(fd, data)
            except OSError as exc:
                written, error = -1, OSError(exc.errno, exc.strerror, str(self.path))
            else:
                error = None if written == len(data) else OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
            if error is not None:
                try:
                    os.ftruncate(fd, size)
                except OSError:
                    pass
                raise error
        finally:
            os.close(fd)

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        text = "".join(",".join(_fmt(r[c]) for c in self.columns) + "\n" for r in rows)
        if text:
            self._write(text)


def read_csv(path: Path, columns: Iterable[str]) -> pd.DataFrame:
    """A results CSV as a DataFrame; missing or empty files give an empty frame with the columns."""
    import pandas as pd  # here, not at the top: runs and their workers never read CSVs (start-up)

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


class CsvError(ValueError):
    """A results CSV with a malformed row (message: the file, the line number and the line)."""


def truncate_csv_after(path: Path, frames: int, columns: Iterable[str] | None = None) -> bool:
    """Keep only rows with ``frames <= frames`` (resume from a checkpoint without duplicates).

    Returns True when an unterminated last line (a write cut short by a kill) was dropped. A
    malformed complete row raises :class:`CsvError` naming its line: that is not a kill's trace but
    a damaged file, and dropping it would silently lose data."""
    path = Path(path)
    if not path.exists():
        return False
    lines = path.read_text().splitlines(keepends=True)
    if not lines:
        return False
    head, rows = lines[0], lines[1:]
    dropped = bool(rows) and not rows[-1].endswith("\n")
    if dropped:
        rows = rows[:-1]
    width = len(tuple(columns)) if columns is not None else len(head.split(","))
    kept = []
    for number, line in enumerate(rows, start=2):
        fields = line.rstrip("\n").split(",")
        try:
            if len(fields) != width:
                raise ValueError
            at = int(float(fields[0]))
        except ValueError:
            raise CsvError(f"{path} line {number} is malformed ({line.strip()[:60]!r})") from None
        if at <= frames:
            kept.append(line)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(head + "".join(kept))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dropped


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


# ------------------------------------------------------------------------------------------------
RUN_LOCK = ".run.lock"


class LockBusy(RuntimeError):
    """Another live process holds the folder's lock (one-line message naming it)."""


_HELD: dict[str, list] = {}  # real path of a lock file -> [fd, depth]: locks this process holds


def _lock_holder(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text() or "null")
    except (OSError, ValueError):
        return None


class FolderLock:
    """One writer per run folder: an exclusive ``flock`` on ``FOLDER/.run.lock`` held while the run's
    files are written, recording who holds it (pid, host, start time).

    The kernel drops the lock when its process dies, however it dies (SIGKILL included), so a lock
    left by a dead process is taken over by the next one (``stale`` then holds what it had written).
    Re-entrant within one process: a sweep's run process takes the lock, then the engine it calls
    takes it again without blocking itself.
    """

    def __init__(self, folder: Path, name: str = RUN_LOCK):
        self.path = Path(folder) / name
        self.stale: dict | None = None
        self._key: str | None = None

    def holder(self) -> dict | None:
        return _lock_holder(self.path)

    def acquire(self, wait_seconds: float = 0.0) -> "FolderLock":
        import fcntl
        import time

        key = os.path.realpath(self.path)
        if key in _HELD:
            _HELD[key][1] += 1
            self._key = key
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    h = self.holder() or {}
                    who = (f"pid {h.get('pid')} on {h.get('host')} since {h.get('started_at')}" if h.get("pid")
                           else "another process")
                    raise LockBusy(f"run folder {self.path.parent} is in use by {who}: wait for that run to end "
                                   f"(or stop it), or use another --out") from None
                time.sleep(0.2)
        old = self.holder()
        if old and old.get("pid") and old.get("pid") != os.getpid():
            self.stale = old  # written by a process that died holding the lock
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": utc_now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        _HELD[key] = [fd, 1]
        self._key = key
        return self

    def release(self) -> None:
        if self._key is None or self._key not in _HELD:
            return
        entry = _HELD[self._key]
        entry[1] -= 1
        if entry[1] == 0:
            del _HELD[self._key]
            try:
                os.ftruncate(entry[0], 0)
            except OSError:
                pass
            finally:
                os.close(entry[0])
        self._key = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
