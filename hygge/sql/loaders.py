"""Bulk loading of a flow's batches into the staging table.

PostgreSQL gets `streams` connections, each running one binary COPY (ADBC) for the whole
flow, fed from a shared bounded queue: no per-batch round trips or commits, and the server
parses on as many cores as there are streams while hygge reads the next batches. Other
databases load batch by batch on the store's own connection, committed once at the end.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator

import pyarrow as pa

from hygge.errors import HyggeError
from hygge.sql.sessions import PostgresSession, Session
from hygge.sql.types import tag, uuid_text_to_bytes


class Loader:
    """Batch by batch through `session.load`; `finish()` commits."""

    def __init__(self, session: Session, table: str, schema: str | None) -> None:
        self.session, self.table, self.schema = session, table, schema

    def put(self, data: pa.Table) -> None:
        self.session.load(self.table, self.schema, data)

    def finish(self) -> None:
        """Every batch put so far is committed to the staging table (or an error raised)."""
        self.session.commit()

    def cancel(self) -> None:
        with contextlib.suppress(Exception):
            self.session.rollback()


_STOP = object()


class CopyStreams(Loader):
    """PostgreSQL: parallel long-running binary COPY streams fed by a bounded queue."""

    def __init__(
        self, session: PostgresSession, table: str, schema: str | None, streams: int = 2
    ) -> None:
        super().__init__(session, table, schema)
        self.streams = max(1, streams)
        self.queue: queue.Queue[object] = queue.Queue(maxsize=2 * self.streams)
        self.errors: list[BaseException] = []
        self.cancelled = threading.Event()
        self.threads: list[threading.Thread] = []
        self.arrow_schema: pa.Schema | None = None

    def put(self, data: pa.Table) -> None:
        for i, field in enumerate(data.schema):
            if tag(field.type) == "uuid":  # binary COPY wants 16 raw bytes
                data = data.set_column(i, field.name, uuid_text_to_bytes(data.column(i)))
        if self.arrow_schema is None:
            self.arrow_schema = data.schema
            self.threads = [
                threading.Thread(target=self._stream, name=f"hygge-copy-{n}", daemon=True)
                for n in range(self.streams)
            ]
            for t in self.threads:
                t.start()
        self._offer(data)

    def _offer(self, item: object) -> None:
        while True:
            self._raise_errors()
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                if not any(t.is_alive() for t in self.threads):
                    self._raise_errors()
                    raise HyggeError("the COPY streams stopped unexpectedly") from None

    def _batches(self) -> Iterator[pa.RecordBatch]:
        while not self.cancelled.is_set():
            try:
                item = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if item is _STOP:
                return
            assert isinstance(item, pa.Table)
            yield from item.to_batches()
        raise HyggeError("load cancelled")

    def _stream(self) -> None:
        assert self.arrow_schema is not None
        session: PostgresSession | None = None
        try:
            session = PostgresSession(self.session.url)
            # durability comes from the publishing commit, which flushes all WAL before it
            session.execute("SET synchronous_commit = off")
            reader = pa.RecordBatchReader.from_batches(self.arrow_schema, self._batches())
            session.cur.adbc_ingest(self.table, reader, mode="append", db_schema_name=self.schema)
            session.commit()
        except BaseException as exc:
            self.errors.append(exc)
            self.cancelled.set()
        finally:
            if session is not None:
                with contextlib.suppress(Exception):
                    session.close()

    def _raise_errors(self) -> None:
        if self.errors:
            raise self.errors[0]

    def finish(self) -> None:
        if self.threads:
            for _ in self.threads:
                self._offer(_STOP)
            for t in self.threads:
                t.join()
            self.threads = []
        self._raise_errors()

    def cancel(self) -> None:
        self.cancelled.set()
        for t in self.threads:
            t.join(timeout=30)
        self.threads = []


def loader_for(session: Session, table: str, schema: str | None, streams: int) -> Loader:
    if isinstance(session, PostgresSession):
        return CopyStreams(session, table, schema, streams)
    return Loader(session, table, schema)
