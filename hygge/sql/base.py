"""What every database session offers the home and store: run SQL, read the catalog,
stream a query as Arrow, bulk-load Arrow, claim staging tables, and write the SQL that
publishes a load. The statements here are standard SQL; a dialect overrides what it spells
differently, so the SQL store never asks which database it talks to."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple

import pyarrow as pa

from hygge.sql.load_plan import LoadRules
from hygge.sql.types import Column
from hygge.sql.url import SqlUrl


def literal(value: str) -> str:
    """A SQL string literal (catalog look-ups only; data never goes through here)."""
    return "'" + value.replace("'", "''") + "'"


def like_prefix(prefix: str) -> str:
    """A LIKE pattern matching names that start with `prefix` literally."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return literal(escaped + "%")


# Schemas of the database itself, never discovered by `tables: ["*.*"]`.
SYSTEM_SCHEMAS = frozenset(
    {"information_schema", "pg_catalog", "pg_toast", "mysql", "performance_schema", "sys"}
)


@dataclass(frozen=True)
class CatalogTable:
    """A table or view as the catalog lists it, with its column names in order."""

    schema: str
    name: str
    is_view: bool
    columns: tuple[str, ...]


def user_query(sql: str) -> str:
    """A user's `query:`, safe to embed in `(...)` (hygge's wrappers, and the COPY ADBC runs):
    a trailing `;` goes, and it ends with a newline, so a final `-- comment` cannot swallow
    the closing parenthesis."""
    body = sql.strip()
    while body.endswith(";"):
        body = body[:-1].rstrip()
    return body + "\n"


class IdentifierLimit(NamedTuple):
    """The longest name a database keeps whole, and what it counts."""

    length: int
    unit: Literal["bytes", "characters"]


class Session:
    """A connection to one database, used from one thread at a time."""

    dialect = "generic"
    quote_char = '"'
    max_identifier = 63  # room for hygge's own table names (staging, parts)
    # The limit this database cuts names at, known before connecting (None: none known, e.g.
    # SQLite, or learnt only on connecting, as a SQLAlchemy dialect's).
    identifier_limit: ClassVar[IdentifierLimit | None] = None
    rules: LoadRules = LoadRules("generic")
    long_text: ClassVar[str] = "TEXT"  # a column type for any length of text
    # DDL (a RENAME) rolls back with the transaction it is in: a partitioned commit can
    # rename a part's table into place inside its publish (hygge/stores/sql.py).
    transactional_ddl: ClassVar[bool] = False
    # A derived table's ORDER BY orders the rows of a SELECT * over it with a WHERE (hygge's
    # incremental and partition reads of a `query`); MariaDB/MySQL drop it.
    derived_order_kept: ClassVar[bool] = True

    def __init__(self, url: SqlUrl) -> None:
        self.url = url

    @classmethod
    def identifier_problem(cls, name: str) -> str | None:
        """Why the database would not keep `name` whole (it may cut it silently, so two long
        names could become one), or None."""
        limit = cls.identifier_limit
        if limit is None:
            return None
        size = len(name.encode()) if limit.unit == "bytes" else len(name)
        if size <= limit.length:
            return None
        return f"is {size} {limit.unit}, longer than {cls.dialect} keeps ({limit.length})"

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

    # Every driver here is a DB-API-like connection in `self.conn`.
    conn: Any

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()

    # -- one snapshot for many readers (hygge/sql/snapshot.py) -------------------------------
    # What `validate` says of a partitioned read when the database cannot share a snapshot.
    snapshot_note: ClassVar[str] = (
        "cannot share one snapshot between connections: each partition reads the table as "
        "it is when that partition starts (rows changed meanwhile may be missed or read twice)"
    )

    def export_snapshot(self) -> str | None:
        """Begin a transaction whose snapshot other sessions can import; its id, or None
        where the database cannot share one."""
        return None

    def import_snapshot(self, snapshot: str) -> None:
        """Begin a transaction reading `snapshot` (from `export_snapshot`)."""
        raise NotImplementedError

    # -- one table, several readers (hygge/sql/page_readers.py) ---------------------------
    def page_ranges(
        self, table: str, schema: str | None, count: int, smallest: int = 0
    ) -> list[str]:
        """WHERE conditions that split a plain table's pages into `count` ranges, together
        every row once; [] where the database (or this relation) cannot, or for a table of
        fewer than `smallest` bytes."""
        return []

    def transaction(self, steps: list[str]) -> None:
        """Run `steps` in one transaction: all of them commit, or none."""
        self.begin()
        try:
            for sql in steps:
                self.execute(sql)
            self.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                self.rollback()
            raise

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

    def estimate_rows(self, table: str, schema: str | None) -> int | None:
        """The catalog's row estimate for a table (no scan), or None where there is none."""
        return None

    # -- the catalog (entity discovery) ---------------------------------------------------
    def default_schema(self) -> str:
        """The schema an unqualified table name resolves to."""
        raise NotImplementedError

    def catalog(self, schemas: list[str] | None) -> list[CatalogTable]:
        """Tables and views of `schemas` (None: every user schema), through
        information_schema (PostgreSQL and MySQL/MariaDB both have it)."""
        where = (
            f"IN ({', '.join(self.text_literal(s) for s in schemas)})"
            if schemas
            else f"NOT IN ({', '.join(literal(s) for s in sorted(SYSTEM_SCHEMAS))})"
        )
        tables = self.query(
            "SELECT table_schema, table_name, table_type FROM information_schema.tables "
            f"WHERE table_schema {where}"
        )
        columns = self.query(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            f"WHERE table_schema {where} ORDER BY table_schema, table_name, ordinal_position"
        )
        self.rollback()
        names: dict[tuple[str, str], list[str]] = {}
        for schema, table, column in columns:
            names.setdefault((schema, table), []).append(column)
        return [
            CatalogTable(
                schema,
                table,
                "VIEW" in str(kind).upper() and "SYSTEM" not in str(kind),
                tuple(names.get((schema, table), ())),
            )
            for schema, table, kind in tables
            if str(kind).upper() in ("BASE TABLE", "VIEW", "SYSTEM VERSIONED", "FOREIGN")
        ]

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

    def sweep_staging(self, own: str, prefix: str, schema: str | None) -> list[str]:
        """Claim staging table `own`, and drop the `prefix` tables whose run or attempt died
        (their claim is free: it ends with the connection that held it); live runs' tables
        are left alone. The names dropped."""
        if not self.claim(own):
            return []  # no named locks here (SQLite): a dead run's table stays, harmlessly
        dropped = []
        for name in self.tables_like(prefix, schema):
            if name != own and self.claim(name):
                self.drop(name, schema)
                self.unclaim(name)
                dropped.append(name)
        return dropped

    def sweep_moved(self, prefix: str, moved: str, schema: str | None) -> list[str]:
        """Drop the `moved` tables (a target renamed aside by a publish that swaps tables
        outside a transaction) whose run died before dropping it: each is named `moved` +
        the suffix of the staging table it was swapped with, `prefix` + suffix, whose claim
        is free once that run's connection is gone. The names dropped."""
        dropped = []
        for name in self.tables_like(moved, schema):
            staging = prefix + name[len(moved) :]
            if self.claim(staging):
                self.drop(name, schema)
                self.unclaim(staging)
                dropped.append(name)
        return dropped

    def drop(self, table: str, schema: str | None) -> None:
        self.execute(f"DROP TABLE IF EXISTS {self.qualified(table, schema)}")
        self.commit()

    def schema_exists(self, schema: str) -> bool:
        """False when `schema` is certainly missing (checked where the catalog is cheap)."""
        return True

    def timestamp_literal(self, value: dt.datetime) -> str:
        """A timestamp literal; zoned values compare as UTC wall time (no zoned type here)."""
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"

    def text_literal(self, value: str) -> str:
        """A SQL string literal for any text (a dialect with backslash escapes overrides)."""
        return literal(value)

    # -- the SQL that publishes a load (run in one transaction by the SQL store) ----------
    def create_table_sql(
        self, table: str, schema: str | None, names: list[str], types: list[str]
    ) -> str:
        cols = ", ".join(f"{self.quote(n)} {t}" for n, t in zip(names, types, strict=True))
        return f"CREATE TABLE {self.qualified(table, schema)} ({cols})"

    def rename_sql(self, table: str, to: str, schema: str | None) -> str:
        return f"ALTER TABLE {self.qualified(table, schema)} RENAME TO {self.quote(to)}"

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
        """Swap `staging` in for `target`: with transactional DDL, readers see old or new."""
        return [
            f"DROP TABLE {self.qualified(target, schema)}",
            self.rename_sql(staging, target, schema),
        ]

    def drop_in_publish(self, staging: str, schema: str | None) -> list[str]:
        """Dropping the staging table inside the publish (where DDL is transactional)."""
        return [f"DROP TABLE {self.qualified(staging, schema)}"]

    def add_key_sql(self, table: str, schema: str | None, key: list[str]) -> str:
        keys = ", ".join(self.quote(k) for k in key)
        return f"ALTER TABLE {self.qualified(table, schema)} ADD PRIMARY KEY ({keys})"

    def add_column_sql(self, table: str, schema: str | None, name: str, type_ddl: str) -> str:
        return (
            f"ALTER TABLE {self.qualified(table, schema)} ADD COLUMN {self.quote(name)} {type_ddl}"
        )

    def alter_column_sql(self, table: str, schema: str | None, name: str, type_ddl: str) -> str:
        q = self.quote(name)
        return (
            f"ALTER TABLE {self.qualified(table, schema)} ALTER COLUMN {q} TYPE {type_ddl} "
            f"USING {q}::{type_ddl}"
        )

    def insert_sql(
        self,
        target: str,
        staging: str,
        schema: str | None,
        names: list[str],
        where: str | None = None,
    ) -> str:
        """INSERT the rows of `staging` (those that meet `where`: a part's rows of a shared
        table) into `target`."""
        cols = ", ".join(self.quote(n) for n in names)
        sql = (
            f"INSERT INTO {self.qualified(target, schema)} ({cols}) "
            f"SELECT {cols} FROM {self.qualified(staging, schema)}"
        )
        return f"{sql} WHERE {where}" if where is not None else sql

    # -- one table for every part of a partitioned run (where DDL is transactional) ---------
    def attempts_in(self, column: str, attempts: list[int]) -> str:
        """A condition: `column` holds one of these attempt ids (integers only)."""
        return f"{self.quote(column)} IN ({', '.join(str(int(a)) for a in attempts)})"

    def count_by(self, table: str, schema: str | None, column: str) -> dict[int, int]:
        """Rows per value of `column` (a shared parts table: rows per attempt)."""
        q = self.quote(column)
        rows = self.query(f"SELECT {q}, count(*) FROM {self.qualified(table, schema)} GROUP BY {q}")
        self.rollback()
        return {int(value): int(n) for value, n in rows if value is not None}

    def create_shared_steps(
        self, table: str, schema: str | None, names: list[str], types: list[str]
    ) -> list[str]:
        """Create a table several connections may race to create (one wins, all succeed)."""
        raise NotImplementedError

    def keep_only_steps(self, table: str, schema: str | None, column: str, where: str) -> list[str]:
        """Inside a publish: wait out every writer of `table`, delete the rows that do not
        meet `where` (a dead attempt's), and drop `column`, in metadata only."""
        raise NotImplementedError

    def merge_sql(
        self, target: str, staging: str, schema: str | None, names: list[str], key: list[str]
    ) -> str:
        """Upsert the staged rows on `key` (INSERT ... ON CONFLICT: needs a unique key)."""
        q = self.quote
        others = [n for n in names if n not in key]
        action = (
            "DO UPDATE SET " + ", ".join(f"{q(n)} = excluded.{q(n)}" for n in others)
            if others
            else "DO NOTHING"
        )
        keys = ", ".join(q(k) for k in key)
        return (
            f"{self.insert_sql(target, staging, schema, names)} WHERE true "
            f"ON CONFLICT ({keys}) {action}"
        )

    def merge_needs_unique_key(self) -> bool:
        """The upsert matches rows through a primary key or unique index on the key."""
        return True

    def unique_key_fix(self, table: str, schema: str | None, key: list[str]) -> str:
        """The statement a user runs to give `table` the unique key a merge needs."""
        cols = ", ".join(self.quote(k) for k in key)
        return (
            f"CREATE UNIQUE INDEX {self.quote('ux_' + table)} "
            f"ON {self.qualified(table, schema)} ({cols})"
        )

    def create_target_early(
        self, target: str, staging: str, schema: str | None, key: list[str] | None
    ) -> bool:
        """Where DDL commits by itself (MySQL), create a first load's target before the
        publish, so that the publish is DML only and a state row commits with the data.
        False: not needed here (DDL is transactional)."""
        return False

    # -- merge key checks -------------------------------------------------------------------
    def null_key_rows(self, table: str, schema: str | None, key: list[str]) -> int:
        nulls = " OR ".join(f"{self.quote(k)} IS NULL" for k in key)
        rows = self.query(f"SELECT count(*) FROM {self.qualified(table, schema)} WHERE {nulls}")
        self.rollback()
        return int(rows[0][0])

    def duplicate_key(
        self, table: str, schema: str | None, key: list[str]
    ) -> tuple[tuple[Any, ...], int] | None:
        """A key value that appears more than once, and how often; None when keys are unique."""
        keys = ", ".join(self.quote(k) for k in key)
        rows = self.query(
            f"SELECT {keys}, count(*) FROM {self.qualified(table, schema)} GROUP BY {keys} "
            "HAVING count(*) > 1 LIMIT 1"
        )
        self.rollback()
        return (tuple(rows[0][:-1]), int(rows[0][-1])) if rows else None
