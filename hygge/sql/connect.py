"""A session for a URL, on the fastest path its database has."""

from __future__ import annotations

from hygge.errors import HyggeError
from hygge.sql.alchemy import AlchemyPostgresSession, AlchemySession, SqliteSession
from hygge.sql.base import Session
from hygge.sql.faults import connection_error
from hygge.sql.mysql import MySqlSession
from hygge.sql.postgres import PostgresSession
from hygge.sql.url import SqlUrl


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
    try:
        return cls(url)
    except ImportError as exc:
        raise error(
            f"{what}: the driver for {url.dialect} is not installed ({exc.name})",
            hint="pip install 'hygge[sql]'",
        ) from None
    except Exception as exc:
        raise connection_error(url, exc, error, what) from None
