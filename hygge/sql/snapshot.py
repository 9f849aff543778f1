"""One snapshot for every partition of a partitioned read, as `pg_dump -j` does it.

The planner opens a REPEATABLE READ transaction, exports its snapshot
(`pg_export_snapshot()`), plans the ranges inside it, and keeps the transaction open; each
partition starts its own REPEATABLE READ transaction with `SET TRANSACTION SNAPSHOT`, so all
of them see the table as it was at planning time, whatever is updated meanwhile. A snapshot
can be imported only while the transaction that exported it is open: the holder keeps it
open until released (every part ended), in a thread of the process that planned, so a
distributed planner's task may end while partitions on other workers still start.

Databases that cannot share a snapshot (MariaDB/MySQL have no exported snapshots) return
None from `Session.export_snapshot`; their partitions each read at their own moment, which
`validate` and docs/partitions.md say.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from hygge.sql.base import Session

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
# the longest a snapshot is held for parts that never end (an open one holds back VACUUM)
HOLD_SECONDS = 6 * 3600.0

_held: dict[str, _Holder] = {}
_lock = threading.Lock()


class _Holder:
    """The exporting session, kept open until `release()` or `until()` says so."""

    def __init__(self, session: Session, snapshot: str) -> None:
        self.session, self.snapshot = session, snapshot
        self.since = time.monotonic()
        self.released = threading.Event()

    def release(self) -> None:
        if self.released.is_set():
            return
        self.released.set()
        with contextlib.suppress(Exception):
            self.session.rollback()
        with contextlib.suppress(Exception):
            self.session.close()
        with _lock:
            _held.pop(self.snapshot, None)

    def release_when(self, until: Callable[[], bool]) -> None:
        """Poll `until` in a daemon thread; release once it is true (or after HOLD_SECONDS)."""

        def watch() -> None:
            while not self.released.wait(POLL_SECONDS):
                try:
                    done = until() or time.monotonic() - self.since > HOLD_SECONDS
                except Exception as exc:  # the run records away for a moment: keep holding
                    log.debug("snapshot %s: cannot tell if it is still needed: %s", self, exc)
                    done = time.monotonic() - self.since > HOLD_SECONDS
                if done:
                    self.release()

        threading.Thread(target=watch, name=f"hygge-snapshot-{self.snapshot}", daemon=True).start()


def hold(session: Session) -> str | None:
    """Begin a snapshot `session` keeps for others (None: its database cannot share one).
    From here on `session` belongs to the holder: close it only through `release`."""
    snapshot = session.export_snapshot()
    if snapshot is not None:
        with _lock:
            _held[snapshot] = _Holder(session, snapshot)
    return snapshot


def release(snapshot: str | None, until: Callable[[], bool] | None = None) -> None:
    """Let the snapshot go now, or once `until()` is true (polled in the background)."""
    with _lock:
        holder = _held.get(snapshot or "")
    if holder is None:
        return
    if until is None:
        holder.release()
    else:
        holder.release_when(until)


def held() -> list[str]:
    """The snapshots this process holds (for tests and logs)."""
    with _lock:
        return list(_held)
