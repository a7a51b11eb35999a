"""Finding an algorithm by name: the built-in registry, the ``harness.algorithms`` entry-point
group of installed packages, or an import path ``my_pkg.module:MyAlgo``."""

from __future__ import annotations

import difflib
import importlib
from importlib.metadata import entry_points

import algorithms
from algorithms.base import Algorithm, registry


class AlgorithmError(ValueError):
    """An algorithm name that cannot be resolved."""


def _entry_points() -> dict:
    return {ep.name: ep for ep in entry_points(group="harness.algorithms")}


def available_algorithms() -> list[str]:
    """Registered names: built-ins first, then entry-point plug-ins."""
    names = list(algorithms.SHIPPED) + [n for n in registry() if n not in algorithms.SHIPPED]
    return names + sorted(n for n in _entry_points() if n not in names)


def load_algorithm(name: str) -> type[Algorithm]:
    """Resolve a registered name, an entry point, or ``module:Class``."""
    if name in registry():
        return registry()[name]
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise AlgorithmError(f"cannot import algorithm {name!r}: {exc}") from None
    else:
        eps = _entry_points()
        if name not in eps:
            close = difflib.get_close_matches(name, available_algorithms(), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise AlgorithmError(
                f"unknown algorithm {name!r}: allowed {', '.join(available_algorithms())} "
                f"or an import path module:Class{hint}"
            )
        cls = eps[name].load()
    if not (isinstance(cls, type) and issubclass(cls, Algorithm)):
        raise AlgorithmError(f"{name!r} is not a subclass of algorithms.base.Algorithm")
    return cls
