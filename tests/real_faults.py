"""Real faults for the tests: a small file system that really fills up, one that really is read-only.

``small_disk(size)`` mounts a tmpfs of ``size`` (``"200k"``) under the test's temporary folder and
returns its path; every mount is unmounted when the test ends, however it ends. Mounting needs root
(CI runs the tests as root); where the kernel refuses, the test is skipped with the reason, found
by trying.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def small_disk(tmp_path):
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        if shutil.which("mount") is None:
            pytest.skip("no mount command here: a full disk needs a real small file system (tmpfs)")
        proc = _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point))
        if proc.returncode != 0:
            pytest.skip(f"mounting a tmpfs is not permitted here ({proc.stderr.strip() or proc.returncode}): "
                        f"a full disk needs a real small file system; run the tests as root")
        mounted.append(point)
        return point

    try:
        yield mount
    finally:
        for point in reversed(mounted):
            if subprocess.run(["umount", str(point)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(point)], capture_output=True)  # something still holds it open


def remount(point: Path, options: str) -> None:
    """``mount -o remount,OPTIONS`` (``ro``, ``size=4m``) of a disk from ``small_disk``."""
    proc = _mount("-o", f"remount,{options}", str(point))
    assert proc.returncode == 0, proc.stderr


def fill(folder: Path) -> Path:
    """Write a filler file into ``folder`` until its file system is full (a real ENOSPC); returns it."""
    filler = Path(folder) / f"filler-{os.getpid()}.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for size in (65536, 4096, 512, 64, 1):  # down to the last byte of the last page
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return filler


def free_bytes(folder: Path) -> int:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize
