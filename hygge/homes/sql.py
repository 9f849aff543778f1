"""A SQL table or query in, streamed batch by batch (memory bounded by `batch_size`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, ClassVar

import polars as pl
import pyarrow as pa
from pydantic import ConfigDict, Field, model_validator

from hygge import partitions
from hygge.batching import iterate_in_thread, rebatch
from hygge.contract import Home, HomeSettings, IncrementalHome, SplittableHome
from hygge.errors import HomeError, HyggeError
from hygge.sql import faults, mysql_arrow, page_readers, snapshot
from hygge.sql.base import Session, user_query
from hygge.sql.clauses import has_order_by, outside_parentheses
from hygge.sql.connect import connect, session_class
from hygge.sql.cursor import Cursor, coerce, from_json, parse_lag, sql_literal, to_json
from hygge.sql.types import family
from hygge.sql.url import SqlUrl, parse_url

log = logging.getLogger("hygge.homes")

URL_SCHEMES = ("postgresql", "postgres", "pgsql", "mysql", "mariadb", "sqlite")

# Half the file homes' batch: the readers decode in pieces of their own (connectorx 25,000
# rows), so a smaller batch costs no speed, and every batch in flight between the read and
# the writers is half as big. lineitem SF1, interleaved, against 100,000 rows: MariaDB 7.93
# vs 8.02 s and a peak RSS of 332 vs 428 MB (medians of 5); PostgreSQL 7.27 vs 7.28 s and
# 302 vs 332 MB (medians of 4); CPU within 1%. (dlt's SQL source reads 50,000 rows a chunk.)
SQL_BATCH_SIZE = 50_000


class SQLHomeSettings(HomeSettings):
    model_config = ConfigDict(populate_by_name=True)

    batch_size: int = Field(SQL_BATCH_SIZE, gt=0, description="Rows per batch.")

    connection: str | None = Field(
        None, description="SQLAlchemy URL (default: $DATABASE_URL), e.g. postgresql://u@h/db."
    )
    table: str | None = Field(None, description="Table to read (or give `query`).")
    db_schema: str | None = Field(None, alias="schema", description="Schema of `table`.")
    query: str | None = Field(None, description="A SELECT to read instead of a table.")
    columns: list[str] | None = Field(None, description="Read only these columns of `table`.")
    cursor: str | None = Field(
        None, description="Incremental: the column that orders new rows (timestamp/date/int)."
    )
    lag: str | int | None = Field(
        None, description="Incremental: re-read this far below the mark (10m, 2h, 1d; or an int)."
    )
    initial: Any = Field(None, description="Incremental: the first run starts at this value.")
    partition_on: str | None = Field(
        None, description="Partitioned flows: the integer, date or timestamp column to range."
    )
    readers: int | None = Field(
        None,
        ge=1,
        le=16,
        description="Connections that read one table at once, each a range of its pages, in "
        "one snapshot (PostgreSQL 14+). Default: 2 from 64 MB on disk, else 1.",
    )

    @model_validator(mode="after")
    def _table_or_query(self) -> SQLHomeSettings:
        if bool(self.table) == bool(self.query):
            raise ValueError("give exactly one of `table` or `query`")
        if self.query and self.columns:
            raise ValueError("`columns` applies to `table`; select the columns in `query`")
        if (self.lag is not None or self.initial is not None) and not self.cursor:
            raise ValueError("`lag` and `initial` need `cursor: COLUMN` (incremental loads)")
        parse_lag(self.lag)  # a malformed lag is a config error, before anything runs
        return self


class SQLHome(SplittableHome, IncrementalHome, Home[SQLHomeSettings]):
    """Rows of a database table or query; PostgreSQL streams through binary COPY (ADBC).

    `SQLHome("users", connection=url)` reads table `users`; the URL defaults to $DATABASE_URL.
    """

    type_name = "sql"
    url_schemes: ClassVar[tuple[str, ...]] = URL_SCHEMES
    Settings: ClassVar[type[SQLHomeSettings]] = SQLHomeSettings

    @classmethod
    def defaults(cls, name: str, values: Mapping[str, Any]) -> dict[str, Any]:
        # The Python API: the home's name is its table.
        return {} if values.get("table") or values.get("query") else {"table": name}

    @property
    def url(self) -> SqlUrl:
        return parse_url(self.settings.connection, f"home '{self.name}'")

    @property
    def reads_ahead(self) -> int:
        """MariaDB/MySQL's connectorx path reads `mysql_arrow.AHEAD` batches ahead (its
        relay's window), and holds the batch it regroups from connectorx's pieces: the flow's
        queue needs that many batches less (each is about 20 MB on lineitem; when connectorx
        still read whole batches, a queue of one batch instead of four took lineitem SF1's
        peak from about 400 to 355 MB, in the same time)."""
        try:
            mysql = self.url.dialect == "mysql"
        except HyggeError:
            return 0  # the read reports a bad URL
        return mysql_arrow.AHEAD + 1 if mysql and mysql_arrow.available() else 0

    # -- incremental: rows with `cursor >= mark - lag`, see hygge/sql/cursor.py ------------
    _cursor: Cursor | None = None
    _saved: dict[str, Any] | None = None  # the state resumed from (every read starts there)
    _range: partitions.Range | None = None  # a partition: only rows of this range
    _range_kind: str = "int"
    _snapshot: str | None = None  # a partition: the planner's snapshot, read by every part

    def incremental_definition(self) -> dict[str, Any]:
        s = self.settings
        what: dict[str, str | None] = (
            {"query": s.query} if s.query else {"table": s.table, "schema": s.db_schema}
        )
        return {"type": self.type_name, **what, "cursor": s.cursor}

    def resume(self, state: dict[str, Any] | None) -> None:
        s = self.settings
        if not s.cursor:
            raise HomeError(
                f"home '{self.name}': an incremental SQL home needs `cursor: COLUMN`",
                hint="name the column that grows with new and changed rows, e.g. updated_at",
            )
        self._saved = state
        self._cursor = Cursor(self.name, s.cursor, parse_lag(s.lag), s.initial)
        self._cursor.resume(state)

    def checkpoint(self) -> dict[str, Any]:
        assert self._cursor is not None, "checkpoint() before resume()"
        return self._cursor.checkpoint()

    def describe(self) -> str:
        s = self.settings
        what = f"table {s.table}" if s.table else "query"
        return f"sql:{self.url.masked} {what}"

    async def check(self) -> None:
        await asyncio.to_thread(self._check_sync)

    def _check_sync(self) -> None:
        session = self._connect()
        try:
            sql, columns = self._select(session)
            if self.settings.query:  # let the database parse it, without running it
                try:
                    session.query(f"SELECT * FROM ({sql}) AS hygge_check WHERE 1 = 0")
                except Exception as exc:
                    raise self._query_error(exc) from exc
            if cursor := self.settings.cursor:  # the cursor column, its type, lag, initial
                s, saved = self.settings, self._cursor
                self._cursor = Cursor(self.name, cursor, parse_lag(s.lag), s.initial)
                try:
                    self._cursor_select(session, sql, columns)
                finally:
                    self._cursor = saved
            if self.settings.partition_on:
                self._partition_kind(session, sql, columns)
        finally:
            session.close()

    def column_names(self) -> list[str] | None:
        """The columns a table read yields (None for a query): `hygge validate` checks a
        flow's shape and checks against them."""
        if self.settings.query:
            return None
        session = self._connect()
        try:
            _, columns = self._select(session)
        finally:
            session.close()
        return [c.name for c in columns] if columns is not None else None

    async def estimate_rows(self) -> int | None:
        """A table's catalog estimate; a query, or an incremental read, is not estimated."""
        if self.settings.query or self._cursor is not None:
            return None
        return await asyncio.to_thread(self._estimate_rows_sync)

    def _estimate_rows_sync(self) -> int | None:
        if self.settings.table is None:
            return None
        try:
            session = self._connect()
        except HyggeError:
            return None  # reading reports it properly; an estimate never fails a flow
        try:
            return session.estimate_rows(self.settings.table, self.settings.db_schema)
        except Exception:
            return None
        finally:
            session.close()

    # -- partitions: ranges of `partition_on`, see hygge/partitions.py -------------------
    async def plan_parts(
        self, count: int | str | None, ranges: list[list[Any]] | None = None
    ) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._plan_parts_sync, count, ranges)

    def _plan_parts_sync(
        self, count: int | str | None, ranges: list[list[Any]] | None
    ) -> list[dict[str, Any]]:
        session = self._connect()
        shared: str | None = None
        try:
            sql, columns = self._select(session)
            if self._cursor is not None:  # incremental: partition the window, not the table
                self._cursor.resume(self._saved)
                sql = self._cursor_select(session, sql, columns)
            kind = self._partition_kind(session, sql, columns)
            if ranges:
                try:
                    planned = partitions.explicit_ranges(ranges, lambda v: coerce(v, kind))
                except (TypeError, ValueError) as exc:
                    raise HomeError(
                        f"home '{self.name}': ranges {ranges} are not {kind} values for "
                        f"partition_on column '{self.settings.partition_on}'",
                        hint="give ranges of the column's type, e.g. [[0, 1000], [1000, 2000]]",
                    ) from exc
            # From here on the planner's session holds the snapshot every part reads (the
            # bounds are found in it too): hygge/sql/snapshot.py.
            shared = self._export(session)
            if not ranges:
                column = session.quote(self.settings.partition_on or "")
                bounds = f"SELECT min({column}), max({column}) FROM ({sql}) AS hygge_bounds"
                try:
                    low, high = session.query(bounds)[0]
                except Exception as exc:
                    snapshot.release(shared)
                    raise self._query_error(exc) from exc
                low, high = (None if v is None else coerce(v, kind) for v in (low, high))
                planned = partitions.split_range(low, high, partitions.partition_count(count), kind)
        finally:
            if shared is None:
                session.close()
        return [
            {
                "kind": kind,
                "low": to_json(r.low),
                "high": to_json(r.high),
                "nulls": r.nulls,
                "snapshot": shared,
            }
            for r in planned
        ]

    def _export(self, session: Session) -> str | None:
        try:
            return snapshot.hold(session)
        except Exception as exc:
            raise self._query_error(exc) from exc

    def release_parts(
        self, descriptors: list[dict[str, Any]], until: Callable[[], bool] | None = None
    ) -> None:
        for shared in {d.get("snapshot") for d in descriptors if d.get("snapshot")}:
            snapshot.release(shared, until)

    def parts_note(self) -> str | None:
        note = session_class(self.url).snapshot_note
        return f"{self.url.dialect}: partitions {note}" if note else None

    def part(self, descriptor: dict[str, Any]) -> SQLHome:
        home = SQLHome(self.name, self.settings)
        kind = descriptor["kind"]
        home._range = partitions.Range(
            from_json(descriptor["low"], kind),
            from_json(descriptor["high"], kind),
            bool(descriptor["nulls"]),
        )
        home._range_kind = kind
        home._snapshot = descriptor.get("snapshot")
        if self._cursor is not None:
            home.resume(self._saved)
        return home

    def merge_checkpoints(self, states: list[dict[str, Any]]) -> dict[str, Any]:
        """The highest mark of any part; the lag window's hashes of every part (each part's
        window starts at or below the overall one, so together they cover it)."""
        assert self._cursor is not None, "merge_checkpoints() before resume()"
        base = self._cursor.checkpoint()  # the resumed mark: where parts with no rows stand
        kind = next((s["type"] for s in states if s.get("type")), base.get("type"))
        marks = [from_json(s.get("mark"), kind) for s in [base, *states]]
        marks = [m for m in marks if m is not None]
        window = sorted({h for s in states for h in s.get("window", [])})
        return {
            **base,
            "type": kind,
            "mark": to_json(max(marks)) if marks else None,
            "window": window,
        }

    def _partition_kind(self, session: Session, sql: str, columns: list[Any] | None) -> str:
        """The family of `partition_on` (int, date, timestamp), or a HomeError saying why the
        column cannot be ranged."""
        name = self.settings.partition_on or ""
        arrow_type, where = self._column_type(session, sql, columns, name, "partition_on")
        kind = family(arrow_type) if arrow_type is not None else "int"
        if kind not in partitions.RANGE_FAMILIES:
            raise HomeError(
                f"home '{self.name}': partition_on column '{name}' of {where} is {kind} "
                f"({arrow_type}), which cannot be split into ranges",
                hint="partition on an integer, date or timestamp column (e.g. the id)",
            )
        return kind

    async def read_batches(self) -> AsyncIterator[pl.DataFrame]:
        async for df in iterate_in_thread(self._batches()):
            yield df

    def _connect(self) -> Session:
        return connect(self.url, HomeError, f"home '{self.name}'")

    def _select(self, session: Session) -> tuple[str, list[Any] | None]:
        """The SELECT to run, and the table's columns when reading a table."""
        s = self.settings
        if s.query:
            return user_query(s.query), None
        assert s.table is not None  # the settings give a table or a query
        columns = session.columns(s.table, s.db_schema)
        where = f"{s.db_schema}.{s.table}" if s.db_schema else s.table
        if columns is None:
            raise HomeError(
                f"home '{self.name}': table {where} not found in {self.url.where()}",
                hint="check `table` and `schema` (names are case-sensitive when quoted)",
            )
        if wanted := s.columns:
            names = [c.name for c in columns]
            missing = [c for c in wanted if c not in names]
            if missing:
                raise HomeError(
                    f"home '{self.name}': column(s) {', '.join(missing)} not in table {where}",
                    hint=f"available columns: {', '.join(names)}",
                )
            columns = [c for c in columns if c.name in wanted]
            columns.sort(key=lambda c: wanted.index(c.name))
        listing = session.select_list(columns)
        return f"SELECT {listing} FROM {session.qualified(s.table, s.db_schema)}", columns

    def _warn_if_order_lost(self, session: Session, own: str, sql: str) -> None:
        """Say that the query's own ORDER BY (in `own`) is lost when hygge wrapped it in a
        derived table (`sql`) on a database that ignores a derived table's ORDER BY
        (MariaDB/MySQL): once per read, and for a partitioned flow only in its first
        partition (the one open below), so N parts do not print N warnings."""
        if sql == own or session.derived_order_kept:
            return
        if self._range is not None and self._range.low is not None:
            return
        if has_order_by(outside_parentheses(own)):
            log.warning(
                "home '%s': the query's ORDER BY is not kept: hygge reads it as a derived "
                "table to add the %s bound, and MariaDB/MySQL ignore the ORDER BY of a "
                "derived table, so rows arrive in the server's order",
                self.name,
                "partition" if self._range is not None else "incremental",
            )

    def _batches(self) -> Iterator[pl.DataFrame]:
        session = self._connect()
        try:
            sql, columns = self._select(session)
            own = sql
            pages = self._page_selects(session, sql)
            if self._cursor is not None:
                self._cursor.resume(self._saved)  # a retried read starts from the saved state
                sql = self._cursor_select(session, sql, columns)
                pages = [self._cursor.filter(session, p, is_query=True) for p in pages]
            if self._range is not None:
                column = session.quote(self.settings.partition_on or "")
                kind = self._range_kind
                cond = self._range.predicate(column, lambda v: sql_literal(v, kind, session))
                sql = f"SELECT * FROM ({sql}) AS hygge_part WHERE {cond}"
            self._warn_if_order_lost(session, own, sql)
            if self._snapshot is not None:
                session.import_snapshot(self._snapshot)
            if pages:
                stream = page_readers.read(session, self._connect, pages, self.batch_size, columns)
            else:
                stream = session.stream(sql, self.batch_size, columns)
            for table in rebatch(_batches_of(self._guard(stream)), self.batch_size):
                if table.num_rows:
                    df = self._to_polars(table)
                    if self._cursor is not None:
                        df = self._cursor.observe(df)
                    if df.height:
                        yield df
        finally:
            session.close()

    def _page_selects(self, session: Session, sql: str) -> list[str]:
        """The table's read split over several connections (hygge/sql/page_readers.py), or
        [] to read it on one: a query, a partition (already one of several reads) and a
        database that cannot split or share a snapshot read on one."""
        s = self.settings
        if s.query or self._range is not None or self._snapshot is not None or s.readers == 1:
            return []
        assert s.table is not None
        return page_readers.page_selects(session, sql, s.table, s.db_schema, s.readers)

    def _cursor_select(self, session: Session, sql: str, columns: list[Any] | None) -> str:
        """Check the cursor column, then push `cursor >= mark - lag` into the SELECT."""
        assert self._cursor is not None
        arrow_type, where = self._column_type(
            session, sql, columns, self.settings.cursor or "", "cursor"
        )
        self._cursor.bind(arrow_type, where)
        return self._cursor.filter(session, sql, is_query=columns is None)

    def _column_type(
        self, session: Session, sql: str, columns: list[Any] | None, name: str, key: str
    ) -> tuple[pa.DataType | None, str]:
        """The Arrow type of column `name` of the table or query (None: an empty query), and
        how to name where it was looked for; a HomeError naming `key` if it is not there."""
        s = self.settings
        if columns is not None:
            where = f"table {s.db_schema + '.' if s.db_schema else ''}{s.table}"
            found = next((c for c in columns if c.name == name), None)
            if found is None:
                raise HomeError(
                    f"home '{self.name}': {key} column '{name}' is not in {where}",
                    hint=f"available columns: {', '.join(c.name for c in columns)}",
                )
            return found.type, where
        probe = (
            f"SELECT {session.quote(name)} FROM ({sql}) AS hygge_probe "
            f"WHERE {session.quote(name)} IS NOT NULL LIMIT 1"
        )
        try:
            first = next(iter(session.stream(probe, 1, None)), None)
        except Exception as exc:
            with contextlib.suppress(Exception):
                session.rollback()
            raise HomeError(
                f"home '{self.name}': {key} column '{name}' cannot be read from the query: "
                f"{faults.detail(self.url, exc)}",
                hint=f"select the {key} column in `query` (names are case-sensitive)",
            ) from exc
        return (first.schema.field(0).type if first is not None else None), "the query"

    def _guard(self, stream: Iterator[pa.Table]) -> Iterator[pa.Table]:
        """The driver's errors as HomeErrors naming the home (and never the password)."""
        try:
            yield from stream
        except HyggeError as exc:
            if isinstance(exc, HomeError):
                raise
            raise HomeError(
                f"home '{self.name}': {exc.message}", hint=exc.hint, transient=exc.transient
            ) from exc
        except Exception as exc:
            raise self._query_error(exc) from exc

    def _query_error(self, exc: Exception) -> HomeError:
        url = self.url
        what = "query" if self.settings.query else f"table {self.settings.table}"
        return HomeError(
            f"home '{self.name}': reading the {what} from {url.where()} failed: "
            f"{faults.detail(url, exc)}",
            hint="check the query's SQL" if self.settings.query else None,
            transient=faults.is_transient(exc),
        )

    def _to_polars(self, table: pa.Table) -> pl.DataFrame:
        try:
            # pyarrow has no type hints, so polars' overloads cannot tell a table (a frame)
            # from an array (a series).
            # rechunk=False: a batch regrouped from a driver's pieces (`rebatch`) keeps them
            # as chunks instead of being copied whole once more (polars copies strings anyway)
            return pl.from_arrow(table, rechunk=False)  # type: ignore[return-value]
        except Exception as exc:
            for field in table.schema:
                try:
                    pl.from_arrow(table.select([field.name]))
                except Exception:
                    raise HomeError(
                        f"home '{self.name}': column '{field.name}' has a type hygge cannot "
                        f"carry ({field.type})",
                        hint="cast it in a `query`, e.g. to text",
                    ) from exc
            raise


def _batches_of(tables: Iterator[pa.Table]) -> Iterator[pa.RecordBatch]:
    for table in tables:
        yield from table.to_batches()
