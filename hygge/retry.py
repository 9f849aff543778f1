"""Retry with exponential backoff and jitter, for transient faults only.

The loop is tenacity's (well kept, async-aware, per-call hooks); hygge decides only what is
transient and reports each retry. (stamina, built on tenacity, was the other choice: its hooks
are process-wide instrumentation, while a flow needs its own `on_retry` for its display.)

A permanent fault (bad config, missing table, schema violation) can never succeed by trying
again, so it is raised at once; retrying it only delays the clear error.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from hygge.errors import HyggeError

log = logging.getLogger("hygge.retry")

T = TypeVar("T")

_TRANSIENT_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.ETIMEDOUT,
    errno.EPIPE,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.EAGAIN,
}


def is_transient(exc: BaseException) -> bool:
    """True when trying again may succeed: network faults and errors marked transient."""
    if isinstance(exc, HyggeError):
        return exc.transient
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return True
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and is_transient(cause)


def _wait(base: float, cap: float) -> wait_random_exponential:
    """Full jitter: a random wait in [0, min(cap, base * 2 ** (retry - 1))] seconds, so flows
    that failed together (a database restart) do not all come back at the same moment."""
    return wait_random_exponential(multiplier=base, max=cap)


def backoff_delay(attempt: int, base: float = 1.0, cap: float = 60.0) -> float:
    """Seconds to wait before retry number `attempt` (1-based), by the same policy as
    `retry_async`: for the worker, which retries by re-sending the task with a countdown."""
    # A state outside any Retrying: the wait policy reads only its attempt number.
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    return _wait(base, cap)(state)


async def retry_async(
    action: Callable[[], Awaitable[T]],
    *,
    retries: int = 3,
    base_delay: float = 1.0,
    max_delay: float = 60.0,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> T:
    """Run `action`, retrying transient failures up to `retries` times with backoff.

    `on_retry(retry_number, error, delay)` is called before each wait (the display shows it).
    """

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        assert exc is not None
        if on_retry:
            on_retry(state.attempt_number, exc, delay)
        log.info(  # the display shows each retry with its reason; the log adds it with -v
            "transient failure (%s); retry %d/%d in %.1fs",
            exc,
            state.attempt_number,
            retries,
            delay,
        )

    retrying = AsyncRetrying(
        stop=stop_after_attempt(retries + 1),
        wait=_wait(base_delay, max_delay),
        retry=retry_if_exception(lambda exc: isinstance(exc, Exception) and is_transient(exc)),
        before_sleep=before_sleep,
        reraise=True,  # the last error itself, not tenacity's RetryError wrapping it
    )
    return await retrying(action)
