"""Distributed runs in the history: an index of runs in Redis, read as RunRecords, trimmed.

Every run `Runs.create` writes is added to the sorted set `hygge:runs:history` (run id ->
created). A finished run's keys expire after HYGGE_HISTORY_KEEP_DAYS (worker.runs); `trim`,
called whenever a run is created, also drops the runs beyond HYGGE_HISTORY_KEEP_RUNS (never
an active one), so neither the index nor the records grow without limit.

`record_skipped` writes a run whose flows were not sent (the scheduler found the previous run
of a flow still going), in the same layout, so `hygge runs` shows it with its reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import redis

from hygge.errors import RunLost
from hygge.history.records import DISTRIBUTED, FlowRecord, HistorySettings, RunRecord, matches
from hygge.progress import FlowState
from worker.contract import FlowStatus, Keys, text
from worker.runs import Runs, RunStatus, unannounced

PAGE = 200  # index entries read at a time


def record(status: RunStatus, trigger: str = "manual") -> RunRecord:
    """A run as kept in Redis, as a history record. A partitioned flow is one line (its
    commit step's); its partitions' own lines are not repeated."""
    flows = tuple(_flow(f) for f in status.flows if "#" not in f.flow)
    ends = [f.finished for f in status.flows if f.finished]
    seconds = (max(ends) if status.done and ends else time.time()) - status.created
    return RunRecord(
        status.run_id, DISTRIBUTED, status.created, max(0.0, seconds), flows, status.file, trigger
    )


def _flow(status: FlowStatus) -> FlowRecord:
    bad = status.state in (FlowState.FAILED, FlowState.SKIPPED)
    return FlowRecord(
        status.flow,
        str(status.state),
        status.rows,
        round(status.seconds, 3),
        status.retries,
        status.message if bad else "",
    )


def read(records: Runs, run_id: str) -> RunRecord | None:
    try:
        status = records.status(run_id)
    except RunLost:
        return None
    return record(status, text(records.r.hget(Keys(run_id).run, "trigger")) or "manual")


def runs(
    records: Runs, flows: list[str] | None = None, state: str | None = None, limit: int = 20
) -> list[RunRecord]:
    """Newest first; index entries whose run expired are dropped on the way."""
    out: list[RunRecord] = []
    start = 0
    while len(out) < limit:
        ids = _ids(records.r.zrevrange(Keys.HISTORY, start, start + PAGE - 1))
        if not ids:
            break
        start += PAGE
        for run_id in ids:
            run = read(records, run_id)
            if run is None:
                records.r.zrem(Keys.HISTORY, run_id)
                start -= 1
                continue
            if matches(run, flows, state):
                out.append(run)
                if len(out) >= limit:
                    break
    return out


def trim(client: redis.Redis, settings: HistorySettings | None = None) -> int:
    """Drop the runs beyond the retention bounds (by age, then by count), never an active
    one; returns how many were dropped."""
    settings = settings or HistorySettings.from_env()
    cutoff = time.time() - settings.keep_seconds
    old = _ids(client.zrangebyscore(Keys.HISTORY, "-inf", cutoff))
    extra = client.zcard(Keys.HISTORY) - settings.keep_runs
    if extra > 0:
        old += _ids(client.zrange(Keys.HISTORY, 0, extra - 1))
    active = {text(a) for a in client.smembers(Keys.ACTIVE_RUNS)}
    doomed = [i for i in dict.fromkeys(old) if i not in active]
    for run_id in doomed:
        _delete(client, run_id)
    return len(doomed)


def _ids(members: Any) -> list[str]:
    """Members of a sorted set as redis-py returns them (bytes, or str), as text."""
    return [text(m) for m in members]


def _delete(client: redis.Redis, run_id: str) -> None:
    keys = Keys(run_id)
    names = json.loads(client.hget(keys.run, "flows") or "[]")
    pipe = client.pipeline(transaction=False)
    pipe.zrem(Keys.HISTORY, run_id)
    pipe.delete(keys.run, keys.jobs, *(keys.flow(n) for n in names))
    pipe.execute()


def record_skipped(
    client: redis.Redis,
    run_id: str,
    file: str,
    flows: list[str],
    reason: str,
    meta: Mapping[str, str],
) -> None:
    """A run none of whose flows was sent, each skipped for `reason`: kept like any other."""
    keys = Keys(run_id)
    now = time.time()
    ttl = HistorySettings.from_env().keep_seconds
    pipe = client.pipeline(transaction=True)
    pipe.hset(
        keys.run,
        mapping={
            "file": file,
            "created": now,
            "flows": json.dumps(flows),
            "deps": json.dumps({f: [] for f in flows}),
            "total": len(flows),
            "ended": len(flows),
            **{k: str(v) for k, v in meta.items()},
        },
    )
    for flow in flows:
        pipe.hset(
            keys.flow(flow),
            mapping={
                "state": FlowState.SKIPPED,
                "message": reason,
                "finished": now,
                "updated": now,
            },
        )
        pipe.expire(keys.flow(flow), ttl)
    pipe.expire(keys.run, ttl)
    pipe.zadd(Keys.HISTORY, {run_id: now})
    unannounced(pipe, run_id, flows)  # Flower shows them too, with the reason
    pipe.execute()
