"""A partitioned flow in one process: every part read concurrently, one commit for them all.

The home plans its parts (hygge/partitions.py); each part is an ordinary Flow from the part's
home into a `PartStore`, which stages into the multi-part store (its `commit` only seals the
part). When every part has sealed, the rows staged by all of them are counted from what was
written and compared with the rows read, the incremental state (merged from the parts) is
staged, and the store publishes every part at once. If any part fails for good, the others
are cancelled, every part's staging is deleted, and nothing is published.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import polars as pl

from hygge.contract import Home, IncrementalHome, MultiPartStore, SplittableHome, Store
from hygge.errors import FlowError
from hygge.flow import Flow, _first_cause, resume_home, state_record
from hygge.gate import Quality
from hygge.locks import NoLock, RunLock
from hygge.progress import FlowState
from hygge.report import FlowReport, ProgressCallback


class PartStore(Store[Any]):
    """One part of a multi-part store, seen by a Flow as a whole store: `commit` seals."""

    abstract = True

    def __init__(self, store: Store[Any], part: str) -> None:
        assert isinstance(store, MultiPartStore)
        super().__init__(store.name, store.settings)
        self.store, self.part = store, part
        self.sealed: dict[str, Any] | None = None
        # A part describes itself as its store (plans, messages).
        self.type_name = store.type_name  # type: ignore[misc]

    async def open(self) -> None:
        self.sealed = None
        await self.store.open_part(self.part)

    async def write(self, df: pl.DataFrame) -> None:
        await self.store.write(df)

    async def staged_rows(self) -> int | None:
        return await self.store.staged_rows()

    async def commit(self) -> None:
        self.sealed = await self.store.seal_part(self.part)

    async def abort(self) -> None:
        await self.store.abort()

    def lock(self, flow: str) -> RunLock:
        """None: a part runs under the lock its whole flow holds (PartitionedFlow.start)."""
        return NoLock(flow, self.describe())


class PartitionedFlow:
    """Moves a splittable Home into a multi-part Store, `parallel` parts at a time."""

    def __init__(
        self,
        home: Home[Any],
        new_store: Callable[[], Store[Any]],
        *,
        name: str,
        partitions: int | str | None = None,
        ranges: list[list[Any]] | None = None,
        parallel: int | None = None,
        queue_size: int = 4,
        retries: int = 0,
        retry_delay: float = 1.0,
        incremental: bool = False,
        full_refresh: bool = False,
        on_progress: ProgressCallback | None = None,
        before_commit: Callable[[], Awaitable[None]] | None = None,
        quality: Quality | None = None,
    ) -> None:
        assert isinstance(home, SplittableHome)
        self.home = home
        self.new_store = new_store
        self.store = new_store()  # the committing one
        self.name = name
        self.partitions = partitions
        self.ranges = ranges
        self.parallel = max(1, parallel or os.cpu_count() or 1)
        self.queue_size, self.retries, self.retry_delay = queue_size, retries, retry_delay
        self.incremental, self.full_refresh = incremental, full_refresh
        self.on_progress = on_progress
        self.before_commit = before_commit
        self.quality = quality  # shape per part; checks merged from the parts, judged once
        self.wait_for_lock = False  # set by the Coordinator (`hygge run --wait-for-lock`)
        self._reports: dict[int, FlowReport] = {}
        self._total = 0
        self._started = 0.0
        self._checks = ""

    def run(self) -> FlowReport:
        return asyncio.run(self.start())

    async def start(self) -> FlowReport:
        self._started = time.perf_counter()
        self._emit(FlowState.RUNNING)
        # The whole flow holds the run lock (its parts take none): a second run of it is
        # refused, or waits, for as long as this one may still publish.
        lock = self.store.lock(self.name)
        try:
            await lock.acquire(wait=self.wait_for_lock)
            try:
                rows = await self._run()
            finally:
                await asyncio.shield(asyncio.to_thread(lock.release))
        except BaseException as exc:
            self._emit(FlowState.FAILED, message=str(exc))
            raise
        return self._emit(FlowState.SUCCESS, rows=rows)

    async def _run(self) -> int:
        store = self.store
        assert isinstance(store, MultiPartStore)
        if self.incremental:
            await resume_home(self.name, self.home, store, self.full_refresh)
        descriptors = await self.home.plan_parts(self.partitions, self.ranges)
        run = uuid.uuid4().hex[:12]
        names = [f"{run}.p{i:04d}" for i in range(len(descriptors))]
        self._total = len(names)
        flows = [
            Flow(
                self.home.part(d),
                PartStore(self.new_store(), names[i]),
                name=f"{self.name}[{i + 1}/{len(names)}]",
                queue_size=self.queue_size,
                retries=self.retries,
                retry_delay=self.retry_delay,
                on_progress=functools.partial(self._part_progress, i),
                gate=self.quality.gate(decides=False) if self.quality else None,
            )
            for i, d in enumerate(descriptors)
        ]
        slots = asyncio.Semaphore(self.parallel)

        async def run_part(flow: Flow) -> None:
            async with slots:
                await flow.start()

        try:
            try:
                async with asyncio.TaskGroup() as group:
                    for flow in flows:
                        group.create_task(run_part(flow))
            except BaseExceptionGroup as group_error:
                raise _first_cause(group_error) from None
            sealed = [f.store.sealed for f in flows]  # type: ignore[attr-defined]
            read = sum(self._reports[i].rows for i in range(len(flows)))
            await check_rows(self.name, store, sealed, read)
            if self.incremental:
                assert isinstance(self.home, IncrementalHome)
                states = [f.home.checkpoint() for f in flows]  # type: ignore[attr-defined]
                store.stage_state(  # type: ignore[attr-defined]
                    self.name, state_record(self.home, self.home.merge_checkpoints(states), read)
                )
            if self.quality is not None:  # duplicates across parts count: nothing published
                self._checks = self.quality.judge_parts([f.gate.acc for f in flows])  # type: ignore[union-attr]
            if self.before_commit is not None:
                await self.before_commit()
            await store.commit_parts(sealed)
        finally:  # after a failure: discard every part; after the commit: clean up
            await asyncio.shield(store.abort_parts([{"part": n} for n in names]))
        return read

    def _part_progress(self, index: int, report: FlowReport) -> None:
        self._reports[index] = report
        if report.state in (FlowState.RUNNING, FlowState.RETRYING):
            self._emit(FlowState.RUNNING)

    def _emit(self, state: FlowState, message: str = "", rows: int | None = None) -> FlowReport:
        reports = list(self._reports.values())
        done = sum(r.state == FlowState.SUCCESS for r in reports)
        report = FlowReport(
            self.name,
            state,
            rows=sum(r.rows for r in reports) if rows is None else rows,
            batches=sum(r.batches for r in reports),
            memory_bytes=sum(r.memory_bytes for r in reports),
            seconds=time.perf_counter() - self._started,
            message=message or (f"partitions {done}/{self._total}" if self._total else ""),
            parts_done=done,
            parts_total=self._total,
            checks=self._checks,
        )
        if self.on_progress is not None:
            self.on_progress(report)
        return report


async def check_rows(
    flow: str, store: MultiPartStore, sealed: list[dict[str, Any]], read: int
) -> None:
    """The integrity check of a whole partitioned flow: the rows all partitions read must be
    the rows staged, counted from what was written; else nothing is published."""
    staged = await store.parts_rows(sealed)
    if staged is not None and staged != read:
        raise FlowError(
            f"flow '{flow}': its {len(sealed)} partitions read {read:,} rows but staged "
            f"{staged:,}; nothing was published",
            hint="this is a bug in the store; please report it with --verbose output",
        )
