"""A session for a URL, on the fastest path its database has."""

from __future__ import annotations

import logging

from hygge.errors import HyggeError
from hygge.sql.alchemy import AlchemyPostgresSession, AlchemySession, SqliteSession
from hygge.sql.base import Session
from hygge.sql.faults import connection_error
from hygge.sql.mysql import MySqlSession
from hygge.sql.postgres import PostgresSession
from hygge.sql.url import SqlUrl

log = logging.getLogger("hygge.sql")


def session_class(url: SqlUrl) -> type[Session]:
    """The Session class that talks to `url` (what it can do is known before connecting)."""
    cls: type[Session] = {
        "postgresql": PostgresSession,
        "mysql": MySqlSession,
        "sqlite": SqliteSession,
    }.get(url.dialect, AlchemySession)
    if url.driver and url.dialect == "postgresql" and url.driver not in ("adbc", "psycopg"):
        cls = AlchemyPostgresSession  # the user named a driver: honour it through SQLAlchemy
    return cls


def connect(url: SqlUrl, error: type[HyggeError], what: str) -> Session:
    """A session for `url`; a failure says where it tried, and is transient when it may heal."""
    cls = session_class(url)
    log.debug("%s: connecting to %s at %s through %s", what, url.dialect, url.where(), cls.__name__)
    try:
        return cls(url)
    except ImportError as exc:
        raise error(
            f"{what}: the driver for {url.dialect} is not installed ({exc.name})",
            hint=driver_hint(url.dialect),
        ) from None
    except Exception as exc:
        if type(exc).__name__ == "NoSuchModuleError":  # SQLAlchemy knows no such dialect
            raise error(
                f"{what}: {url.dialect}:// is not supported by hygge out of the box, and no "
                f"SQLAlchemy dialect for {url.dialect} is installed",
                hint=driver_hint(url.dialect),
            ) from None
        raise connection_error(url, exc, error, what) from None


BUILT_IN = ("postgresql", "mysql", "mariadb", "sqlite")
# Databases hygge reaches only through SQLAlchemy's generic path: what each needs installed.
# hygge's tests cover PostgreSQL, MariaDB/MySQL and SQLite; these are untested.
OTHER_DRIVERS = {
    "mssql": "pip install pyodbc and install Microsoft's ODBC Driver 18 for SQL Server "
    "(or use mssql+pymssql:// with pip install pymssql)",
    "snowflake": "pip install snowflake-sqlalchemy",
    "oracle": "pip install oracledb (and use oracle+oracledb://)",
    "duckdb": "pip install duckdb-engine",
    "bigquery": "pip install sqlalchemy-bigquery",
    "redshift": "pip install sqlalchemy-redshift",
}


def driver_hint(dialect: str) -> str:
    """What to install for `dialect`, and how well hygge supports it."""
    if dialect in BUILT_IN:
        return "pip install 'hygge[sql]' (the drivers of PostgreSQL, MySQL/MariaDB and SQLite)"
    generic = (
        f"hygge supports {dialect} only through SQLAlchemy's generic path (slower, untested "
        "by hygge; built in: PostgreSQL, MySQL/MariaDB, SQLite)"
    )
    need = OTHER_DRIVERS.get(dialect, f"install a SQLAlchemy dialect for {dialect}")
    return f"{need}; {generic}"
