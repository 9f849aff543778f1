"""What a runner supplies to the steps it executes, and nothing else.

`hygge run` (hygge.run.local) and a Celery worker (worker.tasks) run the very same step code
(hygge.run.steps); they differ only in this context: where progress goes, the fence awaited
right before a commit (a worker's lease), whether the runner retries by itself or leaves that
to its queue, how long to wait for another run's lock, and the board where a partitioned
flow's plan and sealed parts are kept between its steps (memory in one process, Redis between
workers: worker.board).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from hygge.report import ProgressCallback

Fence = Callable[[], Awaitable[None]]


class Board(Protocol):
    """Where the steps of one partitioned flow run meet: the plan every partition splits by
    (first writer wins) and each partition's sealed description (what it staged, its rows, its
    checkpoint, who staged it). Keys are the flow's parts key (see `hygge.run.parts`)."""

    def plan(self, key: str) -> dict[str, Any] | None: ...

    def offer_plan(self, key: str, plan: dict[str, Any]) -> dict[str, Any]:
        """Store `plan` unless one is there already; returns the one that is."""
        ...

    def seal(self, key: str, index: int, record: dict[str, Any]) -> None: ...

    def sealed(self, key: str) -> dict[int, dict[str, Any]]: ...


class MemoryBoard:
    """The board of one process (`hygge run`)."""

    def __init__(self) -> None:
        self._plans: dict[str, dict[str, Any]] = {}
        self._sealed: dict[str, dict[int, dict[str, Any]]] = {}

    def plan(self, key: str) -> dict[str, Any] | None:
        return self._plans.get(key)

    def offer_plan(self, key: str, plan: dict[str, Any]) -> dict[str, Any]:
        return self._plans.setdefault(key, plan)

    def seal(self, key: str, index: int, record: dict[str, Any]) -> None:
        self._sealed.setdefault(key, {})[index] = record

    def sealed(self, key: str) -> dict[int, dict[str, Any]]:
        return dict(self._sealed.get(key, {}))


@dataclass
class RunContext:
    """How one runner executes steps. The defaults are `hygge run`'s."""

    on_progress: ProgressCallback | None = None
    fence: Fence | None = None  # awaited right before every commit; raising publishes nothing
    board: Board = field(default_factory=MemoryBoard)
    own_retries: bool = True  # False: the queue retries (Celery), a step tries once
    wait_for_lock: bool = False  # another run holds the destination's lock: wait, or refuse
    max_parallel: int | None = None  # partitions of one flow read at once, at most
    worker: str = field(default_factory=lambda: os.uname().nodename)  # who stages a part
    run_id: str = ""  # the run (what a `run` audit column holds; empty: a new id per flow)
