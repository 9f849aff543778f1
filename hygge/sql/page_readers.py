"""One table read by several connections at once, each over a range of its pages, all in one
snapshot.

A single connection reads a table on one server process and decodes it on one client thread,
and the server sends only while that thread asks for more: on two cores the read leaves half
the machine idle. Here each reader is its own connection (a server process) and its own
thread (the driver decodes without the GIL), reading its share of the table's pages
(PostgreSQL: a range of `ctid`, a TID range scan); the planner's connection exports its
snapshot and every reader imports it, so together they read exactly the table as of one
moment, as one connection would. Their batches interleave: a table has no row order.

Memory: at most one batch per reader waits for the consumer, besides the one each reader is
decoding. When the consumer stops early (an error, a closed flow), the readers cancel their
statements on the server.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

import pyarrow as pa

from hygge.sql.base import Session
from hygge.sql.types import Column

AUTO_READERS = 2  # both cores, when the table is large enough to pay for the connections
AUTO_MIN_BYTES = 64 << 20  # on disk: known at once, unlike the row estimate ANALYZE keeps
_DONE = object()


def page_selects(
    session: Session, select: str, table: str, schema: str | None, wanted: int | None
) -> list[str]:
    """`select` (a plain SELECT of `table`, no WHERE) once per reader, each restricted to its
    range of pages and wrapped so that filters can be added around it; [] for one reader.
    Readers: `wanted`, or (None) two for a table of 64 MB or more on disk."""
    count, smallest = (wanted, 0) if wanted is not None else (AUTO_READERS, AUTO_MIN_BYTES)
    return [
        f"SELECT * FROM ({select} WHERE {where}) AS hygge_pages"
        for where in session.page_ranges(table, schema, count, smallest)
    ]


def read(
    session: Session,
    connect: Callable[[], Session],
    selects: list[str],
    batch_size: int,
    known: list[Column] | None,
) -> Iterator[pa.Table]:
    """The rows of every select, read at once by one connection each in `session`'s snapshot
    (which `session` holds until the last reader has imported it)."""
    snapshot = session.export_snapshot()
    assert snapshot is not None, "page ranges need a database that shares snapshots"
    out: queue.Queue[object] = queue.Queue(maxsize=len(selects))
    stop = threading.Event()
    imported = threading.Barrier(len(selects) + 1)

    def reader(select: str) -> None:
        own: Session | None = None
        try:
            try:
                own = connect()
                own.import_snapshot(snapshot)
            finally:
                imported.wait()  # the exporting transaction may end once all have imported
            for table in own.stream(select, batch_size, known):
                if stop.is_set():
                    break  # closes the stream: the statement is cancelled on the server
                out.put(table)
        except BaseException as exc:  # handed to the consumer, which raises it
            out.put(exc)
        finally:
            if own is not None:
                own.close()
            out.put(_DONE)

    threads = [
        threading.Thread(target=reader, args=(s,), name=f"hygge-pages-{i}", daemon=True)
        for i, s in enumerate(selects)
    ]
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        imported.wait()
        session.rollback()  # every reader holds the snapshot now
        while running:
            item = out.get()
            if item is _DONE:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                assert isinstance(item, pa.Table)
                yield item
    finally:
        stop.set()
        while running:  # unblock readers waiting to hand over a batch, until all have ended
            if out.get() is _DONE:
                running -= 1
        for thread in threads:
            thread.join()
