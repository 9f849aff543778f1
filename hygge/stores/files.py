"""What file stores share: stage outside the dataset, roll files by rows, commit atomically.

Where the bytes go is a `Dataset` (`_dataset.py`): a local folder (`_local_dataset.py`) or
an object-store prefix (`object_dataset.py`), behind one interface and one commit journal.
This module is the format-independent store lifecycle on top: open, write batches rolled
into files of `max_rows_per_file` rows, count them back, commit or abort, parts of a
partitioned flow, incremental state.

Encoding (parquet's dictionary, pages, zstd) costs more CPU than reading, so a file store
writes with `writers` lanes (two by default): once the output passes `PARALLEL_AFTER` rows,
batches go to the lanes in turn, each lane encoding its own file on a thread of its own
(pyarrow's writers release the GIL), while the flow reads the next batch. A lane takes one
batch at a time, so memory stays bounded by a batch per lane besides the flow's queue.

A commit is made under a commit key, one per run of the flow (`commit_key`; kept across the
attempts of one store, set by a worker to its job's run): once a commit under that key has
landed, a repeated commit (a retry after an interrupted publish) publishes nothing more, so
`mode: append` never writes a run's rows twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import polars as pl
import pyarrow as pa
from pydantic import Field

from hygge.contract import (
    MultiPartStore,
    PathSetting,
    StatefulStore,
    Store,
    StoreSettings,
    default_path,
    parts_run,
)
from hygge.errors import StoreError
from hygge.storage import is_object_url
from hygge.stores._dataset import Dataset

T = TypeVar("T")
# A second writer starts once the output passes this many rows (or a file's worth, if files
# are smaller): a small output stays one file, a big one is encoded on two cores.
PARALLEL_AFTER = 1_000_000
log = logging.getLogger("hygge.stores")  # -v: where a store stages, and how it commits
_DISK_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
}


class FileStoreSettings(StoreSettings):
    path: PathSetting
    max_rows_per_file: int = Field(
        5_000_000, gt=0, description="Start a new file after this many rows."
    )
    writers: int = Field(
        2,
        ge=1,
        le=16,
        description="Files written at once, each encoded on a thread of its own, once the "
        "output passes a million rows (batches go to them in turn); 1: one file at a time, "
        "rows in the order they were read.",
    )
    # Object stores only: credentials/endpoints in delta-rs key names; see docs/objectstore.md.
    storage_options: dict[str, str] | None = None


class FileStore(MultiPartStore, StatefulStore, Store[FileStoreSettings]):
    """A folder (or prefix) of data files, written through staging and published atomically."""

    abstract = True
    suffix: ClassVar[str]
    Settings: ClassVar[type[FileStoreSettings]] = FileStoreSettings

    @classmethod
    def defaults(cls, name: str, values: Mapping[str, Any]) -> dict[str, Any]:
        return {"path": default_path(name)}

    def __init__(self, name: str, settings: Any = None, **values: Any) -> None:
        super().__init__(name, settings, **values)
        self.remote = is_object_url(self.settings.path)
        # One run of the flow, across every attempt of this store (see the module docstring).
        self.commit_key: str | None = uuid.uuid4().hex
        # File writers (lanes), each written from a worker thread under its own lock. A write
        # runs in a thread that outlives its flow (the home failed): abort() and a retry's
        # fresh staging wait for it (closing a writer mid-write crashes pyarrow), and it never
        # writes into those. `_io` orders the lifecycle (re-entrant: abort() closes the
        # writers while it holds it).
        self._io = threading.RLock()
        self._naming = threading.Lock()
        self._pool = WriterPool(1)
        self._opened = False
        # Rows by flow of interrupted commits this store completed, across its attempts.
        self._completed: dict[str, int] = {}
        self._reset()

    def _reset(self) -> None:
        """Fresh staging state: every attempt of a flow stages from scratch (the caller
        holds `_io`; a write of the attempt before finishes first)."""
        self._pool.wait_idle()
        self.run_id = uuid.uuid4().hex[:12]
        self.dataset = self._new_dataset(self.run_id)
        self._pool = WriterPool(self.settings.writers, self.settings.max_rows_per_file)
        self._schema: pa.Schema | None = None  # every file's, from the first batch
        self._file_index = 0
        self._states: dict[str, dict[str, Any]] = {}
        self._aborted = False

    def _new_dataset(self, run_id: str) -> Dataset:
        if self.remote:
            from hygge.stores.object_dataset import dataset_class  # loads pyarrow.fs

            remote = dataset_class(self.settings.path)
            dataset: Dataset = remote(self.settings.path, self.settings.storage_options, run_id)
        else:
            from hygge.stores._local_dataset import LocalDataset

            dataset = LocalDataset(self.settings.path, run_id, self.type_name)
        dataset.completed = self._completed
        return dataset

    @property
    def staging(self) -> str:
        return self.dataset.staging

    # -- format hooks -------------------------------------------------------------------
    def arrow_compat(self, df: pl.DataFrame) -> pl.CompatLevel:
        """Arrow flavour handed to the writer. The oldest level gives plain string/binary
        types that every reader understands (pyarrow lacks many string_view kernels); the
        newest would be zero-copy, about 1 s faster per 6 M TPC-H lineitem rows."""
        return pl.CompatLevel.oldest()

    def open_writer(self, path: Any, schema: pa.Schema) -> Any:
        """A writer for one new data file (`path`: a local path or an output stream)."""
        raise NotImplementedError

    def first_batch(self, table: pa.Table) -> None:
        """Called once per attempt with the first batch, before any file opens: a format may
        choose its writer's settings from the data."""

    def write_chunk(self, writer: Any, table: pa.Table) -> None:
        """Append rows to the current file."""
        writer.write_table(table)

    def count_rows(self, path: Any) -> int | None:
        """Rows in a written file, read back from the file itself, or None if unknown."""
        return None

    # -- lifecycle ----------------------------------------------------------------------
    async def check(self) -> None:
        await asyncio.to_thread(self.dataset.check)

    async def open(self) -> None:
        await asyncio.to_thread(self._disk_errors, self._open_sync)

    def _open_sync(self) -> None:
        with self._io:
            self._reset()
        self.dataset.prepare()
        self._opened = True
        log.debug(
            "store '%s' (%s): staging in %s (%s), then published into %s through the commit "
            "journal under %s/_hygge",
            self.name,
            self.type_name,
            self._masked(self.staging),
            "an object-store prefix, copied at commit" if self.remote else "a local folder",
            self.where,
            self.where,
        )

    async def write(self, df: pl.DataFrame) -> None:
        """Stage a batch. Used on its own, outside a flow (no `open()` first), a write is one
        whole commit: `await store.write(df)` publishes `df` atomically (per `mode`)."""
        if not self._opened:
            return await self.write_alone(self._stage, df)
        await self._stage(df)

    async def _stage(self, df: pl.DataFrame) -> None:
        """Hand the batch to a lane and return while it encodes (`WriterPool.submit`)."""
        run_id = self.run_id
        await self._pool.submit(
            df.height, lambda lane: self._disk_errors(self._write_sync, lane, df, run_id)
        )

    async def _settle_all(self, quiet: bool = False) -> None:
        await self._pool.settle_all(quiet)

    def _write_sync(self, lane: Lane, df: pl.DataFrame, run_id: str | None = None) -> None:
        table = df.to_arrow(compat_level=self.arrow_compat(df))  # here: off the event loop
        with lane.lock:
            if self._aborted or (run_id is not None and run_id != self.run_id):
                return  # a write of an attempt that was given up: nothing may land
            self._write_rows(lane, table)

    def _write_rows(self, lane: Lane, table: pa.Table) -> None:
        limit = self.settings.max_rows_per_file
        with self._naming:  # every file of the run gets the schema of the first batch
            if self._schema is None:
                self.first_batch(table)
                self._schema = table.schema
        while table.num_rows:
            if lane.writer is None or lane.rows >= limit:
                self._start_file(lane)
            take = min(limit - lane.rows, table.num_rows)
            chunk = table.slice(0, take)
            try:
                self.write_chunk(lane.writer, chunk)
            except (pa.ArrowException, ValueError) as exc:
                raise StoreError(
                    f"cannot write a batch to {self.where}: {exc}",
                    hint="every batch of a flow must have the same columns and types",
                ) from exc
            lane.rows += take
            table = table.slice(take)

    def _start_file(self, lane: Lane) -> None:
        lane.close(self.dataset.close_file)
        with self._naming:  # lanes open files concurrently: one index, one list of files
            name = f"part-{self.run_id}-{self._file_index:05d}{self.suffix}"
            self._file_index += 1
            ref, lane.sink = self.dataset.new_file(name)
        log.debug("store '%s': staging file %s", self.name, self._masked(ref))
        lane.writer = self.open_writer(lane.sink, self._schema)
        lane.rows = 0

    def _close_writer(self) -> None:
        """Close every lane's file (waiting for a write still running in a thread)."""
        with self._io:
            for lane in self._pool.lanes:
                with lane.lock:
                    lane.close(self.dataset.close_file)

    async def staged_rows(self) -> int | None:
        await self._settle_all()
        return await asyncio.to_thread(self._disk_errors, self._staged_rows_sync)

    def _staged_rows_sync(self) -> int | None:
        self._close_writer()
        return self._count(self.dataset.files)

    def _count(self, files: list[str]) -> int | None:
        counts = [self.count_rows(self.dataset.open_staged(f)) for f in files]
        return None if None in counts else sum(c for c in counts if c is not None)

    async def commit(self) -> None:
        await self._settle_all()
        await asyncio.to_thread(self._disk_errors, self._commit_sync)

    def _commit_sync(self) -> None:
        self._close_writer()
        # Only an append can be doubled by a repeat; a replace repeated replaces the same.
        key = self.commit_key if self.settings.mode == "append" else None
        log.debug(
            "store '%s': committing %d staged file(s) into %s (mode %s)",
            self.name,
            len(self.dataset.files),
            self.where,
            self.settings.mode,
        )
        self.dataset.commit(self.settings.mode, self._states, key)
        self._opened = False

    async def read_state(self, flow: str) -> dict[str, Any] | None:
        return await asyncio.to_thread(self.dataset.read_state, flow)

    def stage_state(self, flow: str, state: dict[str, Any]) -> None:
        self._states[flow] = state

    def completed_rows(self, flow: str) -> int:
        return self._completed.get(flow, 0)

    async def reset_state(self, flow: str) -> bool:
        return await asyncio.to_thread(self.dataset.reset_state, flow)

    async def abort(self) -> None:
        await self._settle_all(quiet=True)  # the flow is failing already: its error counts
        await asyncio.to_thread(self._abort_sync)

    def _abort_sync(self) -> None:
        with self._io:
            self._aborted = True
            with contextlib.suppress(Exception):
                self._close_writer()
            self.dataset.abort()
            self._opened = False

    # -- parts of a partitioned flow (MultiPartStore) -------------------------------------
    async def open_part(self, part: str) -> None:
        await asyncio.to_thread(self._disk_errors, self._open_part_sync, part)

    def _open_part_sync(self, part: str) -> None:
        with self._io:
            self._reset()
        self.dataset.prepare_part(part)
        self._opened = True

    async def seal_part(self, part: str) -> dict[str, Any]:
        await self._settle_all()
        return await asyncio.to_thread(self._disk_errors, self._seal_part_sync, part)

    def _seal_part_sync(self, part: str) -> dict[str, Any]:
        self._close_writer()
        self.dataset.seal()
        rows = self._staged_rows_sync()
        return {"part": part, "files": list(self.dataset.files), "rows": rows}

    async def parts_rows(self, parts: list[dict[str, Any]]) -> int | None:
        return await asyncio.to_thread(self._parts_rows_sync, parts)

    def _parts_rows_sync(self, parts: list[dict[str, Any]]) -> int | None:
        return self._count([f for p in parts for f in p.get("files", [])])

    async def parts_committed(self, parts: list[dict[str, Any]]) -> bool:
        key = _parts_key(parts)
        return await asyncio.to_thread(self._disk_errors, self.dataset.committed, key)

    async def commit_parts(self, parts: list[dict[str, Any]]) -> None:
        await asyncio.to_thread(self._disk_errors, self._commit_parts_sync, parts)

    def _commit_parts_sync(self, parts: list[dict[str, Any]]) -> None:
        states = self._states  # given to stage_state before this commit
        with self._io:
            self._reset()
        self._states = states
        key = _parts_key(parts)
        log.debug(
            "store '%s': committing %d part(s) (%d file(s)) into %s (mode %s)",
            self.name,
            len(parts),
            sum(len(p.get("files", [])) for p in parts),
            self.where,
            self.settings.mode,
        )
        self.dataset.commit_parts(self.settings.mode, states, key, parts)

    async def abort_parts(self, parts: list[dict[str, Any]]) -> None:
        await asyncio.to_thread(self.dataset.remove_parts, parts)

    # -- helpers ------------------------------------------------------------------------
    @property
    def where(self) -> str:
        from hygge.secrets import mask_url

        return mask_url(self.settings.path)

    @staticmethod
    def _masked(ref: str) -> str:
        from hygge.secrets import mask_url

        return mask_url(ref)

    def _disk_errors(self, action: Callable[..., T], *args: Any) -> T:
        """Run `action`; a full disk (or quota, or read-only file system) is an error that
        names the store and the path, whichever writer or file call ran into it."""
        try:
            return action(*args)
        except OSError as exc:
            problem = _DISK_ERRNOS.get(exc.errno or _errno_in(exc))
            if problem is None:
                raise
            raise StoreError(
                f"store '{self.name}': {problem} while writing {self.where} (staging in "
                f"{self.staging}); nothing was published",
                hint="free space on that file system (or raise the quota), then run again",
            ) from exc


def _errno_in(exc: OSError) -> int:
    """pyarrow raises a plain OSError whose text names the cause ("[Errno 28] ...")."""
    found = re.search(r"\[Errno (\d+)\]", str(exc))
    return int(found.group(1)) if found else 0


class Lane:
    """One file being written: its writer, what it writes to, its rows, the write in flight."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # held by the thread writing; close() takes it too
        self.writer: Any = None
        self.sink: Any = None
        self.rows = 0
        self.pending: asyncio.Future[None] | None = None

    def close(self, close_sink: Callable[[Any], None]) -> None:
        """Close the current file (the caller holds the lock); `close_sink` closes what it
        was written to (a dataset's `close_file`, a stream's close)."""
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()
        if self.sink is not None:
            sink, self.sink = self.sink, None
            close_sink(sink)


class WriterPool:
    """The lanes of one attempt of a store (the file stores, the Open Mirroring store).

    Batches go to the lanes in turn once the output passes `PARALLEL_AFTER` rows (or a
    file's worth, if files are smaller; a small output stays one file), each encoded on a
    thread of its own while the flow reads the next batch. A lane takes one batch at a time
    (the next waits for its previous one, whose error surfaces there), so memory stays
    bounded by a batch per lane. Rows of different lanes interleave across files: a store
    that must keep the read order uses one lane.
    """

    def __init__(self, writers: int, max_rows_per_file: int = PARALLEL_AFTER) -> None:
        self.lanes = [Lane() for _ in range(writers)]
        self._after = min(max_rows_per_file, PARALLEL_AFTER)
        self._turn = self._handed = 0  # lane choice: batches and rows handed out

    def next_lane(self, rows: int) -> Lane:
        """Round robin over the lanes, one lane until the output passes the threshold."""
        active = len(self.lanes) if self._handed >= self._after else 1
        lane = self.lanes[self._turn % active]
        self._turn += 1
        self._handed += rows
        return lane

    async def submit(self, rows: int, write: Callable[[Lane], None]) -> None:
        """Run `write(lane)` on a thread for the next lane; return once that lane's previous
        write is done (not this one: it runs while the flow reads the next batch)."""
        lane = self.next_lane(rows)
        await self.settle(lane)
        lane.pending = asyncio.ensure_future(asyncio.to_thread(write, lane))

    async def settle(self, lane: Lane) -> None:
        """Wait for the lane's write in flight; its error is raised here."""
        if lane.pending is not None:
            pending, lane.pending = lane.pending, None
            await pending

    async def settle_all(self, quiet: bool = False) -> None:
        """Wait for every write in flight, then raise the first error (all awaited, so no
        failed write is left unretrieved)."""
        pending = [lane.pending for lane in self.lanes if lane.pending is not None]
        for lane in self.lanes:
            lane.pending = None
        results = await asyncio.gather(*pending, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors and not quiet:
            raise errors[0]

    def wait_idle(self) -> None:
        """Wait (from a thread) for a write still running in a thread of an earlier attempt."""
        for lane in self.lanes:
            with lane.lock:
                pass


def _parts_key(parts: list[dict[str, Any]]) -> str | None:
    """The flow run's commit key: a commit repeated by another process (a worker re-running
    the commit step after its publish landed) finds it and publishes nothing more."""
    run = parts_run(parts)
    return None if run is None else f"parts-{run}"
