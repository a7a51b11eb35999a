"""The paper's four asynchronous methods, one readable module each, and a registry by name."""

from __future__ import annotations

from algorithms import a3c, n_step_q, one_step_q, one_step_sarsa  # noqa: F401  (registers them)
from algorithms.base import Algorithm, Hyperparameters, Segment, register, registry

BUILTIN = ("one_step_q", "one_step_sarsa", "n_step_q", "a3c")

__all__ = ["Algorithm", "Hyperparameters", "Segment", "register", "registry", "BUILTIN"]
