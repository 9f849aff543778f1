"""Partitioned flows on workers: one task per partition, one commit step after them all.

Each partition is an ordinary job in the run records (`lineitem#3/8`), with its own lease,
generation, retries and reclaim, so a failed partition retries alone and a worker killed
mid-partition has only that partition sent again (worker.runs). The commit step keeps the
flow's name and depends on every partition; the run records send it once they all ended
(`collects`), claimed with HSETNX, so it is sent exactly once, and it commits under the
lease of the flow's destination.

What travels through Redis is small: the plan (each part's descriptor, and the incremental
state it was planned from), written once with SET NX by the first partition to start so
every partition splits the same way even if the table changes meanwhile; and each sealed
part's description (its files, rows, checkpoint). The data stays where the store staged it,
which the committing worker must reach (a shared volume for local datasets).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import redis

from hygge.config import FlowSpec
from hygge.errors import FlowError
from hygge.flow import Flow, resume_home, state_record
from hygge.partitioned import PartitionedFlow, PartStore, check_rows
from hygge.progress import FlowState
from hygge.quality import CheckAccumulator
from hygge.report import FlowReport, ProgressCallback
from worker.contract import FlowJob, Keys, partition_name, text

PLAN_TTL = 7 * 24 * 3600  # seconds a plan and the sealed parts stay in Redis


def _part_name(job: FlowJob, index: int) -> str:
    return f"{job.parts_key}.p{index:04d}"


async def _plan(job: FlowJob, flow: PartitionedFlow, r: redis.Redis) -> dict[str, Any]:
    """The flow's plan: the one stored for this run, else planned here and stored (first
    writer wins; a loser uses the winner's plan, so every partition splits alike)."""
    key = Keys(job.run_id).plan(job.config_name)
    raw = r.get(key)
    if raw is None:
        state = None
        if flow.incremental:
            state = await resume_home(job.config_name, flow.home, flow.store, flow.full_refresh)
        parts = await flow.home.plan_parts(job.parts, flow.ranges)
        r.set(key, json.dumps({"parts": parts, "state": state}), nx=True, ex=PLAN_TTL)
        raw = r.get(key)
    plan = json.loads(text(raw))
    if flow.incremental:
        flow.home.resume(plan["state"])  # type: ignore[attr-defined]
    return plan


async def run_partition(
    job: FlowJob,
    spec: FlowSpec,
    r: redis.Redis,
    on_progress: ProgressCallback,
    fence: Callable[[], Awaitable[None]],
) -> FlowReport:
    """Stage one partition and record its sealed description for the commit step."""
    assert job.part is not None
    whole = spec.build(full_refresh=job.full_refresh, run_id=job.run_id)
    assert isinstance(whole, PartitionedFlow)
    plan = await _plan(job, whole, r)
    gate = whole.quality.gate(decides=False) if whole.quality else None
    store = PartStore(whole.new_store(), _part_name(job, job.part))
    checkpoint = None
    if job.part < len(plan["parts"]):
        home = whole.home.part(plan["parts"][job.part])
        flow = Flow(
            home,
            store,
            name=job.flow,
            queue_size=spec.options.queue_size,
            on_progress=on_progress,
            before_commit=fence,
            gate=gate,
        )
        report = await flow.start()
        if whole.incremental:
            checkpoint = home.checkpoint()  # type: ignore[attr-defined]
    else:  # the plan has fewer parts than tasks (fewer distinct values): an empty part
        await store.open()
        await store.commit()
        report = FlowReport(job.flow, FlowState.SUCCESS)
    sealed = {"sealed": store.sealed, "rows": report.rows, "checkpoint": checkpoint}
    if gate is not None:  # the part's checks, merged and judged by the commit step
        sealed["checks"] = gate.acc.to_json()
    key = Keys(job.run_id).sealed(job.config_name)
    r.hset(key, str(job.part), json.dumps(sealed))
    r.expire(key, PLAN_TTL)
    return report


async def commit_partitions(
    job: FlowJob,
    spec: FlowSpec,
    r: redis.Redis,
    fence: Callable[[], Awaitable[None]],
) -> FlowReport:
    """Publish every partition at once, or, if one failed, discard them all."""
    whole = spec.build(full_refresh=job.full_refresh)
    assert isinstance(whole, PartitionedFlow)
    store = whole.store
    keys = Keys(job.run_id)
    everything = [{"part": _part_name(job, i)} for i in range(job.parts)]
    try:
        states = [
            (name, r.hmget(keys.flow(name), ["state", "message"]))
            for name in (partition_name(job.flow, i, job.parts) for i in range(job.parts))
        ]
        failed = [(n, text(m)) for n, (st, m) in states if text(st) != FlowState.SUCCESS]
        if failed:
            raise FlowError(
                f"flow '{job.flow}': {len(failed)} of its {job.parts} partitions failed "
                f"({failed[0][0]}: {failed[0][1]}); nothing was published and every "
                "partition's staging was deleted",
                hint="fix the cause and enqueue the flow again",
            )
        found = {
            int(text(k)): json.loads(text(v)) for k, v in r.hgetall(keys.sealed(job.flow)).items()
        }
        missing = [i + 1 for i in range(job.parts) if i not in found]
        if missing:
            raise FlowError(
                f"flow '{job.flow}': partitions {missing} left no record of what they "
                "staged; nothing was published",
                hint="enqueue the flow again",
            )
        parts = [found[i] for i in range(job.parts)]
        sealed = [p["sealed"] for p in parts]
        read = sum(p["rows"] for p in parts)
        await check_rows(job.flow, store, sealed, read)  # type: ignore[arg-type]
        if whole.incremental:
            plan = json.loads(text(r.get(keys.plan(job.flow))))
            whole.home.resume(plan["state"])  # type: ignore[attr-defined]
            merged = whole.home.merge_checkpoints([p["checkpoint"] for p in parts])
            store.stage_state(job.flow, state_record(whole.home, merged, read))  # type: ignore[attr-defined,arg-type]
        checks = ""
        if whole.quality is not None:  # duplicates across workers count: nothing published
            q = whole.quality
            checks = q.judge_parts(
                [CheckAccumulator.from_json(list(q.checks), p["checks"], q.secret) for p in parts]
            )
        await fence()
        await store.commit_parts(sealed)  # type: ignore[attr-defined]
    except FlowError:
        await store.abort_parts(everything)  # type: ignore[attr-defined]
        raise
    # clean up the parts
    await store.abort_parts(everything)  # type: ignore[attr-defined]
    return FlowReport(
        job.flow,
        FlowState.SUCCESS,
        rows=read,
        parts_done=job.parts,
        parts_total=job.parts,
        checks=checks,
    )
