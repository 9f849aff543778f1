"""The board of a partitioned flow run on workers, in Redis (hygge.run.context.Board).

What travels through Redis is small: the plan (each part's descriptor, and the incremental
state it was planned from), written once with SET NX by the first partition to start, so
every partition splits the same way even if the table changes meanwhile; and each sealed
part's description (its files, rows, checkpoint, the worker that staged it). The data stays
where the store staged it.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from worker.contract import Keys, text

PLAN_TTL = 7 * 24 * 3600  # seconds a plan and the sealed parts stay in Redis


class RedisBoard:
    """The board of one run (`run_id`); keys are a flow's parts key (FlowJob.parts_key)."""

    def __init__(self, client: redis.Redis, run_id: str) -> None:
        self.r = client
        self.keys = Keys(run_id)

    def plan(self, key: str) -> dict[str, Any] | None:
        raw = self.r.get(self.keys.plan(key))
        return None if raw is None else json.loads(text(raw))

    def offer_plan(self, key: str, plan: dict[str, Any]) -> dict[str, Any]:
        self.r.set(self.keys.plan(key), json.dumps(plan), nx=True, ex=PLAN_TTL)
        found = self.plan(key)
        assert found is not None
        return found

    def seal(self, key: str, index: int, record: dict[str, Any]) -> None:
        name = self.keys.sealed(key)
        self.r.hset(name, str(index), json.dumps(record))
        self.r.expire(name, PLAN_TTL)

    def sealed(self, key: str) -> dict[int, dict[str, Any]]:
        found = self.r.hgetall(self.keys.sealed(key))
        return {int(text(k)): json.loads(text(v)) for k, v in found.items()}
