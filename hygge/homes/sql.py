"""A SQL table or query in, streamed batch by batch (memory bounded by `batch_size`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

import polars as pl
import pyarrow as pa
from pydantic import ConfigDict, Field, model_validator

from hygge.batching import iterate_in_thread, rebatch
from hygge.errors import HomeError, HyggeError
from hygge.homes.base import Home, HomeSettings
from hygge.sql.base import Session
from hygge.sql.connect import connect
from hygge.sql.url import SqlUrl, parse_url

URL_SCHEMES = ("postgresql", "postgres", "pgsql", "mysql", "mariadb", "sqlite")


class SqlHomeSettings(HomeSettings):
    model_config = ConfigDict(populate_by_name=True)

    connection: str | None = Field(
        None, description="SQLAlchemy URL (default: $DATABASE_URL), e.g. postgresql://u@h/db."
    )
    table: str | None = Field(None, description="Table to read (or give `query`).")
    db_schema: str | None = Field(None, alias="schema", description="Schema of `table`.")
    query: str | None = Field(None, description="A SELECT to read instead of a table.")
    columns: list[str] | None = Field(None, description="Read only these columns of `table`.")

    @model_validator(mode="after")
    def _table_or_query(self) -> SqlHomeSettings:
        if bool(self.table) == bool(self.query):
            raise ValueError("give exactly one of `table` or `query`")
        if self.query and self.columns:
            raise ValueError("`columns` applies to `table`; select the columns in `query`")
        return self


class SqlHome(Home):
    """Rows of a database table or query; PostgreSQL streams through binary COPY (ADBC).

    `SqlHome("users", connection=url)` reads table `users`; the URL defaults to $DATABASE_URL.
    """

    type_name = "sql"
    url_schemes: ClassVar[tuple[str, ...]] = URL_SCHEMES
    Settings: ClassVar[type[SqlHomeSettings]] = SqlHomeSettings

    def __init__(self, name: str, settings: Any = None, **values: Any) -> None:
        if settings is None and not values.get("table") and not values.get("query"):
            values["table"] = name  # the Python API: the home's name is its table
        super().__init__(name, settings, **values)

    @property
    def url(self) -> SqlUrl:
        return parse_url(self.settings.connection, f"home '{self.name}'")

    def describe(self) -> str:
        s = self.settings
        what = f"table {s.table}" if s.table else "query"
        return f"sql:{self.url.masked} {what}"

    async def check(self) -> None:
        await asyncio.to_thread(self._check_sync)

    def _check_sync(self) -> None:
        session = self._connect()
        try:
            sql, _ = self._select(session)
            if self.settings.query:  # let the database parse it, without running it
                try:
                    session.query(f"SELECT * FROM ({sql}) AS hygge_check WHERE 1 = 0")
                except Exception as exc:
                    raise self._query_error(exc) from exc
        finally:
            session.close()

    async def read_batches(self) -> AsyncIterator[pl.DataFrame]:
        async for df in iterate_in_thread(self._batches()):
            yield df

    def _connect(self) -> Session:
        return connect(self.url, HomeError, f"home '{self.name}'")

    def _select(self, session: Session) -> tuple[str, list[Any] | None]:
        """The SELECT to run, and the table's columns when reading a table."""
        s = self.settings
        if s.query:
            return s.query, None
        columns = session.columns(s.table, s.db_schema)
        where = f"{s.db_schema}.{s.table}" if s.db_schema else s.table
        if columns is None:
            raise HomeError(
                f"home '{self.name}': table {where} not found in {self.url.where()}",
                hint="check `table` and `schema` (names are case-sensitive when quoted)",
            )
        if s.columns:
            names = [c.name for c in columns]
            missing = [c for c in s.columns if c not in names]
            if missing:
                raise HomeError(
                    f"home '{self.name}': column(s) {', '.join(missing)} not in table {where}",
                    hint=f"available columns: {', '.join(names)}",
                )
            columns = [c for c in columns if c.name in s.columns]
            columns.sort(key=lambda c: s.columns.index(c.name))
        listing = session.select_list(columns)
        return f"SELECT {listing} FROM {session.qualified(s.table, s.db_schema)}", columns

    def _batches(self) -> Iterator[pl.DataFrame]:
        session = self._connect()
        try:
            sql, columns = self._select(session)
            stream = session.stream(sql, self.batch_size, columns)
            for table in rebatch(_batches_of(self._guard(stream)), self.batch_size):
                if table.num_rows:
                    yield self._to_polars(table)
        finally:
            session.close()

    def _guard(self, stream: Iterator[pa.Table]) -> Iterator[pa.Table]:
        """The driver's errors as HomeErrors naming the home (and never the password)."""
        try:
            yield from stream
        except HyggeError as exc:
            if isinstance(exc, HomeError):
                raise
            raise HomeError(f"home '{self.name}': {exc.message}", hint=exc.hint) from exc
        except Exception as exc:
            raise self._query_error(exc) from exc

    def _query_error(self, exc: Exception) -> HomeError:
        url = self.url
        detail = url.scrub(str(exc).strip()) or type(exc).__name__
        what = "query" if self.settings.query else f"table {self.settings.table}"
        transient = any(
            w in detail.lower() for w in ("connection", "server closed", "gone away", "timeout")
        )
        return HomeError(
            f"home '{self.name}': reading the {what} from {url.where()} failed: {detail}",
            hint="check the query's SQL" if self.settings.query else None,
            transient=transient,
        )

    def _to_polars(self, table: pa.Table) -> pl.DataFrame:
        try:
            return pl.from_arrow(table)  # type: ignore[return-value]
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
