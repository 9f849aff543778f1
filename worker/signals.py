"""`@receives(signal, ...)`: a receiver of Celery signals that keeps its type.

Celery ships no type hints, so `@signal.connect` would make the function untyped for mypy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

R = TypeVar("R", bound=Callable[..., None])


def receives(*signals: Any) -> Callable[[R], R]:
    """Connect the decorated function to each signal, as `@signal.connect` does."""

    def connect(receiver: R) -> R:
        for signal in signals:
            signal.connect(receiver)
        return receiver

    return connect
