"""One move: Home batches -> bounded queue -> Store, then verify and commit (or abort).

Both runners move data through this class: `hygge run` (hygge.run.local) and a Celery worker
(worker.tasks), and each part of a partitioned flow (hygge.run.parts). Two single places are
where a move can be extended: `_take(df)`, which every batch passes through on its way to the
store, and `_publish()`, the one decision right before the store commits (everything staged
and verified; a raise there publishes nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from typing import Any, cast

import polars as pl

from hygge.contract import Home, IncrementalHome, StatefulStore, Store
from hygge.errors import FlowError
from hygge.gate import Gate
from hygge.locks import RunLock
from hygge.progress import FlowState
from hygge.report import FlowReport, ProgressCallback
from hygge.retry import retry_async

_END = object()
log = logging.getLogger("hygge.run")  # -v: what each flow is doing, step by step


class Flow:
    """Moves everything a Home yields into a Store, which publishes it all at once.

    Reading and writing overlap: the home fills a queue of at most `queue_size` batches (less
    what the home reads ahead on its own, `Home.reads_ahead`) while the store drains it, so
    memory stays bounded by a few batches whatever the data size.
    Transient failures are retried up to `retries` times; the store's atomic commit makes a
    retry (or a rerun after a crash) safe.

    `before_commit`, if given, is awaited right before each `store.commit()`, when everything
    is staged and verified; if it raises, the store aborts and nothing is committed (a worker
    uses it to check it still holds its lease on the flow).
    """

    def __init__(
        self,
        home: Home[Any],
        store: Store[Any],
        *,
        name: str | None = None,
        queue_size: int = 4,
        retries: int = 0,
        retry_delay: float = 1.0,
        incremental: bool = False,
        full_refresh: bool = False,
        wait_for_lock: bool = False,
        on_progress: ProgressCallback | None = None,
        before_commit: Callable[[], Awaitable[None]] | None = None,
        gate: Gate | None = None,
    ) -> None:
        self.home = home
        self.store = store
        self.name = name or f"{home.name}_to_{store.name}"
        self.queue_size = queue_size
        self.retries = retries
        self.retry_delay = retry_delay
        self.incremental = incremental
        self.full_refresh = full_refresh
        self.wait_for_lock = wait_for_lock
        self.on_progress = on_progress
        self.before_commit = before_commit
        self.gate = gate  # shape and checks (hygge/gate.py): write, audit, publish
        self._checks = ""
        self._rows = self._batches = self._memory_bytes = 0
        self._total: int | None = None  # the home's estimate of the rows to move
        self._started = 0.0
        self._attempt = 0
        self._lock: RunLock | None = None  # the destination's run lock, while it is held

    def run(self) -> FlowReport:
        """Run the flow to completion from synchronous code."""
        return asyncio.run(self.start())

    async def start(self) -> FlowReport:
        """Run the flow and report what it did; raises a HyggeError (or the home/store's own
        error) on failure."""
        self._started = time.perf_counter()
        lock = self._lock = self.store.lock(self.name)
        try:
            # Held across every attempt: a second run of this flow is refused (or waits)
            # for as long as this one may still publish.
            async def acquire() -> None:  # a coroutine function: the retry loop awaits it
                await lock.acquire(wait=self.wait_for_lock, on_wait=self._waiting)

            await self._retrying(acquire)
            try:
                await self._retrying(self._attempt_once)
            finally:
                await asyncio.shield(asyncio.to_thread(lock.release))
        except BaseException as exc:
            self._emit(FlowState.FAILED, message=str(exc))
            raise
        completed = self._completed_rows()
        note = f"{completed:,} of the rows: an interrupted commit completed" if completed else ""
        return self._emit(FlowState.SUCCESS, message=note)

    async def _retrying(self, action: Callable[[], Awaitable[None]]) -> None:
        await retry_async(
            action, retries=self.retries, base_delay=self.retry_delay, on_retry=self._on_retry
        )

    async def _attempt_once(self) -> None:
        self._attempt += 1
        self._rows = self._batches = self._memory_bytes = 0
        self._emit(FlowState.RUNNING)
        await self.store.open()
        try:
            if self.gate is not None:
                await self.gate.open(self.home)
            if self.incremental:
                await self._resume()
            self._total = await self._estimate()
            self._emit(FlowState.RUNNING)  # with its total, before the first batch arrives
            await self._pump()
            await self._verify()
            await self._publish()
        except BaseException:
            if self.gate is not None:
                await asyncio.shield(self.gate.abort())
            await asyncio.shield(self.store.abort())
            raise

    async def _take(self, df: pl.DataFrame) -> None:
        """THE per-batch point: every batch the home yields passes here, in order, on its
        way to the store (one call per batch)."""
        if self.gate is None:
            await _uncancelled(self.store.write(df))
        else:  # shaped (quarantine: split); the checks count it while the store writes it
            df = await self.gate.batch(df)
            done = await asyncio.gather(
                _uncancelled(self.store.write(df)),
                _uncancelled(self.gate.count()),
                return_exceptions=True,  # both finish before a failure goes on (to abort)
            )
            for outcome in done:
                if isinstance(outcome, BaseException):
                    raise outcome
        self._rows += df.height
        self._batches += 1
        self._memory_bytes += int(df.estimated_size())
        self._emit(FlowState.RUNNING)

    async def _publish(self) -> None:
        """THE pre-commit point: every batch is staged and the rows are verified. Stage the
        incremental state, ask the runner's fence (a worker's lease), then commit; anything
        raised here aborts the store and publishes nothing."""
        if self.incremental:
            assert isinstance(self.store, StatefulStore)  # checked by _resume
            self.store.stage_state(self.name, self._state_record())
        if self.gate is not None:  # the checks decide: a failure publishes nothing
            self._checks = await self.gate.before_commit()
        if self.before_commit is not None:
            await self.before_commit()
        if self._lock is not None:  # still this run's (an object-store lock can expire)
            await asyncio.to_thread(self._lock.confirm)
        await self.store.commit()

    async def _pump(self) -> None:
        # a home that reads ahead on its own (Home.reads_ahead) needs less of the queue
        size = max(1, self.queue_size - self.home.reads_ahead)
        queue: asyncio.Queue[object] = asyncio.Queue(maxsize=size)

        async def produce() -> None:
            # `async def read_batches` with `yield` is an async generator: closed at once when
            # the store fails, so a home's connection or file is not held until GC.
            reading = cast(AsyncGenerator[pl.DataFrame, None], self.home.read_batches())
            async with contextlib.aclosing(reading) as batches:
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
                await self._take(df)

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(produce())
                group.create_task(consume())
        except BaseExceptionGroup as group_error:
            raise first_cause(group_error) from None

    async def _resume(self) -> None:
        await resume_home(self.name, self.home, self.store, self.full_refresh)

    def _state_record(self) -> dict[str, Any]:
        assert isinstance(self.home, IncrementalHome)
        return state_record(self.home, self.home.checkpoint(), self._rows)

    async def _estimate(self) -> int | None:
        """The home's row estimate for the progress bar; a home that fails to estimate just
        has none (the read itself reports real problems)."""
        try:
            total = await self.home.estimate_rows()
        except Exception:
            return None
        total = total if isinstance(total, int) and total >= 0 else None
        log.debug(
            "flow '%s': attempt %d, %s",
            self.name,
            self._attempt,
            f"about {total:,} rows to move" if total is not None else "rows to move unknown",
        )
        return total

    async def _verify(self) -> None:
        """Rows read must equal rows staged, counted from the written files where possible."""
        staged = await self.store.staged_rows()
        if staged is not None and staged != self._rows:
            raise FlowError(
                f"flow '{self.name}': read {self._rows:,} rows but the store holds "
                f"{staged:,}; nothing was committed",
                hint="this is a bug in the store; please report it with --verbose output",
            )
        log.debug(
            "flow '%s': %s rows read in %d batch(es), %s staged; committing",
            self.name,
            f"{self._rows:,}",
            self._batches,
            "as many" if staged is not None else "rows not counted back by the store,",
        )

    def _completed_rows(self) -> int:
        """Rows an interrupted commit held that this run published by completing it (a
        retry after the commit point, or a rerun after a kill): the incremental read that
        follows starts after them, so without them the run would report 0 rows."""
        if not self.incremental or not isinstance(self.store, StatefulStore):
            return 0
        return self.store.completed_rows(self.name)

    def _waiting(self, message: str) -> None:
        self._emit(FlowState.PENDING, message=message)

    def _on_retry(self, attempt: int, exc: BaseException, delay: float) -> None:
        self._emit(
            FlowState.RETRYING, message=f"retry {attempt}/{self.retries} in {delay:.0f}s: {exc}"
        )

    def _elapsed(self) -> float:
        return time.perf_counter() - self._started

    def _emit(self, state: FlowState, message: str = "") -> FlowReport:
        report = FlowReport(
            self.name,
            state,
            rows=self._rows + self._completed_rows(),
            batches=self._batches,
            memory_bytes=self._memory_bytes,
            seconds=self._elapsed(),
            attempt=max(self._attempt, 1),
            message=message,
            total_rows=self._total,
            checks=self._checks,
        )
        if self.on_progress is not None:
            self.on_progress(report)
        return report


async def _uncancelled(write: Coroutine[Any, Any, None]) -> None:
    """Await a store write; if we are cancelled meanwhile, let the write finish first.

    A store writes in a thread (parquet encoding, a COPY), and a thread cannot be stopped:
    cancelling only abandons it. The flow would then `abort()` the store while that thread
    is still inside the writer, closing it under its feet (a segmentation fault in the
    parquet writer). So the cancellation waits for the write, then goes on.
    """
    task = asyncio.ensure_future(write)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await task  # the write's own outcome no longer matters: the flow is failing
        raise


def first_cause(group: BaseExceptionGroup) -> BaseException:
    """The error that started the failure, not the cancellations it caused."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return first_cause(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group.exceptions[0]


async def resume_home(
    name: str, home: Home[Any], store: Store[Any], full_refresh: bool
) -> dict[str, Any] | None:
    """Point an incremental home at what is new since the state committed with the data;
    returns the state it resumed from (None: everything)."""
    if not isinstance(home, IncrementalHome):
        raise FlowError(
            f"flow '{name}': home '{home.name}' ({home.type_name}) cannot load incrementally",
            hint="remove `incremental: true`, or use a home that supports it",
        )
    if not isinstance(store, StatefulStore):
        raise FlowError(
            f"flow '{name}': store '{store.name}' ({store.type_name}) "
            "cannot keep incremental state",
            hint="remove `incremental: true`, or use a store that supports it",
        )
    saved = None if full_refresh else await store.read_state(name)
    if saved is not None and saved.get("definition") != home.incremental_definition():
        raise FlowError(
            f"flow '{name}': its saved state was made by a different definition "
            f"({saved.get('definition')}), not {home.incremental_definition()}",
            hint="run once with --full-refresh to reload everything under the new definition",
        )
    state = saved["state"] if saved else None
    home.resume(state)
    return state


def state_record(home: IncrementalHome, state: dict[str, Any], rows: int) -> dict[str, Any]:
    """The incremental state a store commits with the data: what it depends on, the mark."""
    return {
        "definition": home.incremental_definition(),
        "state": state,
        "rows": rows,
        "committed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
