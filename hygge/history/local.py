"""The local run history: a SQLite file (HYGGE_HISTORY; see HistorySettings for the default).

`hygge run` writes each run here when it ends; `hygge enqueue --wait` writes the distributed
run it followed. Every write trims the file to the retention bounds (count and age), so it
never grows without limit. SQLite's own locking makes concurrent `hygge run`s safe; a busy
file is waited for, and a history that cannot be written never fails a run (the caller
gets the reason to print as a warning).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from hygge.history.records import FlowRecord, HistorySettings, RunRecord, matches

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    runner TEXT NOT NULL,
    trigger_ TEXT NOT NULL,
    file TEXT NOT NULL,
    started REAL NOT NULL,
    seconds REAL NOT NULL,
    flows TEXT NOT NULL  -- JSON list of FlowRecord fields
);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started);
"""


class LocalHistory:
    """Runs kept in one SQLite file."""

    def __init__(self, path: Path, keep_runs: int = 1000, keep_days: float = 30.0) -> None:
        self.path = path
        self.keep_runs = keep_runs
        self.keep_seconds = keep_days * 86400

    @classmethod
    def from_settings(cls, settings: HistorySettings) -> LocalHistory | None:
        if settings.path is None:
            return None
        return cls(settings.path, settings.keep_runs, settings.keep_days)

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            conn.executescript(SCHEMA)
            with conn:  # one transaction
                yield conn
        finally:
            conn.close()

    def save(self, run: RunRecord) -> None:
        """Write (or overwrite) a run, then trim to the retention bounds."""
        flows = json.dumps([f.__dict__ for f in run.flows])
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run.run_id, run.runner, run.trigger, run.file, run.started, run.seconds, flows),
            )
            db.execute("DELETE FROM runs WHERE started < ?", (time.time() - self.keep_seconds,))
            db.execute(
                "DELETE FROM runs WHERE run_id NOT IN "
                "(SELECT run_id FROM runs ORDER BY started DESC LIMIT ?)",
                (self.keep_runs,),
            )

    def runs(
        self, flows: list[str] | None = None, state: str | None = None, limit: int = 20
    ) -> list[RunRecord]:
        """Newest first, filtered by flow and run state."""
        if not self.path.exists():
            return []
        out: list[RunRecord] = []
        with self._db() as db:
            for row in db.execute("SELECT * FROM runs ORDER BY started DESC"):
                run = _record(row)
                if matches(run, flows, state):
                    out.append(run)
                    if len(out) >= limit:
                        break
        return out

    def run(self, run_id: str) -> RunRecord | None:
        if not self.path.exists():
            return None
        with self._db() as db:
            row = db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else _record(row)


def _record(row: tuple[str, str, str, str, float, float, str]) -> RunRecord:
    run_id, runner, trigger, file, started, seconds, flows = row
    records = tuple(FlowRecord(**f) for f in json.loads(flows))
    return RunRecord(run_id, runner, started, seconds, records, file, trigger)
