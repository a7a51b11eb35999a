"""The asynchronous engine: processes, shared memory, counters and supervision."""

from harness.engine.run import Progress, RunResult, train

__all__ = ["train", "Progress", "RunResult"]
