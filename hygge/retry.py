"""Retry with exponential backoff and jitter, for transient faults only.

A permanent fault (bad config, missing table, schema violation) can never succeed by trying
again, so it is raised at once; retrying it only delays the clear error.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

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


def backoff_delay(attempt: int, base: float = 1.0, cap: float = 60.0) -> float:
    """Seconds to wait before retry number `attempt` (1-based): full jitter, capped."""
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))


async def retry_async(
    action: Callable[[], Awaitable[T]],
    *,
    retries: int = 3,
    base_delay: float = 1.0,
    max_delay: float = 60.0,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> T:
    """Run `action`, retrying transient failures up to `retries` times with backoff."""
    attempt = 0
    while True:
        try:
            return await action()
        except Exception as exc:
            attempt += 1
            if attempt > retries or not is_transient(exc):
                raise
            delay = backoff_delay(attempt, base_delay, max_delay)
            if on_retry:
                on_retry(attempt, exc, delay)
            log.warning(
                "transient failure (%s); retry %d/%d in %.1fs", exc, attempt, retries, delay
            )
            await asyncio.sleep(delay)
