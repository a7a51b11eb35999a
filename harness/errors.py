"""The one error type every ``harness`` subcommand raises for bad input: one line, exit code 2.

Its own module so that the subcommands (``harness.cli``, ``harness.check.cli``, ``harness.sweep.cli``)
share it without importing each other.
"""

from __future__ import annotations

import click


class HarnessError(click.ClickException):
    """A one-line user error: exit code 2, no traceback."""

    exit_code = 2
