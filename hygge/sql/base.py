"""What every database session offers the home and store: run SQL, read the catalog,
stream a query as Arrow, bulk-load Arrow, and claim staging tables."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from hygge.sql.types import (
    Column,
)
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

    # Every driver here is a DB-API-like connection in `self.conn`.
    conn: Any

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()

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

    # -- the catalog (entity discovery) ---------------------------------------------------
    def default_schema(self) -> str:
        """The schema an unqualified table name resolves to."""
        raise NotImplementedError

    def catalog(self, schemas: list[str] | None) -> list[CatalogTable]:
        """Tables and views of `schemas` (None: every user schema), through
        information_schema (PostgreSQL and MySQL/MariaDB both have it)."""
        where = (
            f"IN ({', '.join(literal(s) for s in schemas)})"
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
