"""The retry policy: only transient faults retried, full-jitter exponential backoff, a hook."""

from __future__ import annotations

import asyncio
import errno

import pytest

from hygge import ConfigError, HomeError, StoreError, TransientError
from hygge.retry import backoff_delay, is_transient, retry_async


def failing(errors: list[BaseException]):
    """An action that raises the given errors in turn, then returns how often it ran."""
    calls = []

    async def action() -> int:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return len(calls)

    return action, calls


def test_transient_faults_are_retried_with_growing_jittered_delays() -> None:
    action, _ = failing([TransientError("a"), ConnectionResetError("b"), TimeoutError("c")])
    seen: list[tuple[int, str, float]] = []
    got = asyncio.run(
        retry_async(
            action, retries=3, base_delay=0.01, on_retry=lambda n, e, d: seen.append((n, str(e), d))
        )
    )
    assert got == 4
    assert [(n, e) for n, e, _ in seen] == [(1, "a"), (2, "b"), (3, "c")]
    for n, _, delay in seen:
        assert 0 <= delay <= 0.01 * 2 ** (n - 1)


def test_a_permanent_fault_is_raised_at_once() -> None:
    action, calls = failing([StoreError("table is read-only")])
    with pytest.raises(StoreError, match="read-only"):
        asyncio.run(retry_async(action, retries=5, base_delay=0.01))
    assert len(calls) == 1


def test_after_the_last_retry_the_error_itself_is_raised() -> None:
    action, calls = failing([TransientError(f"down {i}") for i in range(10)])
    with pytest.raises(TransientError, match="down 2"):
        asyncio.run(retry_async(action, retries=2, base_delay=0.001))
    assert len(calls) == 3


def test_no_retries_means_one_attempt() -> None:
    action, calls = failing([TransientError("once")])
    with pytest.raises(TransientError):
        asyncio.run(retry_async(action, retries=0))
    assert len(calls) == 1


def test_base_exceptions_are_never_retried() -> None:
    action, calls = failing([KeyboardInterrupt()])
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(retry_async(action, retries=3, base_delay=0.001))
    assert len(calls) == 1


def test_backoff_is_full_jitter_capped() -> None:
    delays = [backoff_delay(3, base=1.0, cap=60.0) for _ in range(200)]
    assert all(0 <= d <= 4.0 for d in delays) and len(set(delays)) > 100
    assert max(delays) > 2.0  # spread over the whole window, not a fixed delay
    assert all(0 <= backoff_delay(30, base=1.0, cap=5.0) <= 5.0 for _ in range(50))


def test_what_counts_as_transient() -> None:
    assert is_transient(HomeError("reset", transient=True))
    assert not is_transient(ConfigError("bad key"))
    assert is_transient(OSError(errno.ECONNREFUSED, "refused"))
    assert not is_transient(OSError(errno.ENOENT, "missing"))
    try:
        try:
            raise ConnectionResetError("peer")
        except ConnectionResetError as inner:
            raise RuntimeError("driver wrapped it") from inner
    except RuntimeError as outer:
        assert is_transient(outer)  # a driver's wrapper of a network fault
