"""The paper's four asynchronous methods, one readable module each, and a registry by name."""

from __future__ import annotations

from algorithms import a3c, a3c_lstm, n_step_q, one_step_q, one_step_sarsa  # noqa: F401  (registers them)
from algorithms.base import Algorithm, Hyperparameters, Segment, register, registry

BUILTIN = ("one_step_q", "one_step_sarsa", "n_step_q", "a3c")  # the paper's four feed-forward methods
SHIPPED = BUILTIN + ("a3c_lstm",)  # every algorithm this package registers

__all__ = ["Algorithm", "Hyperparameters", "Segment", "register", "registry", "BUILTIN", "SHIPPED"]
