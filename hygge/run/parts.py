"""A partitioned flow, orchestrated once for both runners: plan, stage each part, commit.

The home plans its parts (hygge.partitions); the plan is kept on the runner's board (first
writer wins), so every partition splits the same way even when the steps run on several
machines. `stage(i)` moves partition i with an ordinary Flow into a `PartStore`, which stages
into the multi-part store (its `commit` only seals the part) and records the sealed part on
the board. `commit(count)` takes the destination's run lock (unless the runner holds it for
the whole flow already), checks that every partition succeeded and that the rows staged are
the rows read, merges the incremental state, asks the runner's fence, publishes every part at
once, and in a `finally` (after a failure or after the commit) deletes every part's staging.

`hygge run` calls `start()`: every stage at once (at most `parallel`), then the commit, under
one lock. A worker runs `stage(i)` as one task per partition and `commit(count)` as the step
after them all (worker.tasks), with a Redis board.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import polars as pl

from hygge.contract import (
    Home,
    IncrementalHome,
    MultiPartStore,
    SplittableHome,
    StatefulStore,
    Store,
)
from hygge.errors import FlowError, HyggeError
from hygge.gate import Quality
from hygge.locks import NoLock, RunLock
from hygge.progress import FlowState
from hygge.quality import CheckAccumulator
from hygge.report import FlowReport
from hygge.retry import retry_async
from hygge.run.context import RunContext
from hygge.run.move import Flow, first_cause, resume_home, state_record
from hygge.run.steps import partition_name

log = logging.getLogger("hygge.run")  # -v: planning and committing partitions


def part_name(key: str, index: int) -> str:
    """A part's name in its store: "<parts key>.p<index>" (the parts of one run share a key)."""
    return f"{key}.p{index:04d}"


def quarantine_part(key: str, index: int) -> str:
    """A part's name in the quarantine store (apart from the data's, should both stores
    share a path)."""
    return part_name(f"{key}q", index)


class PartStore(Store[Any]):
    """One part of a multi-part store, seen by a Flow as a whole store: `commit` seals."""

    abstract = True

    def __init__(self, store: Store[Any], part: str) -> None:
        assert isinstance(store, MultiPartStore)
        super().__init__(store.name, store.settings)
        self.store, self.part = store, part
        self.sealed: dict[str, Any] | None = None
        # A part describes itself as its store (plans, messages): an instance shadows the
        # class's type name, which is registered for the part class itself.
        self.type_name = store.type_name  # type: ignore[misc]

    async def open(self) -> None:
        self.sealed = None
        await self.parts.open_part(self.part)

    @property
    def parts(self) -> MultiPartStore:
        assert isinstance(self.store, MultiPartStore)
        return self.store

    async def write(self, df: pl.DataFrame) -> None:
        await self.store.write(df)

    async def staged_rows(self) -> int | None:
        return await self.store.staged_rows()

    async def commit(self) -> None:
        self.sealed = await self.parts.seal_part(self.part)

    async def abort(self) -> None:
        await self.store.abort()

    def lock(self, flow: str) -> RunLock:
        """None: a part runs under the lock its commit takes (PartitionedFlow.commit)."""
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
        context: RunContext | None = None,
        quality: Quality | None = None,
    ) -> None:
        if not isinstance(home, SplittableHome):
            raise FlowError(f"flow '{name}': home '{home.name}' cannot split into partitions")
        store = new_store()  # the committing one; each part builds its own
        if not isinstance(store, MultiPartStore):
            raise FlowError(f"flow '{name}': store '{store.name}' cannot take parts")
        self.home: SplittableHome = home
        self.new_store = new_store
        self.store: MultiPartStore = store
        self.name = name
        self.partitions, self.ranges = partitions, ranges
        self.context = context or RunContext()
        self.parallel = max(1, parallel or os.cpu_count() or 1)
        if self.context.max_parallel is not None:  # `hygge run --concurrency` bounds it
            self.parallel = min(self.parallel, max(1, self.context.max_parallel))
        self.queue_size, self.retries, self.retry_delay = queue_size, retries, retry_delay
        self.incremental, self.full_refresh = incremental, full_refresh
        self.quality = quality  # shape per part; checks merged from the parts, judged once
        self._reports: dict[int, FlowReport] = {}
        self._held: RunLock | None = None  # the destination's run lock, while it is held
        self._total = 0
        self._started = 0.0

    # -- the whole flow in one process ------------------------------------------------------
    def run(self) -> FlowReport:
        return asyncio.run(self.start())

    async def start(self) -> FlowReport:
        """Every partition at once (at most `parallel`), then the commit, under one lock: a
        second run is refused, or waits, for as long as this one may still publish."""
        self._started = time.perf_counter()
        self._emit(FlowState.RUNNING)
        lock = self._held = self._lock()
        try:
            await self._acquire(lock)
            try:
                report = await self._stage_all_then_commit()
            finally:
                await asyncio.shield(asyncio.to_thread(lock.release))
        except BaseException as exc:
            self._emit(FlowState.FAILED, message=str(exc))
            raise
        return self._emit(FlowState.SUCCESS, done=report)

    async def _stage_all_then_commit(self) -> FlowReport:
        key = uuid.uuid4().hex[:12]
        parts = (await self.plan(key))["parts"]
        try:
            return await self._stage_then_commit(key, len(parts))
        finally:
            self.home.release_parts(parts)  # e.g. the snapshot, also after a failed part

    async def _stage_then_commit(self, key: str, count: int) -> FlowReport:
        self._total = count
        slots = asyncio.Semaphore(self.parallel)

        async def one(index: int) -> None:
            async with slots:
                await self.stage(index, count, key, functools.partial(self._part_progress, index))

        try:
            async with asyncio.TaskGroup() as group:
                for index in range(count):
                    group.create_task(one(index))
        except BaseException as exc:  # the others were cancelled: discard every part
            await asyncio.shield(self.discard(key, count))
            cause = first_cause(exc) if isinstance(exc, BaseExceptionGroup) else exc
            raise cause from None
        return await self.commit(key, count, lock_held=True)

    # -- the steps (hygge.run.steps) --------------------------------------------------------
    async def plan(self, key: str) -> dict[str, Any]:
        """The run's plan: the one on the board, else planned here and offered (first writer
        wins; a loser uses the winner's plan, so every partition splits alike). It holds each
        part's descriptor and the incremental state it was planned from."""
        board = self.context.board
        plan = board.plan(key)
        if plan is None:
            state = None
            if self.incremental:
                home, store = cast(Home[Any], self.home), cast(Store[Any], self.store)
                state = await resume_home(self.name, home, store, self.full_refresh)
            parts = await self.home.plan_parts(self.partitions, self.ranges)
            plan = board.offer_plan(key, {"parts": parts, "state": state})
            log.debug(
                "flow '%s': planned %d partition(s) (asked: %s)%s",
                self.name,
                len(parts),
                self.partitions if self.ranges is None else f"{len(self.ranges)} ranges",
                "" if plan["parts"] == parts else "; another process planned first: its plan",
            )
            # What a plan holds for its parts (PostgreSQL: the snapshot all of them read)
            # stays in this process until every partition is sealed (watched in the
            # background: on workers they run elsewhere); a plan that lost, not at all.
            sealed = functools.partial(self._all_sealed, key, len(parts))
            self.home.release_parts(parts, until=sealed if plan["parts"] == parts else None)
        if self.incremental:
            assert isinstance(self.home, IncrementalHome)
            self.home.resume(plan["state"])
        return plan

    def _all_sealed(self, key: str, count: int) -> bool:
        return len(self.context.board.sealed(key)) >= count

    async def stage(self, index: int, count: int, key: str, on_progress: Any = None) -> FlowReport:
        """Stage partition `index` of `count` and record it sealed on the board."""
        plan = await self.plan(key)
        store = PartStore(self.new_store(), part_name(key, index))
        name = partition_name(self.name, index, count)
        checkpoint = None
        gate = None
        if self.quality is not None:  # quarantine: the part's failing rows to a part of its own
            aside = self._new_quarantine()
            gate = self.quality.gate(
                decides=False,
                quarantine=(
                    None
                    if aside is None
                    else lambda: PartStore(aside(), quarantine_part(key, index))
                ),
            )
        if index < len(plan["parts"]):
            home = self.home.part(plan["parts"][index])
            flow = Flow(
                home,
                store,
                name=name,
                queue_size=self.queue_size,
                retries=self.retries,  # 0 where the queue retries (FlowSpec.build)
                retry_delay=self.retry_delay,
                on_progress=on_progress or self.context.on_progress,
                before_commit=self.context.fence,
                gate=gate,
            )
            report = await flow.start()
            if self.incremental:
                assert isinstance(home, IncrementalHome)
                checkpoint = home.checkpoint()
        else:  # a worker's plan has fewer parts than tasks (fewer distinct values): empty
            await store.open()
            await store.commit()
            report = FlowReport(name, FlowState.SUCCESS)
        record = {
            "sealed": store.sealed,
            "rows": report.rows,
            "batches": report.batches,
            "memory_bytes": report.memory_bytes,
            "checkpoint": checkpoint,
            "worker": self.context.worker,
        }
        if gate is not None:  # the part's checks (JSON: the board may be Redis), judged at commit
            record["checks"] = gate.acc.to_json()
            gate.acc.close()  # its temporary files
            record["quarantine"] = gate.quarantine_sealed
            record["quarantined"] = gate.quarantined
        self.context.board.seal(key, index, record)
        return report

    async def commit(
        self,
        key: str,
        count: int,
        *,
        failed: Sequence[tuple[str, str]] = (),
        lock_held: bool = False,
    ) -> FlowReport:
        """Publish every partition at once under the destination's run lock, or, if one
        failed (`failed`: each failed partition's name and message), none; in every case
        every partition's staging is deleted afterwards."""
        started = time.perf_counter()
        lock = NoLock(self.name, "") if lock_held else self._lock()
        if not lock_held:
            self._held = lock
        try:
            await self._acquire(lock)
            try:
                records, checks = await self._commit(key, count, failed)
            finally:
                await asyncio.shield(asyncio.to_thread(lock.release))
        finally:  # after a failure: discard every part; after the commit: clean up
            await asyncio.shield(self.discard(key, count))
        return FlowReport(  # the whole flow's numbers, whichever runner staged the parts
            self.name,
            FlowState.SUCCESS,
            rows=sum(int(r["rows"]) for r in records),
            batches=sum(int(r.get("batches", 0)) for r in records),
            memory_bytes=sum(int(r.get("memory_bytes", 0)) for r in records),
            seconds=time.perf_counter() - started,
            parts_done=count,
            parts_total=count,
            checks=checks,
        )

    async def discard(self, key: str, count: int) -> None:
        await self.store.abort_parts([{"part": part_name(key, i)} for i in range(count)])
        aside = self._quarantine_store()
        if aside is not None:
            await aside.abort_parts([{"part": quarantine_part(key, i)} for i in range(count)])

    def _new_quarantine(self) -> Callable[[], Store[Any]] | None:
        """The quarantine store's factory, when failing rows are set aside."""
        q = self.quality
        if q is None or q.on_failure != "quarantine" or not q.checks:
            return None
        return q.quarantine

    def _quarantine_store(self) -> MultiPartStore | None:
        new = self._new_quarantine()
        if new is None:
            return None
        store = new()
        if not isinstance(store, MultiPartStore):  # refused when flows.yml is read
            raise FlowError(
                f"flow '{self.name}': quarantine store '{store.name}' cannot take parts"
            )
        return store

    async def _commit(
        self, key: str, count: int, failed: Sequence[tuple[str, str]]
    ) -> tuple[list[dict[str, Any]], str]:
        if failed:
            raise FlowError(
                f"flow '{self.name}': {len(failed)} of its {count} partitions failed "
                f"({failed[0][0]}: {failed[0][1]}); nothing was published and every "
                "partition's staging was deleted",
                hint="fix the cause and run the flow again",
            )
        found = self.context.board.sealed(key)
        missing = [i + 1 for i in range(count) if i not in found]
        if missing:
            raise FlowError(
                f"flow '{self.name}': partitions {missing} left no record of what they "
                "staged; nothing was published",
                hint="run the flow again",
            )
        records = [found[i] for i in range(count)]
        sealed = [r["sealed"] for r in records]
        read = sum(int(r["rows"]) for r in records)
        log.debug(
            "flow '%s': %d partition(s) sealed, %s rows read; checking and committing them",
            self.name,
            count,
            f"{read:,}",
        )
        if await self.store.parts_committed(sealed):  # this step, run again after it landed
            log.info(
                "flow '%s': this run's commit had landed already; nothing more is published",
                self.name,
            )
            return records, ""
        with unreachable_parts(self.name, records):
            await check_rows(self.name, self.store, sealed, read)
        if self.incremental:
            plan = await self.plan(key)  # the state the parts were read from
            assert isinstance(self.home, IncrementalHome)
            self.home.resume(plan["state"])
            merged = self.home.merge_checkpoints([r["checkpoint"] for r in records])
            assert isinstance(self.store, StatefulStore)  # checked when flows.yml was read
            self.store.stage_state(self.name, state_record(self.home, merged, read))
        checks = ""
        if self.quality is not None:  # duplicates across parts (and workers) count
            q = self.quality
            checks = q.judge_parts(
                [CheckAccumulator.from_json(list(q.checks), r["checks"], q.secret) for r in records]
            )
        aside = self._quarantine_store()
        if aside is not None:  # every part sealed its failing rows: counted like the data
            set_aside = [r["quarantine"] for r in records if r.get("quarantine")]
            quarantined = sum(int(r.get("quarantined") or 0) for r in records)
            with unreachable_parts(self.name, records):
                await check_rows(self.name, aside, set_aside, quarantined)
            if quarantined:
                checks += f"; {quarantined:,} rows quarantined"
        if self.context.fence is not None:
            await self.context.fence()
        if self._held is not None:  # still this run's (an object-store lock can expire)
            await asyncio.to_thread(self._held.confirm)
        if aside is not None:  # the same order as a plain flow: the quarantine, then the data
            with unreachable_parts(self.name, records):
                await self._publish(aside, set_aside)
        with unreachable_parts(self.name, records):
            await self._publish(self.store, sealed)
        return records, checks

    async def _publish(self, store: MultiPartStore, sealed: list[dict[str, Any]]) -> None:
        """`commit_parts`, tried again after a transient failure: it is idempotent, so a
        commit that landed unheard (a COMMIT whose answer was lost with the connection)
        finds its mark and publishes nothing more, and the flow succeeds."""

        async def commit() -> None:
            await store.commit_parts(sealed)

        await retry_async(commit, retries=self.retries, base_delay=self.retry_delay)

    # -- helpers ----------------------------------------------------------------------------
    async def _acquire(self, lock: RunLock) -> None:
        """Take the run lock as a plain Flow does: wait or refuse (the context says), a
        transient fault (a database's advisory lock over a dropped connection) retried."""

        async def take() -> None:
            await lock.acquire(wait=self.context.wait_for_lock)

        await retry_async(take, retries=self.retries, base_delay=self.retry_delay)

    def _lock(self) -> RunLock:
        """The destination's run lock, the one a plain run of this flow takes."""
        assert isinstance(self.store, Store)
        return self.store.lock(self.name)

    def _part_progress(self, index: int, report: FlowReport) -> None:
        self._reports[index] = report
        if report.state in (FlowState.RUNNING, FlowState.RETRYING):
            self._emit(FlowState.RUNNING)

    def _emit(
        self, state: FlowState, message: str = "", done: FlowReport | None = None
    ) -> FlowReport:
        """The whole flow's report: summed over its parts while they run; once committed,
        the commit step's numbers (the report a worker's commit step gives too)."""
        reports = list(self._reports.values()) if done is None else [done]
        finished = sum(r.state == FlowState.SUCCESS for r in self._reports.values())
        report = FlowReport(
            self.name,
            state,
            rows=sum(r.rows for r in reports),
            batches=sum(r.batches for r in reports),
            memory_bytes=sum(r.memory_bytes for r in reports),
            seconds=time.perf_counter() - self._started,
            message=message or (f"partitions {finished}/{self._total}" if self._total else ""),
            parts_done=finished,
            parts_total=self._total,
            checks=done.checks if done is not None else "",
        )
        if self.context.on_progress is not None:
            self.context.on_progress(report)
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


@contextlib.contextmanager
def unreachable_parts(flow: str, records: list[dict[str, Any]]) -> Iterator[None]:
    """A staged part the committing process cannot read (a local path on another machine):
    said as which partition, which worker staged it and why, not as a raw `[Errno 2]`."""
    try:
        yield
    except (OSError, HyggeError) as exc:
        text = str(exc)
        for index, record in enumerate(records):
            sealed = record.get("sealed") or {}
            files = [str(f) for f in sealed.get("files", [])]
            lost = next((f for f in files if f in text), None)
            if lost is None and not (sealed.get("part") and f"part {sealed['part']} " in text):
                continue
            why = (
                f"its file {lost} does not exist on {os.uname().nodename}"
                if lost is not None and not os.path.exists(lost)
                else _plain(exc)
            )
            raise FlowError(
                f"flow '{flow}': partition {index + 1}/{len(records)} "
                f"(part {sealed.get('part', '?')}), staged by worker "
                f"{record.get('worker') or 'unknown'}, cannot be read where the commit runs: "
                f"{why}; nothing was published",
                hint="a local path is not shared between machines: write to object storage "
                "or SQL, or mount one volume on every worker and set `shared_volume: true` "
                "on the store",
            ) from None
        raise


def _plain(exc: BaseException) -> str:
    """An OS error without its `[Errno N]` prefix."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc).split("] ", 1)[-1] if str(exc).startswith("[Errno") else str(exc)
