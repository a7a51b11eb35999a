"""A3C with generalised advantage estimation: a plug-in algorithm for async-rl-harness."""

from a3c_gae.algorithm import A3CGAE, GAEHyperparameters

__all__ = ["A3CGAE", "GAEHyperparameters"]
