"""Any other database SQLAlchemy speaks (SQLite, ...): SQLAlchemy Core, executemany."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hygge.errors import HyggeError
from hygge.sql.base import Session, literal
from hygge.sql.load_plan import LoadRules
from hygge.sql.postgres import PostgresSql
from hygge.sql.types import (
    JSON,
    NUMERIC_TEXT,
    Column,
    decimal_type,
    family,
)
from hygge.sql.url import SqlUrl


class AlchemySession(Session):
    """The general path: SQLAlchemy Core over the database's own DB-API driver."""

    def __init__(self, url: SqlUrl) -> None:
        super().__init__(url)
        import sqlalchemy as sa

        self.sa = sa
        self.engine = sa.create_engine(url.sqlalchemy())
        self.conn = self.engine.connect()
        self.dialect = url.dialect
        self.preparer = self.engine.dialect.identifier_preparer
        self.max_identifier = self.engine.dialect.max_identifier_length or 63

    def quote(self, name: str) -> str:
        return self.preparer.quote_identifier(name)

    def execute(self, sql: str) -> None:
        self.conn.exec_driver_sql(sql)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.conn.exec_driver_sql(sql).fetchall()]

    def close(self) -> None:
        super().close()
        self.engine.dispose()

    def columns(self, table: str, schema: str | None) -> list[Column] | None:
        inspector = self.sa.inspect(self.conn)
        if not inspector.has_table(table, schema=schema):
            return None
        declared = self._declared(inspector, table, schema)
        self.rollback()
        return [Column(n, generic_arrow_type(d), d, _char_limit(d)) for n, d in declared]

    def _declared(self, inspector: Any, table: str, schema: str | None) -> list[tuple[str, str]]:
        """Each column's name and declared type, as SQLAlchemy reflects them."""
        return [
            (c["name"], str(c["type"].compile(self.engine.dialect)))
            for c in inspector.get_columns(table, schema=schema)
        ]

    def stream(self, sql: str, batch_size: int, known: list[Column] | None) -> Iterator[pa.Table]:
        result = self.conn.execution_options(stream_results=True).exec_driver_sql(sql)
        names = list(result.keys())
        by_name = {c.name: c.type for c in known or []}
        try:
            for rows in result.partitions(batch_size):
                columns = list(zip(*rows, strict=True))
                yield pa.table(
                    {
                        n: _generic_array(list(v), by_name.get(n), n)
                        for n, v in zip(names, columns, strict=True)
                    }
                )
        finally:
            result.close()
            self.rollback()

    def load(self, table: str, schema: str | None, data: pa.Table) -> None:
        names = data.column_names
        params = [f"p{i}" for i in range(len(names))]
        sql = self.sa.text(
            f"INSERT INTO {self.qualified(table, schema)} "
            f"({', '.join(self.quote(n) for n in names)}) "
            f"VALUES ({', '.join(':' + p for p in params)})"
        )
        plain = pa.table(
            {p: _driver_values(data.column(n)) for p, n in zip(params, names, strict=True)}
        )
        rows = plain.to_pylist()
        if rows:
            self.conn.execute(sql, rows)

    def unique_keys(self, table: str, schema: str | None) -> list[set[str]]:
        inspector = self.sa.inspect(self.conn)
        keys = []
        pk = inspector.get_pk_constraint(table, schema=schema).get("constrained_columns")
        if pk:
            keys.append(set(pk))
        for index in inspector.get_indexes(table, schema=schema):
            if index.get("unique"):
                keys.append(set(index["column_names"]))
        for constraint in inspector.get_unique_constraints(table, schema=schema):
            keys.append(set(constraint["column_names"]))
        self.rollback()
        return keys


class SqliteSession(AlchemySession):
    """SQLite: a unique index for a merge key, no type changes, DDL inside the publish."""

    rules = LoadRules("sqlite", alters_types=False, label="SQLite")

    def begin(self) -> None:
        self.conn.commit()  # pysqlite would run DDL outside any transaction
        self.conn.exec_driver_sql("BEGIN")

    def _declared(self, inspector: Any, table: str, schema: str | None) -> list[tuple[str, str]]:
        info = self.query(f"PRAGMA table_info({self.quote(table)})")
        return [(r[1], str(r[2])) for r in info]  # as written (reflection drops some)

    def timestamp_literal(self, value: dt.datetime) -> str:
        if value.tzinfo is not None:  # UTC wall time, as the base does
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return literal(value.isoformat(sep=" "))  # SQLite keeps timestamps as text

    def add_key_sql(self, table: str, schema: str | None, key: list[str]) -> str:
        keys = ", ".join(self.quote(k) for k in key)  # no ADD PRIMARY KEY in SQLite
        index = self.qualified(f"ux_{table}_hygge", schema)  # SQLite: the index names the schema
        return f"CREATE UNIQUE INDEX {index} ON {self.quote(table)} ({keys})"


class AlchemyPostgresSession(AlchemySession, PostgresSql):
    """PostgreSQL through a driver the user named (e.g. postgresql+psycopg2://)."""


def _char_limit(declared: str) -> int | None:
    m = re.match(r"\s*(?:VAR)?CHAR(?:ACTER)?(?: VARYING)?\s*\((\d+)\)", declared, re.I)
    return int(m.group(1)) if m else None


def generic_arrow_type(declared: str) -> pa.DataType:
    """A declared column type (SQLite's or SQLAlchemy's compiled name) -> Arrow."""
    d = declared.upper()
    m = re.match(r"\s*(NUMERIC|DECIMAL)(?:_TEXT)?\s*\((\d+)\s*,\s*(\d+)\)", d)
    if m:
        return decimal_type(int(m.group(2)), int(m.group(3)))
    rules = [
        (r"^BOOL", pa.bool_()),
        (r"^TINYINT|^SMALLINT", pa.int16()),
        (r"^BIGINT", pa.int64()),
        (r"INT", pa.int64()),
        (r"^(REAL|FLOAT4)$", pa.float32()),
        (r"DOUB|FLOA|REAL", pa.float64()),
        (r"^UUID|^VARCHAR\(36\)$", pa.large_string()),
        (r"^JSON", JSON),
        (r"WITH TIME ZONE|TIMESTAMPTZ", pa.timestamp("us", "UTC")),
        (r"^TIMESTAMP|^DATETIME", pa.timestamp("us")),
        (r"^DATE", pa.date32()),
        (r"^TIME", pa.time64("us")),
        (r"BLOB|BINARY|BYTEA", pa.large_binary()),
        (r"^NUMERIC|^DECIMAL", NUMERIC_TEXT),
    ]
    for pattern, t in rules:
        if re.search(pattern, d):
            return t
    return pa.large_string()


def _generic_array(values: list[Any], t: pa.DataType | None, name: str) -> pa.Array:
    """Driver values as Arrow: as the declared type when known (text dates parsed), else
    inferred."""
    if t is None:
        try:
            return pa.array(values)
        except (pa.ArrowException, TypeError, ValueError):
            return pa.array([None if v is None else str(v) for v in values], pa.large_string())
    if isinstance(t, pa.BaseExtensionType):
        storage = pa.array([None if v is None else str(v) for v in values], t.storage_type)
        return pa.ExtensionArray.from_storage(t, storage)
    kind = family(t)
    try:
        if kind in ("date", "timestamp", "timestamptz", "time", "decimal") and any(
            isinstance(v, str) for v in values
        ):
            text = pa.array(values, pa.string())
            if kind == "time":
                return pa.array(
                    [None if v is None else dt.time.fromisoformat(v) for v in values], t
                )
            if kind == "timestamptz":  # stored as UTC wall time
                text = pc.replace_substring_regex(text, r"(Z|[+-]00:?00)$", "")
                return text.cast(pa.timestamp(t.unit)).cast(t)
            return text.cast(t)
        if kind == "bool":
            values = [None if v is None else bool(v) for v in values]
        return pa.array(values, t)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise HyggeError(f"column '{name}': cannot read its values as {t}: {exc}") from exc


def _driver_values(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A column as values any DB-API driver binds: ISO text for dates and decimals."""
    kind = family(column.type)
    if isinstance(column.type, pa.BaseExtensionType):
        return pa.chunked_array([c.storage for c in column.chunks], type=column.type.storage_type)
    if kind == "timestamptz":
        return column.cast(pa.timestamp(column.type.unit)).cast(pa.string())
    if kind in ("date", "timestamp", "time", "decimal"):
        return column.cast(pa.string())
    return column
