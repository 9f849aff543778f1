"""The run lock of a SQL store (see hygge/locks.py): kept in the database itself, so runs on
any machine see it, and dropped by the server when the connection that holds it ends."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

from hygge.errors import StoreError
from hygge.locks import FileLock, NoLock, RunLock, lock_file_beside
from hygge.sql.base import Session
from hygge.sql.connect import connect
from hygge.sql.url import SqlUrl


def run_lock(url: SqlUrl, table: str, flow: str) -> RunLock:
    """PostgreSQL: an advisory lock; MySQL/MariaDB: GET_LOCK; SQLite: a file beside the
    database; other databases: none. `table` is the target as shown (schema.table)."""
    if url.dialect in ("postgresql", "mysql"):
        # MySQL lock names hold 64 characters: a digest of server, table and flow.
        key = hashlib.sha1(f"{url.where()}|{table}|{flow}".encode()).hexdigest()[:40]
        return SessionLock(flow, f"table {table} ({url.where()})", url, f"hygge-run-{key}")
    if url.dialect == "sqlite" and url.database not in (None, "", ":memory:"):
        db = Path(str(url.database)).resolve()
        return FileLock(flow, f"table {table} ({db})", lock_file_beside(db, f"{table}.{flow}"))
    return NoLock(flow, f"table {table}")


class SessionLock(RunLock):
    """A lock held by a connection of its own for the whole run."""

    def __init__(self, flow: str, where: str, url: SqlUrl, key: str) -> None:
        super().__init__(flow, where)
        self.url, self.key = url, key
        self.session: Session | None = None

    def try_acquire(self) -> bool:
        session = connect(self.url, StoreError, f"flow '{self.flow}' (to take its run lock)")
        if session.claim(self.key):
            self.session = session
            return True
        session.close()
        return False

    def release(self) -> None:
        if self.session is not None:
            with contextlib.suppress(Exception):
                self.session.unclaim(self.key)
            self.session.close()
            self.session = None
