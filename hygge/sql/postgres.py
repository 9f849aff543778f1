"""PostgreSQL through ADBC's libpq driver: binary COPY both ways, Arrow-native."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from hygge.sql.base import Session, like_prefix, literal
from hygge.sql.load_plan import LoadRules
from hygge.sql.types import (
    JSON,
    NUMERIC_TEXT,
    UUID,
    Column,
    as_extension,
    pg_arrow_type,
    tag,
    uuid_bytes_to_text,
    uuid_text_to_bytes,
)
from hygge.sql.url import SqlUrl


class PostgresSql(Session):
    """PostgreSQL's SQL, for any connection to it (ADBC here, or SQLAlchemy with a named
    driver): a schema check in the catalog, MERGE on 15+, numerics staged as text."""

    dialect = "postgresql"
    rules = LoadRules("postgresql", numeric_staged_as_text=True, label="PostgreSQL")
    _has_merge: bool | None = None

    def schema_exists(self, schema: str) -> bool:
        found = self.query(f"SELECT 1 FROM pg_namespace WHERE nspname = {literal(schema)}")
        self.rollback()
        return bool(found)

    def timestamp_literal(self, value: dt.datetime) -> str:
        text = value.isoformat(sep=" ")  # a zoned value keeps its offset: TIMESTAMPTZ compares
        return f"TIMESTAMPTZ '{text}'" if value.tzinfo else f"TIMESTAMP '{text}'"

    def has_merge(self) -> bool:
        """PostgreSQL 15+ upserts with MERGE; older ones with INSERT ... ON CONFLICT."""
        if self._has_merge is None:
            version = self.query("SELECT current_setting('server_version_num')")[0][0]
            self.rollback()
            self._has_merge = int(version) >= 150000
        return self._has_merge

    def merge_needs_unique_key(self) -> bool:
        return not self.has_merge()  # MERGE matches on any columns

    def merge_sql(
        self, target: str, staging: str, schema: str | None, names: list[str], key: list[str]
    ) -> str:
        if not self.has_merge():
            return super().merge_sql(target, staging, schema, names, key)
        q = self.quote
        others = [n for n in names if n not in key]
        on = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in key)
        update = (
            " WHEN MATCHED THEN UPDATE SET " + ", ".join(f"{q(n)} = s.{q(n)}" for n in others)
            if others
            else ""
        )
        cols = ", ".join(q(n) for n in names)
        values = ", ".join(f"s.{q(n)}" for n in names)
        return (
            f"MERGE INTO {self.qualified(target, schema)} AS t "
            f"USING {self.qualified(staging, schema)} AS s ON {on}{update} "
            f"WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({values})"
        )


class PostgresSession(PostgresSql):
    """One ADBC connection; numerics are read as text and parsed by Arrow."""

    def __init__(self, url: SqlUrl) -> None:
        super().__init__(url)
        import adbc_driver_postgresql.dbapi as adbc

        self.conn = adbc.connect(url.libpq())
        self.cur = self.conn.cursor()

    def execute(self, sql: str) -> None:
        self.cur.execute(sql)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        self.cur.execute(sql)
        return list(self.cur.fetchall())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.cur.close()
        super().close()

    def columns(self, table: str, schema: str | None) -> list[Column] | None:
        nsp = literal(schema) if schema else "current_schema()"
        rows = self.query(
            "SELECT a.attname, t.typname, a.atttypmod, format_type(a.atttypid, a.atttypmod) "
            "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid "
            f"WHERE n.nspname = {nsp} AND c.relname = {literal(table)} "
            "AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
            "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
        )
        self.rollback()  # leave no transaction open between statements
        if not rows:
            return None
        out = []
        for name, typname, typmod, formatted in rows:
            limit = typmod - 4 if typname in ("varchar", "bpchar") and typmod > 4 else None
            out.append(Column(name, pg_arrow_type(typname, typmod), formatted, limit))
        return out

    def select_list(self, columns: list[Column]) -> str:
        # numerics as text: PostgreSQL prints them as fast as it sends them in binary, and
        # Arrow parses text into decimals several times faster than the driver decodes them
        return ", ".join(
            f"{self.quote(c.name)}::text AS {self.quote(c.name)}"
            if pa.types.is_decimal(c.type)
            else self.quote(c.name)
            for c in columns
        )

    def stream(self, sql: str, batch_size: int, known: list[Column] | None) -> Iterator[pa.Table]:
        decimals = {c.name: c.type for c in known or [] if pa.types.is_decimal(c.type)}
        cur = self.conn.cursor()
        try:
            cur.execute(sql)
            reader = cur.fetch_record_batch()
            for batch in reader:
                yield _pg_fix(pa.Table.from_batches([batch]), decimals)
        finally:
            cur.close()
            with contextlib.suppress(Exception):
                self.conn.rollback()

    def load(self, table: str, schema: str | None, data: pa.Table) -> None:
        for i, field in enumerate(data.schema):
            if tag(field.type) == "uuid":
                data = data.set_column(i, field.name, uuid_text_to_bytes(data.column(i)))
        self.cur.adbc_ingest(table, data, mode="append", db_schema_name=schema)
        self.conn.commit()

    def claim(self, name: str) -> bool:
        got = self.query(f"SELECT pg_try_advisory_lock(hashtext({literal(name)}))")[0][0]
        self.commit()
        return bool(got)

    def unclaim(self, name: str) -> None:
        self.query(f"SELECT pg_advisory_unlock(hashtext({literal(name)}))")
        self.commit()

    def tables_like(self, prefix: str, schema: str | None) -> list[str]:
        nsp = literal(schema) if schema else "current_schema()"
        rows = self.query(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE n.nspname = {nsp} AND c.relkind = 'r' AND c.relname LIKE {like_prefix(prefix)}"
        )
        self.rollback()
        return [r[0] for r in rows]

    def unique_keys(self, table: str, schema: str | None) -> list[set[str]]:
        nsp = literal(schema) if schema else "current_schema()"
        rows = self.query(
            "SELECT i.indexrelid, a.attname FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) "
            f"WHERE i.indisunique AND n.nspname = {nsp} AND c.relname = {literal(table)}"
        )
        self.rollback()
        keys: dict[Any, set[str]] = {}
        for index, column in rows:
            keys.setdefault(index, set()).add(column)
        return list(keys.values())


def _pg_fix(table: pa.Table, decimals: dict[str, pa.DataType]) -> pa.Table:
    """ADBC's text-carried types as hygge's: numerics as exact decimals, UUIDs as text."""
    for i, field in enumerate(table.schema):
        meta = field.metadata or {}
        pgtype = meta.get(b"POSTGRESQL:type", b"").decode()
        column = table.column(i)
        if field.name in decimals and pgtype == "text":  # read as text, see select_list()
            new = column.cast(decimals[field.name])
        elif pgtype == "numeric":
            typmod = int(meta.get(b"POSTGRESQL:typmod", b"-1"))
            target = pg_arrow_type("numeric", typmod)
            storage = pa.chunked_array(
                [c.storage if isinstance(c, pa.ExtensionArray) else c for c in column.chunks],
                type=pa.string(),
            )
            if target == NUMERIC_TEXT:
                new = as_extension(storage, NUMERIC_TEXT)
            else:
                new = storage.cast(target)
        elif tag(field.type) == "uuid":
            new = pa.chunked_array([uuid_bytes_to_text(c) for c in column.chunks], type=UUID)
        elif tag(field.type) == "json":
            new = as_extension(column, JSON) if field.type != JSON else column
        else:
            continue
        table = table.set_column(i, pa.field(field.name, new.type), new)
    return table.replace_schema_metadata(None)
