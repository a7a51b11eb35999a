"""A small on-disk cache for bootstrap results, keyed by a hash of their inputs.

The random generator of every bootstrap is seeded from the same key, so a cached result and a fresh
computation are identical: the cache only saves time, it never changes a number.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any, Callable

import numpy as np

VERSION = 1  # bump when a cached computation changes meaning


def _feed(h, part: Any) -> None:
    if isinstance(part, np.ndarray):
        h.update(str(part.dtype).encode() + str(part.shape).encode())
        h.update(np.ascontiguousarray(part).tobytes())
    elif isinstance(part, (list, tuple)):
        h.update(b"(")
        for p in part:
            _feed(h, p)
        h.update(b")")
    else:
        h.update(repr(part).encode())
    h.update(b"|")


def key_of(*parts: Any) -> str:
    h = hashlib.sha1()
    _feed(h, VERSION)
    for part in parts:
        _feed(h, part)
    return h.hexdigest()


class BootstrapCache:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.data: dict[str, Any] = {}
        self.dirty = False
        self.hits = 0
        self.used: set[str] = set()
        if path is not None and path.is_file():
            try:
                with open(path, "rb") as f:
                    loaded = pickle.load(f)
                if isinstance(loaded, dict):
                    self.data = loaded
            except Exception:  # noqa: BLE001 - a corrupt cache is ignored and rebuilt
                self.data = {}

    def get(self, parts: tuple, compute: Callable[[np.random.Generator], Any], seed: int = 0) -> Any:
        """Return ``compute(rng)`` for these input ``parts``, from the cache when possible."""
        key = key_of(seed, *parts)
        self.used.add(key)
        if key in self.data:
            self.hits += 1
            return self.data[key]
        rng = np.random.default_rng(int(key[:16], 16))
        value = compute(rng)
        self.data[key] = value
        self.dirty = True
        return value

    def save(self) -> None:
        if self.path is None or not (self.dirty or self.used != set(self.data)):
            return
        self.data = {k: v for k, v in self.data.items() if k in self.used}  # drop stale entries
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(self.data, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, self.path)
