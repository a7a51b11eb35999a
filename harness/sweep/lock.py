"""One sweep at a time per suite folder: ``<results dir>/<suite>/.sweep.lock``.

The lock is an exclusive ``flock`` held for the sweep's lifetime; the file records who holds it
(pid, host, start time, executor). The kernel drops the lock when its process dies, however it dies
(SIGKILL included), so a lock left behind by a dead sweep is stale by construction: the next sweep
takes it over, and says so when the recorded pid no longer exists.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path

from harness import store

LOCK_NAME = ".sweep.lock"


class LockedError(RuntimeError):
    """Another live sweep holds the lock (one-line message)."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SweepLock:
    def __init__(self, directory: Path, executor: str = "local"):
        self.path = Path(directory) / LOCK_NAME
        self.executor = executor
        self.fd: int | None = None
        self.stale: dict | None = None  # what a dead holder had written, when we took over

    def holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text() or "null")
        except (OSError, ValueError):
            return None

    def acquire(self) -> "SweepLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by children
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            h = self.holder() or {}
            who = f"pid {h.get('pid')} on {h.get('host')}, started {h.get('started_at')}" if h else "another process"
            raise LockedError(f"another sweep ({who}) is running in {self.path.parent}; "
                              f"wait for it or stop it (Ctrl-C) first") from None
        old = self.holder()
        if old and old.get("pid") and old.get("host") == socket.gethostname() and not _pid_alive(int(old["pid"])):
            self.stale = old
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": store.utc_now(), "executor": self.executor}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            try:
                os.ftruncate(self.fd, 0)
            finally:
                os.close(self.fd)
                self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def is_flocked(path: Path) -> bool:
    """True while some live process holds a ``flock`` on ``path`` (False when there is no file)."""
    if not Path(path).exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def sweep_running(directory: Path) -> dict | None:
    """The holder's info when a live sweep holds the lock of ``directory``, else None."""
    path = Path(directory) / LOCK_NAME
    if not is_flocked(path):
        return None
    try:
        return json.loads(path.read_text() or "null") or {}
    except (OSError, ValueError):
        return {}
