"""The run history: what ran, when, how it ended, how many rows (`hygge runs`).

records.py the record of a run and its flows, and the retention settings; local.py the
local SQLite file; view.py the tables and JSON of `hygge runs`. Distributed runs are read
from Redis by worker.history.
"""

from __future__ import annotations

from hygge.history.local import LocalHistory
from hygge.history.records import (
    DISTRIBUTED,
    EMBEDDED,
    FlowRecord,
    HistorySettings,
    RunRecord,
    from_run,
)

__all__ = [
    "DISTRIBUTED",
    "EMBEDDED",
    "FlowRecord",
    "HistorySettings",
    "LocalHistory",
    "RunRecord",
    "from_run",
    "record_local",
]


def record_local(run: RunRecord, settings: HistorySettings | None = None) -> str | None:
    """Keep `run` in the local history; returns a warning to print if that failed (a
    history that cannot be written must not fail the run it describes)."""
    settings = settings or HistorySettings.from_env()
    history = LocalHistory.from_settings(settings)
    if history is None:
        return None
    try:
        history.save(run)
    except Exception as exc:
        return f"could not write the run history at {history.path}: {exc} (set HYGGE_HISTORY)"
    return None
