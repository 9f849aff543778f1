"""One connection per dialect behind one small interface: run SQL, read the catalog, stream
a query as Arrow, and bulk-load Arrow into a table.

- PostgreSQL: ADBC's libpq driver, binary COPY both ways, Arrow-native (no per-row Python).
- MySQL/MariaDB: PyMySQL; loads with `LOAD DATA LOCAL INFILE`, reads with a streaming cursor.
- Anything else SQLAlchemy speaks (SQLite, ...): SQLAlchemy Core, executemany.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hygge.errors import HyggeError, StoreError
from hygge.sql import tsv
from hygge.sql.types import (
    JSON,
    NUMERIC_TEXT,
    UUID,
    Column,
    as_extension,
    decimal_type,
    family,
    mysql_arrow_type,
    pg_arrow_type,
    tag,
    uuid_bytes_to_text,
    uuid_text_to_bytes,
)
from hygge.sql.url import SqlUrl, connection_error


def literal(value: str) -> str:
    """A SQL string literal (catalog look-ups only; data never goes through here)."""
    return "'" + value.replace("'", "''") + "'"


def _like(prefix: str) -> str:
    """A LIKE pattern matching names that start with `prefix` literally."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return literal(escaped + "%")


class Session:
    """A connection to one database, used from one thread at a time."""

    dialect = "generic"
    quote_char = '"'
    max_identifier = 63

    def __init__(self, url: SqlUrl) -> None:
        self.url = url

    def quote(self, name: str) -> str:
        q = self.quote_char
        return q + name.replace(q, q + q) + q

    def qualified(self, table: str, schema: str | None) -> str:
        return f"{self.quote(schema)}.{self.quote(table)}" if schema else self.quote(table)

    # -- to implement ---------------------------------------------------------------------
    def execute(self, sql: str) -> None:
        raise NotImplementedError

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def begin(self) -> None:
        """Start a transaction explicitly where the driver would not (DDL included)."""

    def commit(self) -> None:
        raise NotImplementedError

    def rollback(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def columns(self, table: str, schema: str | None) -> list[Column] | None:
        """The table's columns in order, or None when it does not exist."""
        raise NotImplementedError

    def stream(self, sql: str, batch_size: int, known: list[Column] | None) -> Iterator[pa.Table]:
        """The query's rows as Arrow tables of about `batch_size` rows, fetched lazily."""
        raise NotImplementedError

    def select_list(self, columns: list[Column]) -> str:
        """The SELECT list that reads `columns` of a table."""
        return ", ".join(self.quote(c.name) for c in columns)

    def load(self, table: str, schema: str | None, data: pa.Table) -> None:
        """Append `data` (already cast to the table's types) to an existing table."""
        raise NotImplementedError

    def unique_keys(self, table: str, schema: str | None) -> list[set[str]]:
        """Column sets of the table's primary key and unique indexes."""
        return []

    def count(self, table: str, schema: str | None) -> int:
        return int(self.query(f"SELECT count(*) FROM {self.qualified(table, schema)}")[0][0])

    # -- staging tables and their owners --------------------------------------------------
    def claim(self, name: str) -> bool:
        """Try to take a lock named `name` that lives as long as this connection; a staging
        table whose lock is free was left by a run that died. False where unsupported."""
        return False

    def unclaim(self, name: str) -> None:
        """Release a lock taken with `claim`."""

    def tables_like(self, prefix: str, schema: str | None) -> list[str]:
        """Tables in the schema whose name starts with `prefix`."""
        return []


# ---------------------------------------------------------------------------------------
# PostgreSQL via ADBC


class PostgresSession(Session):
    dialect = "postgresql"

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

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.cur.close()
        self.conn.close()

    def current_schema(self) -> str:
        return str(self.query("SELECT current_schema()")[0][0])

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
            f"WHERE n.nspname = {nsp} AND c.relkind = 'r' AND c.relname LIKE {_like(prefix)}"
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


# ---------------------------------------------------------------------------------------
# MySQL / MariaDB via PyMySQL


class MySqlSession(Session):
    dialect = "mysql"
    quote_char = "`"
    max_identifier = 64

    def __init__(self, url: SqlUrl) -> None:
        super().__init__(url)
        import pymysql

        self.pymysql = pymysql
        self.conn = pymysql.connect(
            host=url.host or "localhost",
            port=url.port or 3306,
            user=url.user or "root",
            password=url.password or "",
            database=url.database,
            charset="utf8mb4",
            local_infile=True,
            autocommit=False,
            init_command="SET time_zone = '+00:00'",
            connect_timeout=10,
        )
        self.database = url.database

    def execute(self, sql: str) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())

    def begin(self) -> None:
        self.conn.begin()

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()

    def _schema_sql(self, schema: str | None) -> str:
        return literal(schema) if schema else "DATABASE()"

    def columns(self, table: str, schema: str | None) -> list[Column] | None:
        rows = self.query(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, "
            "COLUMN_COMMENT, CHARACTER_MAXIMUM_LENGTH FROM information_schema.COLUMNS "
            f"WHERE TABLE_SCHEMA = {self._schema_sql(schema)} AND TABLE_NAME = {literal(table)} "
            "ORDER BY ORDINAL_POSITION"
        )
        if not rows:
            return None
        json_columns = {
            m.group(1)
            for (clause,) in self.query(
                "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
                f"WHERE CONSTRAINT_SCHEMA = {self._schema_sql(schema)} "
                f"AND TABLE_NAME = {literal(table)}"
            )
            if (m := re.match(r"json_valid\(`((?:[^`]|``)+)`\)", clause or ""))
        }
        out = []
        for name, data_type, column_type, precision, scale, comment, max_len in rows:
            arrow = mysql_arrow_type(data_type, column_type, precision, scale, comment)
            if name in json_columns:
                arrow = JSON
            limit = max_len if data_type in ("varchar", "char") else None
            out.append(Column(name, arrow, column_type, limit))
        return out

    def stream(self, sql: str, batch_size: int, known: list[Column] | None) -> Iterator[pa.Table]:
        cur = self.conn.cursor(self.pymysql.cursors.SSCursor)
        decoders, self.conn.decoders = self.conn.decoders, {}  # raw text: Arrow parses it
        try:
            cur.execute(sql)
            fields = cur._result.fields
            names = [f.name for f in fields]
            by_name = {c.name: c.type for c in known or []}
            types = [by_name.get(f.name) or _mysql_field_type(f) for f in fields]
            schema = pa.schema([pa.field(n, t) for n, t in zip(names, types, strict=True)])
            while rows := cur.fetchmany(batch_size):
                columns = list(zip(*rows, strict=True))
                yield pa.Table.from_arrays(
                    [_from_text(v, t, n) for v, t, n in zip(columns, types, names, strict=True)],
                    schema=schema,
                )
        finally:
            self.conn.decoders = decoders
            with contextlib.suppress(Exception):
                cur.close()

    def load(self, table: str, schema: str | None, data: pa.Table) -> None:
        path = self.stage_file(data)
        try:
            self.load_file(path, table, schema, data.schema, data.num_rows)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def stage_file(self, data: pa.Table) -> str:
        """`data` as a LOAD DATA text file; the caller deletes it."""
        fd, path = tempfile.mkstemp(prefix="hygge-load-", suffix=".tsv")
        with os.fdopen(fd, "wb") as f:
            f.write(tsv.encode(data))
        return path

    def load_file(
        self, path: str, table: str, schema: str | None, columns: pa.Schema, rows: int
    ) -> int:
        """LOAD DATA LOCAL INFILE; any value the server changed (a warning) is an error."""
        targets, sets = [], []
        for i, field in enumerate(columns):
            if family(field.type) == "binary":
                targets.append(f"@v{i}")
                sets.append(f"{self.quote(field.name)} = UNHEX(@v{i})")
            else:
                targets.append(self.quote(field.name))
        sql = (
            f"LOAD DATA LOCAL INFILE {literal(path)} INTO TABLE "
            f"{self.qualified(table, schema)} CHARACTER SET utf8mb4 "
            "FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' "
            f"({', '.join(targets)})" + (f" SET {', '.join(sets)}" if sets else "")
        )
        with self.conn.cursor() as cur:
            cur.execute(sql)
            loaded = cur.rowcount
            warnings = cur.warning_count
            if warnings or loaded != rows:
                cur.execute("SHOW WARNINGS LIMIT 3")
                shown = "; ".join(str(w[2]) for w in cur.fetchall())
                raise StoreError(
                    f"{self.url.dialect} changed or refused values while loading "
                    f"({loaded} of {rows} rows): {shown or 'no warning given'}",
                    hint="widen the named column in the target, or fix the source value",
                )
            return int(loaded)

    def claim(self, name: str) -> bool:
        return self.query(f"SELECT GET_LOCK({literal(name[-64:])}, 0)")[0][0] == 1

    def unclaim(self, name: str) -> None:
        self.query(f"SELECT RELEASE_LOCK({literal(name[-64:])})")

    def tables_like(self, prefix: str, schema: str | None) -> list[str]:
        rows = self.query(
            "SELECT TABLE_NAME FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA = {self._schema_sql(schema)} AND TABLE_NAME LIKE {_like(prefix)}"
        )
        return [r[0] for r in rows]

    def unique_keys(self, table: str, schema: str | None) -> list[set[str]]:
        rows = self.query(
            "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
            f"WHERE TABLE_SCHEMA = {self._schema_sql(schema)} AND TABLE_NAME = {literal(table)} "
            "AND NON_UNIQUE = 0"
        )
        keys: dict[str, set[str]] = {}
        for index, column in rows:
            keys.setdefault(index, set()).add(column)
        return list(keys.values())


def _mysql_field_type(field: Any) -> pa.DataType:
    """A query result column's Arrow type, from the protocol's field description."""
    from pymysql.constants import FIELD_TYPE as T

    unsigned = bool(field.flags & 32)
    code = field.type_code
    if code == T.TINY:
        return pa.bool_() if field.length == 1 else (pa.uint8() if unsigned else pa.int8())
    ints = {T.SHORT: 16, T.INT24: 32, T.LONG: 32, T.LONGLONG: 64, T.YEAR: 16}
    if code in ints:
        bits = ints[code]
        return getattr(pa, f"{'u' if unsigned else ''}int{bits}")()
    if code in (T.DECIMAL, T.NEWDECIMAL):
        scale = field.scale
        precision = field.length - (1 if scale else 0) - (0 if unsigned else 1)
        return decimal_type(max(precision, 1), scale)
    simple = {
        T.FLOAT: pa.float32(),
        T.DOUBLE: pa.float64(),
        T.DATE: pa.date32(),
        T.TIME: pa.time64("us"),
        T.DATETIME: pa.timestamp("us"),
        T.TIMESTAMP: pa.timestamp("us", "UTC"),
        T.JSON: JSON,
    }
    if code in simple:
        return simple[code]
    if field.charsetnr == 63 and code in (
        T.BLOB,
        T.TINY_BLOB,
        T.MEDIUM_BLOB,
        T.LONG_BLOB,
        T.STRING,
        T.VAR_STRING,
        T.VARCHAR,
    ):
        return pa.large_binary()
    return pa.large_string()


def _from_text(values: Sequence[Any], t: pa.DataType, name: str) -> pa.Array:
    """The server's text for one column -> Arrow type `t`, parsed column-wise by Arrow (the
    pure-Python driver only splits rows). Unparsable text is an error naming the column."""
    kind = family(t)
    try:
        first = next((v for v in values if v is not None), None)
        if kind == "binary" or isinstance(first, bytes):
            if kind == "int":  # BIT(n) arrives as big-endian bytes
                values = [None if v is None else int.from_bytes(v, "big") for v in values]
                return pa.array(values, t)
            return pa.array(values, pa.large_binary()).cast(t)
        text = pa.array(values, pa.large_string())
        if isinstance(t, pa.BaseExtensionType):
            return pa.ExtensionArray.from_storage(t, text.cast(t.storage_type))
        if kind == "time":
            return pa.array([None if v is None else _time(v) for v in values], t)
        if kind == "bool":
            return text.cast(pa.int8()).cast(t)
        if kind == "timestamptz":
            return text.cast(pa.timestamp(t.unit)).cast(t)  # stored as UTC wall time
        return text.cast(t)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise HyggeError(f"column '{name}': cannot read its values as {t}: {exc}") from exc


def _time(text: str) -> dt.time:
    """MySQL TIME text as a time of day (a duration outside 00:00-24:00 is an error)."""
    if text.startswith("-") or int(text.split(":", 1)[0]) >= 24:
        raise ValueError(f"{text} is not a time of day")
    return dt.time.fromisoformat(text)


# ---------------------------------------------------------------------------------------
# Anything else, through SQLAlchemy


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

    def begin(self) -> None:
        if self.dialect == "sqlite":  # pysqlite would run DDL outside any transaction
            self.conn.commit()
            self.conn.exec_driver_sql("BEGIN")

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
        self.engine.dispose()

    def columns(self, table: str, schema: str | None) -> list[Column] | None:
        inspector = self.sa.inspect(self.conn)
        if not inspector.has_table(table, schema=schema):
            return None
        if self.dialect == "sqlite":  # declared types, as written (reflection drops some)
            info = self.query(f"PRAGMA table_info({self.quote(table)})")
            declared = [(r[1], str(r[2])) for r in info]
        else:
            declared = [
                (c["name"], str(c["type"].compile(self.engine.dialect)))
                for c in inspector.get_columns(table, schema=schema)
            ]
        self.rollback()
        return [Column(n, generic_arrow_type(d), d, _char_limit(d)) for n, d in declared]

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


# ---------------------------------------------------------------------------------------


def connect(url: SqlUrl, error: type[HyggeError], what: str) -> Session:
    """A session for `url`; a failure says where it tried, and is transient when it may heal."""
    cls = {"postgresql": PostgresSession, "mysql": MySqlSession}.get(url.dialect)
    if url.driver and url.dialect == "postgresql" and url.driver not in ("adbc", "psycopg"):
        cls = None  # the user asked for a specific driver: honour it through SQLAlchemy
    try:
        return (cls or AlchemySession)(url)
    except ImportError as exc:
        raise error(
            f"{what}: the driver for {url.dialect} is not installed ({exc.name})",
            hint="pip install 'hygge[sql]'",
        ) from None
    except Exception as exc:
        raise connection_error(url, exc, error, what) from None
