"""Real databases for the entity tests: a PostgreSQL schema and a MariaDB database of their
own per test (unique names, dropped afterwards), tables of mixed types, and an independent
per-table fingerprint (row count + checksum of canonical values) to compare across engines."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import duckdb

from tests.sqldb import Db

# Column sets cycled through the tables: (column, type, how generate_series(..) i fills it);
# every tenth row holds NULLs outside the first column.
SHAPES = [
    [
        ("id", "int PRIMARY KEY", "i"),
        ("name", "text", "'name ' || i || ' ü'"),
        (
            "updated_at",
            "timestamptz",
            "timestamptz '2024-01-01 00:00:00+00' + i * interval '1 min'",
        ),
    ],
    [
        ("id", "bigint", "i::bigint"),
        ("amount", "numeric(12,2)", "(i * 1.25)::numeric(12,2)"),
        ("day", "date", "date '2024-01-01' + i"),
        ("big", "bigint", "i::bigint * 1000000000"),
    ],
    [
        ("id", "int", "i"),
        ("flag", "boolean", "i % 2 = 0"),
        ("score", "double precision", "i / 4.0"),
        ("code", "varchar(40)", "'c' || i"),
    ],
    [
        ("id", "int", "i"),
        ("doc", "jsonb", "jsonb_build_object('k', i, 'tags', jsonb_build_array('a', i))"),
        ("blob", "bytea", "decode(md5(i::text), 'hex')"),
    ],
    [
        ("id", "int", "i"),
        ("small", "smallint", "(i % 100)::smallint"),
        ("at", "timestamp", "timestamp '2024-01-01' + i * interval '1 second'"),
        ("ch", "char(3)", "lpad((i % 1000)::text, 3, '0')"),
    ],
]


def fill(db: Db, schema: str, table: str, shape: int, rows: int, start: int = 1) -> None:
    """Create (if needed) and fill a table of one of the SHAPES."""
    columns = SHAPES[shape % len(SHAPES)]
    ddl = ", ".join(f"{db.q(c)} {t}" for c, t, _ in columns)
    db.run(f"CREATE TABLE IF NOT EXISTS {db.q(schema)}.{db.q(table)} ({ddl})")
    select = ", ".join(
        e if k == 0 else f"CASE WHEN i % 10 = 0 THEN NULL ELSE {e} END"
        for k, (_, _, e) in enumerate(columns)
    )
    db.run(
        f"INSERT INTO {db.q(schema)}.{db.q(table)} "
        f"SELECT {select} FROM generate_series({start}, {start + rows - 1}) i"
    )


def canon(value: Any) -> str:
    """One text form of a value, whichever engine returned it."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.dumps(json.loads(value), sort_keys=True)
        except ValueError:
            return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


def fingerprint(db: Db, table: str, schema: str | None = None) -> tuple[int, str]:
    """(rows, checksum) of a table's content, independent of row order."""
    name = f"{db.q(schema)}.{db.q(table)}" if schema else db.q(table)
    rows = db.run(f"SELECT * FROM {name}")
    lines = sorted("|".join(canon(v) for v in row) for row in rows)
    return len(rows), hashlib.sha256("\n".join(lines).encode()).hexdigest()


def parquet_rows(folder: Path, key: str = "id") -> tuple[int, int]:
    """(rows, distinct keys) of a parquet dataset, read back with DuckDB."""
    with duckdb.connect() as con:
        return con.execute(
            f"SELECT count(*), count(DISTINCT {key}) FROM read_parquet('{folder}/**/*.parquet')"
        ).fetchone()


@contextmanager
def pg_schema(url: str) -> Iterator[tuple[Db, str]]:
    """A PostgreSQL schema no other test run uses, dropped afterwards."""
    db = Db(url)
    schema = f"ent_{uuid.uuid4().hex[:10]}"
    db.run(f"CREATE SCHEMA {schema}")
    try:
        yield db, schema
    finally:
        db.run(f"DROP SCHEMA {schema} CASCADE")
        db.close()


@contextmanager
def mysql_database(url: str) -> Iterator[tuple[Db, str]]:
    """A MariaDB database of its own (URL, connection), dropped afterwards."""
    admin = Db(url)
    name = f"ent_{uuid.uuid4().hex[:10]}"
    admin.run(f"CREATE DATABASE {name}")
    own = urlunparse(urlparse(url)._replace(path=f"/{name}"))
    db = Db(own)
    try:
        yield db, own
    finally:
        db.close()
        admin.run(f"DROP DATABASE {name}")
        admin.close()
