"""Bulk loading of a flow's batches into the staging table.

PostgreSQL gets `streams` connections, each running one binary COPY (ADBC) for the whole
flow, fed from a shared bounded queue: no per-batch round trips or commits, and the server
parses on as many cores as there are streams while hygge reads the next batches.
MySQL/MariaDB gets `streams` connections running LOAD DATA LOCAL INFILE on batch files from
a bounded queue, encoded while the previous ones load. Other databases load batch by batch on
the store's own connection. Each connection commits once, at the end.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Iterator

import pyarrow as pa

from hygge.errors import HyggeError
from hygge.sql.base import Session
from hygge.sql.mysql import MySqlSession
from hygge.sql.postgres import PostgresSession
from hygge.sql.types import tag, uuid_text_to_bytes


class Loader:
    """Batch by batch through `session.load`; `finish()` commits."""

    def __init__(self, session: Session, table: str, schema: str | None) -> None:
        self.session, self.table, self.schema = session, table, schema
        self.server_rows: int | None = 0  # rows the server says it took; None if unknown

    def put(self, data: pa.Table) -> None:
        self.session.load(self.table, self.schema, data)
        self.server_rows = None  # executemany gives no reliable count: count(*) instead

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
        self.lock = threading.Lock()

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
            taken = session.cur.adbc_ingest(
                self.table, reader, mode="append", db_schema_name=self.schema
            )
            session.commit()
            with self.lock:  # COPY's own row count, as the server reports it
                self.server_rows = (self.server_rows or 0) + int(taken)
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


class LoadDataStreams(Loader):
    """MySQL/MariaDB: `streams` connections each run LOAD DATA LOCAL INFILE in a transaction
    of its own, taking batch files from a bounded queue while the next batches are encoded.

    The server parses and inserts a statement's rows on one core, which made it the
    bottleneck of a load; InnoDB inserts into one table from several connections at
    once. The first stream is the store's own connection."""

    def __init__(
        self, session: MySqlSession, table: str, schema: str | None, streams: int = 2
    ) -> None:
        super().__init__(session, table, schema)
        self.mysql = session
        self.streams = max(1, streams)
        self.files: queue.Queue[tuple[str, pa.Schema, int] | object] = queue.Queue(
            maxsize=self.streams
        )
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()

    def put(self, data: pa.Table) -> None:
        self._raise_errors()
        if not self.threads:
            self.threads = [
                threading.Thread(target=self._load, args=(n,), name=f"hygge-load-{n}", daemon=True)
                for n in range(self.streams)
            ]
            for t in self.threads:
                t.start()
        path = self.mysql.stage_file(data)
        item = (path, data.schema, data.num_rows)
        while True:
            try:
                self.files.put(item, timeout=0.2)
                return
            except queue.Full:
                if self.errors or not any(t.is_alive() for t in self.threads):
                    _unlink(path)
                    self._raise_errors()

    def _load(self, n: int) -> None:
        """One stream: load files until told to stop, then commit (nothing after an error:
        the store drops the staging table). Files are taken, and deleted, to the end."""
        session: MySqlSession | None = None
        try:
            while (item := self.files.get()) is not _STOP:
                assert isinstance(item, tuple)
                path, schema, rows = item
                try:
                    if not self.errors:
                        if session is None:
                            session = self.mysql if n == 0 else MySqlSession(self.mysql.url)
                        taken = session.load_file(path, self.table, self.schema, schema, rows)
                        with self.lock:
                            self.server_rows = (self.server_rows or 0) + taken
                except BaseException as exc:
                    self.errors.append(exc)
                finally:
                    _unlink(path)
            if session is not None and not self.errors:
                session.commit()
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            if session is not None and session is not self.mysql:
                with contextlib.suppress(Exception):
                    session.close()  # uncommitted rows roll back with the connection

    def _raise_errors(self) -> None:
        if self.errors:
            raise self.errors[0]

    def _stop(self) -> None:
        for _ in self.threads:
            while any(t.is_alive() for t in self.threads):
                try:
                    self.files.put(_STOP, timeout=0.2)
                    break
                except queue.Full:
                    continue
        for t in self.threads:
            t.join()
        self.threads = []

    def finish(self) -> None:
        self._stop()
        self._raise_errors()
        self.session.commit()

    def cancel(self) -> None:
        self.errors.append(HyggeError("load cancelled"))  # the streams skip what is left
        self._stop()
        super().cancel()


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def loader_for(session: Session, table: str, schema: str | None, streams: int) -> Loader:
    """The fastest correct bulk path for the session's database."""
    if isinstance(session, PostgresSession):
        return CopyStreams(session, table, schema, streams)
    if isinstance(session, MySqlSession):
        return LoadDataStreams(session, table, schema, streams)
    return Loader(session, table, schema)
