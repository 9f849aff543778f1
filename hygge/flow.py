"""One move: Home batches -> bounded queue -> Store, then verify and commit (or abort)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import polars as pl

from hygge.errors import FlowError
from hygge.homes.base import Home
from hygge.progress import FlowState, Progress, ProgressCallback
from hygge.retry import retry_async
from hygge.stores.base import Store

_END = object()


@dataclass(frozen=True)
class FlowResult:
    """What one flow did: rows and bytes committed, time taken, how it ended."""

    name: str
    state: FlowState
    rows: int = 0
    batches: int = 0
    bytes: int = 0
    seconds: float = 0.0
    attempts: int = 1
    error: str | None = None
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.state == "success"

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


class Flow:
    """Moves everything a Home yields into a Store, which publishes it all at once.

    Reading and writing overlap: the home fills a queue of at most `queue_size` batches while
    the store drains it, so memory stays bounded by a few batches whatever the data size.
    Transient failures are retried up to `retries` times; the store's atomic commit makes a
    retry (or a rerun after a crash) safe.

    `before_commit`, if given, is awaited right before each `store.commit()`, when everything
    is staged and verified; if it raises, the store aborts and nothing is committed (a worker
    uses it to check it still holds its lease on the flow).
    """

    def __init__(
        self,
        home: Home,
        store: Store,
        *,
        name: str | None = None,
        queue_size: int = 4,
        retries: int = 0,
        retry_delay: float = 1.0,
        incremental: bool = False,
        full_refresh: bool = False,
        on_progress: ProgressCallback | None = None,
        before_commit: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.home = home
        self.store = store
        self.name = name or f"{home.name}_to_{store.name}"
        self.queue_size = queue_size
        self.retries = retries
        self.retry_delay = retry_delay
        self.incremental = incremental
        self.full_refresh = full_refresh
        self.on_progress = on_progress
        self.before_commit = before_commit
        self._rows = self._batches = self._bytes = 0
        self._started = 0.0
        self._attempt = 0

    def run(self) -> FlowResult:
        """Run the flow to completion from synchronous code."""
        return asyncio.run(self.start())

    async def start(self) -> FlowResult:
        """Run the flow; raises a HyggeError (or the home/store's own error) on failure."""
        self._started = time.perf_counter()
        try:
            await retry_async(
                self._attempt_once,
                retries=self.retries,
                base_delay=self.retry_delay,
                on_retry=self._on_retry,
            )
        except BaseException as exc:
            self._emit("failed", message=str(exc))
            raise
        self._emit("success")
        return FlowResult(
            self.name,
            "success",
            self._rows,
            self._batches,
            self._bytes,
            self._elapsed(),
            self._attempt,
        )

    async def _attempt_once(self) -> None:
        self._attempt += 1
        self._rows = self._batches = self._bytes = 0
        self._emit("running")
        await self.store.open()
        try:
            if self.incremental:
                await self._resume()
            await self._pump()
            await self._verify()
            if self.incremental:
                self.store.stage_state(self.name, self._state_record())
            if self.before_commit is not None:
                await self.before_commit()
            await self.store.commit()
        except BaseException:
            await asyncio.shield(self.store.abort())
            raise

    async def _pump(self) -> None:
        queue: asyncio.Queue[object] = asyncio.Queue(maxsize=self.queue_size)

        async def produce() -> None:
            async with contextlib.aclosing(self.home.read_batches()) as batches:
                async for df in batches:
                    if not isinstance(df, pl.DataFrame):
                        raise FlowError(
                            f"flow '{self.name}': home '{self.home.name}' yielded "
                            f"{type(df).__name__}, not a polars DataFrame"
                        )
                    await queue.put(df)
            await queue.put(_END)

        async def consume() -> None:
            while (df := await queue.get()) is not _END:
                assert isinstance(df, pl.DataFrame)
                await self.store.write(df)
                self._rows += df.height
                self._batches += 1
                self._bytes += df.estimated_size()
                self._emit("running")

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(produce())
                group.create_task(consume())
        except BaseExceptionGroup as group_error:
            raise _first_cause(group_error) from None

    async def _resume(self) -> None:
        """Point the home at what is new since the state committed with the data."""
        if not self.home.supports_incremental:
            raise FlowError(
                f"flow '{self.name}': home '{self.home.name}' ({self.home.type_name}) "
                "cannot load incrementally",
                hint="remove `incremental: true`, or use a home that supports it",
            )
        saved = None if self.full_refresh else await self.store.read_state(self.name)
        if saved is not None and saved.get("definition") != self.home.incremental_definition():
            raise FlowError(
                f"flow '{self.name}': its saved state was made by a different definition "
                f"({saved.get('definition')}), not {self.home.incremental_definition()}",
                hint="run once with --full-refresh to reload everything under the new definition",
            )
        self.home.resume(saved["state"] if saved else None)

    def _state_record(self) -> dict[str, object]:
        return {
            "definition": self.home.incremental_definition(),
            "state": self.home.checkpoint(),
            "rows": self._rows,
            "committed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    async def _verify(self) -> None:
        """Rows read must equal rows staged, counted from the written files where possible."""
        staged = await self.store.staged_rows()
        if staged is not None and staged != self._rows:
            raise FlowError(
                f"flow '{self.name}': read {self._rows:,} rows but the store holds "
                f"{staged:,}; nothing was committed",
                hint="this is a bug in the store; please report it with --verbose output",
            )

    def _on_retry(self, attempt: int, exc: BaseException, delay: float) -> None:
        self._emit("retrying", message=f"retry {attempt}/{self.retries} in {delay:.0f}s: {exc}")

    def _elapsed(self) -> float:
        return time.perf_counter() - self._started

    def _emit(self, state: FlowState, message: str = "") -> None:
        if self.on_progress is not None:
            self.on_progress(
                Progress(
                    self.name,
                    state,
                    self._rows,
                    self._batches,
                    self._bytes,
                    self._elapsed(),
                    max(self._attempt, 1),
                    message,
                )
            )


def _first_cause(group: BaseExceptionGroup) -> BaseException:
    """The error that started the failure, not the cancellations it caused."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_cause(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group.exceptions[0]
