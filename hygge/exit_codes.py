"""The exit codes of `hygge`, stable across versions (scripts and schedulers branch on them).

Documented in README.md ("Exit codes"); tests/test_operator.py checks each one.
"""

from __future__ import annotations

from collections.abc import Iterable

from hygge.errors import ConfigError, FlowLocked

OK = 0  # every selected flow succeeded (or: the check passed)
FAILED = 1  # a flow failed or was skipped; or a source/destination/broker could not be reached
USAGE = 2  # the command line or flows.yml is wrong: nothing was moved
LOCKED = 3  # a destination is being written by another run: nothing was moved there
INTERRUPTED = 130  # stopped by Ctrl-C (SIGINT), as shells report it: nothing half-committed


def for_error(exc: BaseException) -> int:
    """The exit code of a command that stopped on `exc` before (or instead of) moving data."""
    if isinstance(exc, FlowLocked):
        return LOCKED
    if isinstance(exc, ConfigError):
        return USAGE
    return FAILED


def for_failures(errors: Iterable[BaseException | None]) -> int:
    """The exit code of a run whose flows failed with `errors` (None: skipped, or unknown).

    LOCKED only when every failure is a lock held by another run (the caller can simply try
    again later); any other failure makes it FAILED."""
    seen = list(errors)
    if seen and all(isinstance(e, FlowLocked) for e in seen if e is not None) and any(seen):
        return LOCKED
    return FAILED
