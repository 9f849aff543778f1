"""Incremental state kept in a table of the target database (`_hygge_state`), published in
the data's own transaction. (What the state means and how a run resumes from it is the
library's incremental module; this is only where a SQL store keeps it.)

One table `_hygge_state` (in the store's schema) holds a row per flow and target table (see
`key`): its definition and its state record as JSON. The publish transaction that makes a
run's rows visible also deletes and re-inserts that row, so data and state commit (or roll
back) together.

The same table marks commits made under a commit key (`mark_key`): an append, or a
partitioned run's commit. The mark is written in the publishing transaction, so the same
commit tried again after its publish landed (its COMMIT's answer lost; a worker killed
before it recorded the step as done) finds it and publishes nothing more. Marks are kept
for `MARK_DAYS`; a commit is tried again within minutes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from typing import Any

from hygge.sql.base import Session

STATE_TABLE = "_hygge_state"
MARK_DAYS = 7
_MARK = ":commit:"  # no flow name holds a ':' (hygge.config.FLOW_NAME)


def key(table: str, flow: str) -> str:
    """The row's key: the target table and the flow (flow names never hold a '/')."""
    return f"{table}/{flow}"


def mark_key(table: str, commit: str) -> str:
    """The key of the row marking that the commit under key `commit` landed in `table`."""
    return key(table, f"{_MARK}{commit}")


def mark_steps(session: Session, schema: str | None, mark: str) -> list[str]:
    """The statement, inside the publish, that writes the mark `mark` (a `mark_key`): an
    INSERT alone, as the key is new (a DELETE of a missing key first would take a gap lock,
    which deadlocked concurrent publishes on MariaDB)."""
    at = session.text_literal(dt.datetime.now(dt.UTC).isoformat())
    return [
        f"INSERT INTO {_table(session, schema)} (flow, definition, state, committed_at) "
        f"VALUES ({session.text_literal(mark)}, 'null', '{{}}', {at})"
    ]


def expire_marks(session: Session, schema: str | None, mark: str) -> None:
    """After a publish, in a transaction of its own and at best: delete the marks of the
    same target older than `MARK_DAYS`, found by a plain read and deleted by key (no lock on
    rows that stay)."""
    prefix = mark[: mark.rindex(_MARK) + len(_MARK)]
    expired = (dt.datetime.now(dt.UTC) - dt.timedelta(days=MARK_DAYS)).isoformat()
    table = _table(session, schema)
    try:
        rows = session.query(
            f"SELECT flow FROM {table} WHERE SUBSTR(flow, 1, {len(prefix)}) = "
            f"{session.text_literal(prefix)} AND committed_at < {session.text_literal(expired)}"
        )
        if rows:
            keys = ", ".join(session.text_literal(r[0]) for r in rows)
            session.execute(f"DELETE FROM {table} WHERE flow IN ({keys})")
        session.commit()
    except Exception:  # a later publish expires them
        with contextlib.suppress(Exception):
            session.rollback()


def _table(session: Session, schema: str | None) -> str:
    return session.qualified(STATE_TABLE, schema)


def ensure_table(session: Session, schema: str | None) -> None:
    """Create the state table if missing (its own commit: MySQL DDL would end a transaction)."""
    if session.columns(STATE_TABLE, schema) is not None:
        return
    text = session.long_text
    sql = (
        f"CREATE TABLE IF NOT EXISTS {_table(session, schema)} ("
        f"flow VARCHAR(400) NOT NULL PRIMARY KEY, definition {text} NOT NULL, "
        f"state {text} NOT NULL, committed_at VARCHAR(40) NOT NULL)"
    )
    try:
        session.execute(sql)
        session.commit()
    except Exception:  # another flow created it at the same moment
        with contextlib.suppress(Exception):
            session.rollback()
        if session.columns(STATE_TABLE, schema) is None:
            raise


def publish_steps(
    session: Session, schema: str | None, states: dict[str, dict[str, Any]]
) -> list[str]:
    """Statements that replace each flow's state row; run inside the publish transaction."""
    table = _table(session, schema)
    steps = []
    for flow, record in states.items():
        name = session.text_literal(flow)
        definition = session.text_literal(json.dumps(record.get("definition"), sort_keys=True))
        state = session.text_literal(json.dumps(record, sort_keys=True, default=str))
        at = session.text_literal(str(record.get("committed_at", "")))
        steps.append(f"DELETE FROM {table} WHERE flow = {name}")
        steps.append(
            f"INSERT INTO {table} (flow, definition, state, committed_at) "
            f"VALUES ({name}, {definition}, {state}, {at})"
        )
    return steps


def read(session: Session, schema: str | None, flow: str) -> dict[str, Any] | None:
    if session.columns(STATE_TABLE, schema) is None:
        return None
    rows = session.query(
        f"SELECT state FROM {_table(session, schema)} WHERE flow = {session.text_literal(flow)}"
    )
    session.rollback()
    return json.loads(rows[0][0]) if rows else None


def reset(session: Session, schema: str | None, flow: str) -> bool:
    if session.columns(STATE_TABLE, schema) is None:
        return False
    table, name = _table(session, schema), session.text_literal(flow)
    found = bool(session.query(f"SELECT 1 FROM {table} WHERE flow = {name}"))
    session.execute(f"DELETE FROM {table} WHERE flow = {name}")
    session.commit()
    return found
