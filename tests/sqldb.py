"""Independent access to the test databases (psycopg, pymysql, sqlite3) for SQL tests:
set tables up, read them back, and prove nothing was left behind."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import psycopg
import pymysql


def unique(prefix: str = "t") -> str:
    """A table name no other test run uses."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


class Db:
    """A plain DB-API connection to one test database, autocommit."""

    def __init__(self, url: str) -> None:
        self.url = url
        scheme = url.split("://", 1)[0].split("+")[0]
        self.dialect = {"postgres": "postgresql", "mariadb": "mysql"}.get(scheme, scheme)
        if self.dialect == "postgresql":
            self.conn: Any = psycopg.connect(url.replace("+psycopg", ""), autocommit=True)
        elif self.dialect == "mysql":
            u = urlparse(url)
            self.conn = pymysql.connect(
                host=u.hostname,
                port=u.port or 3306,
                user=u.username or "root",
                password=u.password or "",
                database=u.path.lstrip("/"),
                autocommit=True,
                init_command="SET time_zone = '+00:00'",
            )
        else:
            self.conn = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)

    def q(self, name: str) -> str:
        c = "`" if self.dialect == "mysql" else '"'
        return c + name.replace(c, c + c) + c

    def run(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        cur = self.conn.cursor()
        cur.execute(sql, params) if params is not None else cur.execute(sql)
        rows = list(cur.fetchall()) if cur.description else []
        cur.close()
        return rows

    def rows(self, table: str, order: str = "1") -> list[tuple[Any, ...]]:
        return self.run(f"SELECT * FROM {self.q(table)} ORDER BY {order}")

    def exists(self, table: str) -> bool:
        if self.dialect == "postgresql":
            return bool(self.run("SELECT 1 FROM pg_tables WHERE tablename = %s", (table,)))
        if self.dialect == "mysql":
            return bool(self.run("SHOW TABLES LIKE %s", (table,)))
        return bool(self.run("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)))

    def staging_tables(self) -> list[str]:
        """Staging tables left behind by hygge for any table in this database."""
        if self.dialect == "postgresql":
            rows = self.run("SELECT tablename FROM pg_tables WHERE tablename LIKE '\\_hygge%%'")
        elif self.dialect == "mysql":
            rows = self.run("SHOW TABLES LIKE '\\_hygge%%'")
        else:
            rows = self.run(
                "SELECT name FROM sqlite_master WHERE name LIKE '\\_hygge%' ESCAPE '\\'"
            )
        return [r[0] for r in rows]

    def drop(self, *tables: str) -> None:
        for t in tables:
            self.run(f"DROP TABLE IF EXISTS {self.q(t)}")

    def close(self) -> None:
        self.conn.close()


@contextmanager
def database(url: str, *cleanup: str) -> Iterator[Db]:
    db = Db(url)
    try:
        yield db
    finally:
        db.drop(*cleanup)
        db.close()
