"""Batch plumbing: run blocking iterators off the event loop, and cut Arrow streams to size."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Iterator
from enum import Enum
from typing import TypeVar

import pyarrow as pa

T = TypeVar("T")


class _End(Enum):
    """The end of an iterator (an enum member, so a type checker narrows it away)."""

    END = 0


async def iterate_in_thread(items: Iterator[T]) -> AsyncIterator[T]:
    """Drive a blocking iterator in a worker thread, one item at a time.

    Decoding a batch (parquet, CSV, a database cursor) releases the GIL, so this lets reading
    overlap with writing while the event loop stays responsive.
    """
    try:
        while True:
            item = await asyncio.to_thread(next, items, _End.END)
            if item is _End.END:
                return
            yield item
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            # ValueError: still running in its thread after a cancel; it ends there.
            with contextlib.suppress(ValueError):
                close()


def rebatch(batches: Iterable[pa.RecordBatch], size: int) -> Iterator[pa.Table]:
    """Regroup a stream of record batches into tables of exactly `size` rows (last one less).

    Readers such as pyarrow's streaming CSV cut by bytes, not rows; this gives every home the
    same `batch_size` meaning while holding at most about one batch in memory.
    """
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for batch in batches:
        while batch.num_rows:
            take = min(size - pending_rows, batch.num_rows)
            pending.append(batch.slice(0, take))
            pending_rows += take
            batch = batch.slice(take)
            if pending_rows == size:
                yield pa.Table.from_batches(pending)
                pending, pending_rows = [], 0
    if pending_rows:
        yield pa.Table.from_batches(pending)
