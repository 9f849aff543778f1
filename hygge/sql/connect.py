"""A session for a URL, on the fastest path its database has."""

from __future__ import annotations

from hygge.errors import HyggeError
from hygge.sql.alchemy import AlchemySession
from hygge.sql.base import Session
from hygge.sql.mysql import MySqlSession
from hygge.sql.postgres import PostgresSession
from hygge.sql.url import SqlUrl, connection_error


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
