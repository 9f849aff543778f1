"""MySQL/MariaDB through PyMySQL: LOAD DATA LOCAL INFILE in, a streaming cursor out.

Over 400 lines: MySQL/MariaDB's whole dialect (SQL spellings, LOAD DATA, the
PyMySQL read path and its type conversions) in its one session module.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hygge.errors import HyggeError, StoreError
from hygge.sql import mysql_arrow, tsv
from hygge.sql.base import IdentifierLimit, Session, like_prefix, literal
from hygge.sql.load_plan import LoadRules
from hygge.sql.types import (
    JSON,
    Column,
    decimal_type,
    family,
    mysql_arrow_type,
)
from hygge.sql.url import SqlUrl

log = logging.getLogger("hygge.sql.mysql")


class MySqlSession(Session):
    """One PyMySQL connection, session time zone UTC, LOAD DATA LOCAL allowed.

    MySQL/MariaDB's DDL commits by itself: a publish that must commit with a state row uses
    DML only (DELETE + INSERT, a target created ahead), and staging is dropped after it.
    """

    dialect = "mysql"
    quote_char = "`"
    max_identifier = 64
    identifier_limit = IdentifierLimit(64, "characters")  # MySQL and MariaDB alike
    rules = LoadRules("mysql", key_text_length=255, type_comments=True, label="MySQL/MariaDB")
    long_text = "LONGTEXT"
    derived_order_kept = False

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

    def default_schema(self) -> str:
        return str(self.query("SELECT DATABASE()")[0][0] or "")

    def text_literal(self, value: str) -> str:
        return literal(value.replace("\\", "\\\\"))  # backslashes escape in MySQL strings

    # -- the SQL that publishes a load, as MySQL spells it ----------------------------------
    def rename_sql(self, table: str, to: str, schema: str | None) -> str:
        return f"RENAME TABLE {self.qualified(table, schema)} TO {self.qualified(to, schema)}"

    def replace_steps(
        self,
        target: str,
        staging: str,
        schema: str | None,
        old: str,
        names: list[str],
        *,
        with_state: bool,
    ) -> list[str]:
        if with_state:  # InnoDB: DELETE + INSERT commit with the state row, unlike RENAME
            return [
                f"DELETE FROM {self.qualified(target, schema)}",
                self.insert_sql(target, staging, schema, names),
            ]
        t, s, o = (self.qualified(n, schema) for n in (target, staging, old))
        return [f"RENAME TABLE {t} TO {o}, {s} TO {t}", f"DROP TABLE {o}"]

    def drop_in_publish(self, staging: str, schema: str | None) -> list[str]:
        return []  # a DROP would commit the publish half-way; the store drops it after

    def alter_column_sql(self, table: str, schema: str | None, name: str, type_ddl: str) -> str:
        return (
            f"ALTER TABLE {self.qualified(table, schema)} MODIFY COLUMN "
            f"{self.quote(name)} {type_ddl}"
        )

    def merge_sql(
        self, target: str, staging: str, schema: str | None, names: list[str], key: list[str]
    ) -> str:
        others = [n for n in names if n not in key]
        update = ", ".join(f"{self.quote(n)} = VALUES({self.quote(n)})" for n in others or key)
        return f"{self.insert_sql(target, staging, schema, names)} ON DUPLICATE KEY UPDATE {update}"

    def unique_key_fix(self, table: str, schema: str | None, key: list[str]) -> str:
        cols = ", ".join(self.quote(k) for k in key)
        return f"ALTER TABLE {self.qualified(table, schema)} ADD UNIQUE ({cols})"

    def create_target_early(
        self, target: str, staging: str, schema: str | None, key: list[str] | None
    ) -> bool:
        self.execute(
            f"CREATE TABLE {self.qualified(target, schema)} LIKE {self.qualified(staging, schema)}"
        )
        if key:
            self.execute(self.add_key_sql(target, schema, key))
        return True

    def _schema_sql(self, schema: str | None) -> str:
        return self.text_literal(schema) if schema else "DATABASE()"

    def estimate_rows(self, table: str, schema: str | None) -> int | None:
        # InnoDB's sampled estimate (no scan); 0 on a table not yet sampled is no estimate.
        rows = self.query(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
            f"{self._schema_sql(schema)} AND TABLE_NAME = {self.text_literal(table)}"
        )
        return int(rows[0][0]) if rows and rows[0][0] else None

    def columns(self, table: str, schema: str | None) -> list[Column] | None:
        rows = self.query(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, "
            "COLUMN_COMMENT, CHARACTER_MAXIMUM_LENGTH FROM information_schema.COLUMNS "
            f"WHERE TABLE_SCHEMA = {self._schema_sql(schema)} "
            f"AND TABLE_NAME = {self.text_literal(table)} ORDER BY ORDINAL_POSITION"
        )
        if not rows:
            return None
        json_columns = {
            m.group(1)
            for (clause,) in self.query(
                "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
                f"WHERE CONSTRAINT_SCHEMA = {self._schema_sql(schema)} "
                f"AND TABLE_NAME = {self.text_literal(table)}"
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
        """Arrow batches from connectorx where it serves every column (hygge/sql/mysql_arrow.py),
        else PyMySQL's rows parsed column-wise; --verbose logs which path runs and why.
        Lazy, like every session's stream: nothing runs (and nothing fails) before iteration."""
        read: mysql_arrow.Plan | str = "connectorx is not installed (pip install 'hygge[sql]')"
        if mysql_arrow.available():
            columns = known if known is not None else self.result_columns(sql)
            read = (
                mysql_arrow.plan(sql, columns, self.quote)
                if columns is not None
                else "the statement cannot be typed ahead (not a SELECT?)"
            )
        if isinstance(read, mysql_arrow.Plan):
            log.info("reading %s through connectorx (Arrow batches)", self.url.where())
            read_any = False
            try:
                for table in mysql_arrow.stream(self.url, read, batch_size):
                    read_any = True
                    yield table
                return
            except mysql_arrow.ReadError as exc:
                # connectorx's own connection failed where this session's succeeded (seen
                # right after a server restart), or a row is over its client's packet limit,
                # which PyMySQL does not have: nothing was read, so PyMySQL reads it all
                if exc.too_large and read_any:
                    raise HyggeError(
                        f"{exc}; rows were read already, so it cannot switch to the PyMySQL "
                        "path (which reads rows of any size) midway. Not a lost connection: "
                        "it is not retried",
                        hint="raise max_allowed_packet on the server (e.g. SET GLOBAL "
                        "max_allowed_packet = 1073741824), or read the large column(s) in a "
                        "flow of their own",
                    ) from None
                if read_any or not (exc.connecting or exc.too_large):
                    raise
                log.warning("connectorx could not read (%s); reading through PyMySQL", exc)
        log.info("reading %s through PyMySQL (the fallback path): %s", self.url.where(), read)
        yield from self.stream_rows(sql, batch_size, known)

    def result_columns(self, sql: str) -> list[Column] | None:
        """A query's result columns, from the protocol's field descriptions (no rows read);
        None where the statement cannot be wrapped (SHOW, CALL, a syntax error: the PyMySQL
        path then runs it as it is, and reports its error)."""
        with self.conn.cursor() as cur:
            try:
                cur.execute(f"SELECT * FROM ({sql}) AS hygge_probe LIMIT 0")
            except self.pymysql.MySQLError:
                return None
            return [
                Column(f.name, _mysql_field_type(f), _mysql_field_kind(f))
                for f in cur._result.fields
            ]

    def stream_rows(
        self, sql: str, batch_size: int, known: list[Column] | None
    ) -> Iterator[pa.Table]:
        """The PyMySQL path: a server-side cursor, each column's text parsed by Arrow."""
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
            # The connection died mid-read: its result can never be drained. Say so, or
            # PyMySQL's MySQLResult.__del__ tries again at garbage collection and prints a
            # traceback long after the error was reported.
            for result in (getattr(cur, "_result", None), getattr(self.conn, "_result", None)):
                if result is not None and getattr(result, "unbuffered_active", False):
                    result.unbuffered_active = False

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
            f"LOAD DATA LOCAL INFILE {self.text_literal(path)} INTO TABLE "
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
        return bool(self.query(f"SELECT GET_LOCK({self.text_literal(name[-64:])}, 0)")[0][0] == 1)

    def unclaim(self, name: str) -> None:
        self.query(f"SELECT RELEASE_LOCK({self.text_literal(name[-64:])})")

    def tables_like(self, prefix: str, schema: str | None) -> list[str]:
        rows = self.query(
            "SELECT TABLE_NAME FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA = {self._schema_sql(schema)} "
            f"AND TABLE_NAME LIKE {like_prefix(prefix)}"
        )
        return [r[0] for r in rows]

    def unique_keys(self, table: str, schema: str | None) -> list[set[str]]:
        rows = self.query(
            "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
            f"WHERE TABLE_SCHEMA = {self._schema_sql(schema)} "
            f"AND TABLE_NAME = {self.text_literal(table)} AND NON_UNIQUE = 0"
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
    if code == T.BIT:
        return pa.uint64() if field.length == 64 else pa.int64()
    if code in (T.DECIMAL, T.NEWDECIMAL):
        scale = field.scale
        precision = field.length - (1 if scale else 0) - (0 if unsigned else 1)
        return decimal_type(max(precision, 1), scale)
    simple = {
        T.FLOAT: pa.float32(),
        T.DOUBLE: pa.float64(),
        T.DATE: pa.date32(),
        T.TIME: pa.duration("us"),
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


def _mysql_field_kind(field: Any) -> str:
    """A result column's SQL type name as the catalog spells it (what mysql_arrow plans by)."""
    from pymysql.constants import FIELD_TYPE as T

    names = {
        T.TINY: "tinyint", T.SHORT: "smallint", T.INT24: "mediumint", T.LONG: "int",
        T.LONGLONG: "bigint", T.FLOAT: "float", T.DOUBLE: "double", T.DECIMAL: "decimal",
        T.NEWDECIMAL: "decimal", T.DATE: "date", T.NEWDATE: "date", T.DATETIME: "datetime",
        T.TIMESTAMP: "timestamp", T.TIME: "time", T.YEAR: "year", T.BIT: "bit", T.JSON: "json",
        T.ENUM: "enum", T.SET: "set", T.GEOMETRY: "geometry", T.NULL: "null",
    }  # fmt: skip
    if field.type_code in names:
        return names[field.type_code]
    return "blob" if field.charsetnr == 63 else "text"


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
        if kind == "duration":
            return pa.array([None if v is None else _duration(v) for v in values], t)
        if kind == "bool":  # tinyint(1) holds -128..127: only 0 and 1 are booleans
            small = text.cast(pa.int8())
            if pc.any(pc.invert(pc.is_in(small.drop_null(), pa.array([0, 1], pa.int8())))).as_py():
                raise ValueError("a value other than 0 or 1 is not a boolean")
            return small.cast(t)
        if kind == "timestamptz":
            return text.cast(pa.timestamp(t.unit)).cast(t)  # stored as UTC wall time
        return text.cast(t)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        hint = None
        if kind in ("date", "timestamp", "timestamptz"):  # MariaDB's zero and partial dates
            hint = f"'0000-00-00' and '2026-00-00' are no dates: select NULLIF(`{name}`, ...)"
            hint += f" or CAST(`{name}` AS CHAR) in a `query`"
        elif kind == "time":  # TIME is a duration of up to 838 hours, not a time of day
            hint = f"select CAST(`{name}` AS CHAR) or TIME_TO_SEC(`{name}`) in a `query`"
        raise HyggeError(
            f"column '{name}': cannot read its values as {t}: {exc}", hint=hint
        ) from exc


def _duration(text: str) -> dt.timedelta:
    """MySQL TIME text ('-838:59:59.500000') as a signed duration."""
    sign = -1 if text.startswith("-") else 1
    hours, minutes, seconds = text.lstrip("-").split(":")
    whole, _, fraction = seconds.partition(".")
    micros = int((fraction + "000000")[:6])
    return sign * dt.timedelta(
        hours=int(hours), minutes=int(minutes), seconds=int(whole), microseconds=micros
    )


def _time(text: str) -> dt.time:
    """MySQL TIME text as a time of day (a duration outside 00:00-24:00 is an error)."""
    if text.startswith("-") or int(text.split(":", 1)[0]) >= 24:
        raise ValueError(f"{text} is not a time of day")
    return dt.time.fromisoformat(text)
