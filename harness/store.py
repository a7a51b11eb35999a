"""The run folder on disk: crash-safe writes and reads of the files of the results contract.

JSON files and checkpoints are replaced atomically (temporary file, fsync, rename:
:func:`write_atomic`). CSV files are appended whole lines at a time with one ``write`` call each, so
a killed process never leaves half a row; readers still drop an unterminated last line, in case a
disk filled up mid-write.

Every write here fails as an ``OSError`` that names the file (:func:`os_error_of`), whatever the
writer raised: torch's zip writer, for one, reports a full disk as a ``RuntimeError`` ("unexpected
pos ...") raised while it closes the file. Callers catch ``OSError`` and say it in one line with
:func:`describe_os_error`.
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
from typing import IO, TYPE_CHECKING, Any, Callable, Iterable

if TYPE_CHECKING:
    import pandas as pd

EPISODE_COLUMNS = ("frames", "wall_seconds", "worker", "return", "length")
EVAL_COLUMNS = ("frames", "wall_seconds", "episodes", "mean_return", "median_return", "min_return", "max_return")
STATES = ("running", "done", "failed", "diverged", "interrupted")
FINAL_STATES = ("done", "failed", "diverged", "interrupted")


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


#: below this many free bytes a write that failed without saying why is taken for a full disk
FULL_DISK_BYTES = 64 * 1024

_HINTS = {errno.ENOSPC: "free disk space", errno.EDQUOT: "free disk space (quota)",
          errno.EROFS: "the file system is read-only", errno.ENOTDIR: "a part of the path is a file, not a folder",
          errno.ENAMETOOLONG: "use a shorter name", errno.EACCES: "check the folder's permissions",
          errno.EEXIST: "a file of that name is in the way"}


def describe_os_error(exc: OSError, what: str, fix: str) -> str:
    """``<file>: <reason> while <what> (<hint>): <fix>`` for a failed file operation (ENOSPC, EROFS, ...)."""
    where = exc.filename or "?"
    reason = exc.strerror or type(exc).__name__
    hint = _HINTS.get(exc.errno)
    return f"{where}: {reason} while {what}" + (f" ({hint})" if hint else "") + f": {fix}"


def free_bytes(folder: Path) -> int | None:
    """Bytes an unprivileged process may still write on the file system of ``folder`` (None: unknown)."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def os_error_of(exc: BaseException, path: Path) -> OSError | None:
    """The file-system error behind ``exc``, raised while writing ``path``, as an ``OSError`` that names
    ``path`` (not the temporary file being written); None when ``exc`` is no such error (a bug, a
    pickling error: let it propagate).

    It is ``exc`` itself, or the first ``OSError`` with an errno in its chain of causes and contexts (a
    library that wraps the error it met, or raises another one while cleaning up after it); failing
    that, ``ENOSPC`` when the file system of ``path`` has (next to) no free space left, for a library
    that drops the errno altogether. Check before removing what the failed write left behind."""
    path = Path(path)
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno is not None:
            return e if e.filename == str(path) else OSError(e.errno, e.strerror or os.strerror(e.errno), str(path))
        e = e.__cause__ or e.__context__
    if isinstance(exc, Exception):
        free = free_bytes(path.parent)
        if free is not None and free < FULL_DISK_BYTES:
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return None


def write_atomic(path: Path, write: Callable[[IO[bytes]], None], keep_previous: Path | None = None) -> None:
    """Replace ``path`` with what ``write(file)`` writes, or leave it as it was: a temporary file beside
    it (``.<name>.XXXX.tmp``), fsync, rename. ``keep_previous``: move the current file there first.

    Any failure leaves no temporary file behind; one of the file system (full disk, read-only, quota),
    whatever the writer raised for it, comes out as an ``OSError`` naming ``path``
    (:func:`os_error_of`)."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are for everyone who can read the folder
        if keep_previous is not None and path.exists():
            os.replace(path, keep_previous)
        os.replace(tmp, path)
    except BaseException as exc:
        error = os_error_of(exc, path)  # before the temporary file goes: it may be what filled the disk
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if error is None:
            raise
        raise error from exc


#: space a run folder holds back while its run trains (see :class:`SpaceReserve`)
RESERVE = ".space.reserve"
RESERVE_BYTES = 64 * 1024


class SpaceReserve:
    """``RESERVE_BYTES`` of disk held in ``folder/.space.reserve`` while a run writes, so that its final
    status.json can still be written after the disk has filled up under it: :meth:`release` hands the
    space back just before that write. Best effort: on a disk without room even for this, nothing is held."""

    def __init__(self, folder: Path, nbytes: int = RESERVE_BYTES):
        self.path = Path(folder) / RESERVE
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                if hasattr(os, "posix_fallocate"):
                    os.posix_fallocate(fd, 0, nbytes)
                else:  # pragma: no cover - macOS
                    os.pwrite(fd, b"\0" * nbytes, 0)
            finally:
                os.close(fd)
        except OSError:
            self.release()

    def release(self) -> None:
        self.discard(self.path.parent)

    @staticmethod
    def discard(folder: Path) -> None:
        """Remove ``folder``'s reserve, if any (one left by a run that ended by an exception or a kill)."""
        try:
            (Path(folder) / RESERVE).unlink(missing_ok=True)
        except OSError:
            pass


def write_json_atomic(path: Path, obj: Any) -> None:
    text = json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n"
    write_atomic(path, lambda f: f.write(text.encode()))


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
    text = head + "".join(kept)
    write_atomic(path, lambda f: f.write(text.encode()))
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
