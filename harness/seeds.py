"""The range of seeds every command, suite file and Python entry point accepts: 0 <= seed < 2**32.

A run seed reaches the libraries in two ways. It seeds torch before the shared network is built
(``torch.manual_seed(seed)``: 0 <= seed < 2**64), and numpy's ``SeedSequence([seed, stream])``
derives every other seed from it, one stream per worker and one for the evaluation
(:func:`harness.engine.worker.worker_seeds`, :func:`harness.evaluate.eval_seeds`): 32-bit values,
which numpy, torch, gymnasium, ale-py and MinAtar all take, for any seed >= 0 (``SeedSequence``
refuses negative ones). So the engine itself would take 0 <= seed < 2**64. The harness accepts
the 32-bit range inside it: the range of numpy's legacy seeds, and one that stays exact where a
seed travels as a float (YAML numbers in suite files are read through floats; JSON readers in
JavaScript) and leaves room for the seeds a check derives (seed + 1).
"""

from __future__ import annotations

from typing import Any

SEED_LIMIT = 2**32  # seeds are 0 <= seed < SEED_LIMIT
SEED_RANGE = f"a whole number from 0 to {SEED_LIMIT - 1:d} (0 <= seed < 2**32)"


def seed_problem(seed: Any) -> str | None:
    """What is wrong with ``seed`` as a run seed, in words that say what to use; None when it is fine."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        return f"{seed!r} is not a seed: use {SEED_RANGE}"
    if not 0 <= seed < SEED_LIMIT:
        text = str(seed)
        shown = text if len(text) <= 30 else f"{text[:12]}... ({len(text.lstrip('-'))} digits)"
        return f"{shown} is outside the seed range: use {SEED_RANGE}"
    return None


def check_seed(seed: Any, what: str = "seed") -> int:
    """``seed`` itself, or ValueError naming ``what`` and the valid range."""
    problem = seed_problem(seed)
    if problem:
        raise ValueError(f"{what}: {problem}")
    return seed


def seed_option(ctx, param, value):
    """A click callback for ``--seed`` (``type=int``): out of range is a usage error (exit 2, one line)."""
    import click

    problem = seed_problem(value)
    if problem:
        raise click.BadParameter(problem, ctx=ctx, param=param)
    return value
