"""A distributed run as kept in Redis: its plan, each flow's status, and who may send what.

Enqueuer, workers and `hygge status` all go through this class, so the rules live once:
- `create` writes the whole plan before any message is sent (a run is never half-planned);
- `advance` is the small coordinator behind `depends_on`: whoever sees a flow end (the worker
  that ran it, or any worker's sweeper) submits the dependants whose dependencies all succeeded
  and marks as skipped those behind a failure. Submitting is claimed with HSETNX, so a flow is
  sent once however many workers race to do it;
- `reclaim` is how a dead worker's flow comes back: its lease expired (or the worker holding
  its message stopped beating), so the flow's generation is bumped and a new message is sent;
  any older copy of the message that Redis redelivers later sees it is stale and drops.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from hygge.errors import HyggeError
from hygge.jobs import (
    FAILED,
    PENDING,
    QUEUED,
    SKIPPED,
    SUCCESS,
    TERMINAL,
    FlowJob,
    FlowStatus,
    Keys,
)
from hygge.secrets import mask_url

FINISHED_RUN_TTL = 7 * 24 * 3600  # seconds a finished run stays readable by `hygge status`

# Bump the generation of a flow whose worker is gone; returns the new generation or 0.
# A flow whose destination's lease is held (by its own live worker, or by another run writing
# there) is left alone. KEYS: flow hash. ARGV: worker-key prefix, message, now.
_RECLAIM = """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'running' and state ~= 'queued' and state ~= 'retrying' then return 0 end
local lock = redis.call('HGET', KEYS[1], 'lock')
if lock and redis.call('EXISTS', lock) == 1 then return 0 end
if state ~= 'running' then
  local w = redis.call('HGET', KEYS[1], 'worker')
  if (not w) or w == '' then return 0 end
  if redis.call('EXISTS', ARGV[1] .. w) == 1 then return 0 end
end
local gen = redis.call('HINCRBY', KEYS[1], 'generation', 1)
redis.call('HSET', KEYS[1], 'state', 'queued', 'worker', '', 'message', ARGV[2],
           'updated', ARGV[3])
return gen
"""

# Record which worker holds a flow's message, unless the flow already runs or ended.
_RECEIVED = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'queued' or state == 'retrying' then
  redis.call('HSET', KEYS[1], 'worker', ARGV[1])
  return 1
end
return 0
"""


# Start an attempt: unless the flow ended or this message is an old copy, take the lease on
# its destination (SET NX PX) and mark the flow running, in one step.
# KEYS: flow hash, lock key. ARGV: generation, token ("<run>:<uuid>"), ttl ms, worker,
# task id, now, run id. Returns {verdict, starts, ends, retries, holder}: verdict is 'ok',
# 'stale' (ended or superseded), 'busy' (this run's flow runs elsewhere) or 'waiting'
# (another run writes the same destination; holder says which).
_BEGIN = """
local st = redis.call('HMGET', KEYS[1], 'state', 'generation', 'ends', 'retries')
if st[1] == 'success' or st[1] == 'failed' or st[1] == 'skipped' then
  return {'stale', 0, 0, 0, ''}
end
if tonumber(ARGV[1]) < tonumber(st[2] or '1') then return {'stale', 0, 0, 0, ''} end
if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then
  local holder = redis.call('GET', KEYS[2]) or ''
  if string.sub(holder, 1, string.len(ARGV[7]) + 1) == ARGV[7] .. ':' then
    return {'busy', 0, 0, 0, holder}
  end
  return {'waiting', 0, 0, 0, holder}
end
local starts = redis.call('HINCRBY', KEYS[1], 'starts', 1)
redis.call('HSET', KEYS[1], 'state', 'running', 'worker', ARGV[4], 'task_id', ARGV[5],
  'message', '', 'rows', 0, 'batches', 0, 'memory_bytes', 0, 'seconds', 0,
  'summary', '', 'started', ARGV[6], 'updated', ARGV[6])
return {'ok', starts, tonumber(st[3] or '0'), tonumber(st[4] or '0'), ''}
"""

# End an attempt: record the outcome, count it, and give the lease back, in one step, so no
# sweeper can see a flow that is neither running nor ended. Only the lease holder may: an
# attempt that lost its lease records nothing (the flow is, or will be, re-sent). A final
# outcome is counted once per run; the return says whether the run is complete and who waits
# on the flow. KEYS: flow hash, lock key, run hash. ARGV: token, final (1/0), field, value...
# Returns {ended, total, dependants}; ended = -2 when the lease was not ours.
_END = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {-2, 0, ''} end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('HINCRBY', KEYS[1], 'ends', 1)
redis.call('DEL', KEYS[2])
local ended = -1
if ARGV[2] == '1' and redis.call('HSETNX', KEYS[1], 'counted', 1) == 1 then
  ended = redis.call('HINCRBY', KEYS[3], 'ended', 1)
end
local total = tonumber(redis.call('HGET', KEYS[3], 'total') or '0')
return {ended, total, redis.call('HGET', KEYS[1], 'dependants') or ''}
"""


class BrokerUnreachable(HyggeError):
    """Redis (the broker or the result backend) does not answer."""


@dataclass(frozen=True)
class Begun:
    """What `begin` found: the verdict, the flow's start/end/retry counts, the lease holder."""

    verdict: str
    starts: int
    ends: int
    retries: int
    holder: str


@dataclass
class RunStatus:
    """Every flow of one run, in plan order."""

    run_id: str
    file: str = ""
    created: float = 0.0
    flows: list[FlowStatus] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return bool(self.flows) and all(f.done for f in self.flows)

    @property
    def ok(self) -> bool:
        return all(f.state == SUCCESS for f in self.flows)


def connect(url: str, what: str = "Redis", consequence: str = "") -> redis.Redis:
    """A client for `url`, checked with a PING; a clear error (password masked) if it fails."""
    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=3, socket_timeout=10, health_check_interval=30
        )
        client.ping()
    except (redis.RedisError, ValueError, OSError) as exc:
        raise BrokerUnreachable(
            f"cannot reach the {what} at {mask_url(url)}: {mask_url(str(exc))}",
            hint="start Redis there, or point HYGGE_BROKER_URL (and HYGGE_RESULT_BACKEND) "
            f"at a running one{consequence}",
        ) from None
    return client


class RunState:
    """Reads and writes runs in one Redis database."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self._reclaim = client.register_script(_RECLAIM)
        self._received = client.register_script(_RECEIVED)
        self._begin = client.register_script(_BEGIN)
        self._end = client.register_script(_END)

    # -- planning (enqueue) ---------------------------------------------------------------
    def create(self, run_id: str, file: str, jobs: list[FlowJob]) -> list[FlowJob]:
        """Store the plan of a run in one transaction; returns the jobs to send now."""
        keys = Keys(run_id)
        now = time.time()
        roots = [j for j in jobs if not j.depends_on]
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(
            keys.run,
            mapping={
                "file": file,
                "created": now,
                "flows": json.dumps([j.flow for j in jobs]),
                "deps": json.dumps({j.flow: j.depends_on for j in jobs}),
                "total": len(jobs),
                "ended": 0,
            },
        )
        pipe.hset(keys.jobs, mapping={j.flow: j.model_dump_json() for j in jobs})
        for job in jobs:
            pipe.hset(
                keys.flow(job.flow),
                mapping={
                    "state": PENDING if job.depends_on else QUEUED,
                    "task_id": job.task_id,
                    "generation": job.generation,
                    "depends_on": ",".join(job.depends_on),
                    "lock": Keys.lock(job.destination),
                    "dependants": ",".join(d.flow for d in jobs if job.flow in d.depends_on),
                    "updated": now,
                    **({} if job.depends_on else {"submitted": 1}),
                },
            )
        pipe.sadd(Keys.ACTIVE_RUNS, run_id)
        pipe.execute()
        return roots

    # -- reading --------------------------------------------------------------------------
    def exists(self, run_id: str) -> bool:
        return bool(self.r.exists(Keys(run_id).run))

    def flow_names(self, run_id: str) -> list[str]:
        raw = self.r.hget(Keys(run_id).run, "flows")
        return json.loads(raw) if raw else []

    def job(self, run_id: str, flow: str) -> FlowJob:
        raw = self.r.hget(Keys(run_id).jobs, flow)
        if raw is None:
            raise HyggeError(f"run {run_id} has no flow '{flow}'")
        return FlowJob.model_validate_json(raw)

    def flow_status(self, run_id: str, flow: str) -> FlowStatus:
        return FlowStatus.from_hash(flow, self.r.hgetall(Keys(run_id).flow(flow)))

    def status(self, run_id: str) -> RunStatus:
        keys = Keys(run_id)
        meta = self.r.hgetall(keys.run)
        if not meta:
            raise HyggeError(
                f"no run with id '{run_id}'",
                hint="use the run id `hygge enqueue` printed; finished runs are kept "
                f"{FINISHED_RUN_TTL // 86400} days",
            )
        names = json.loads(meta[b"flows"])
        pipe = self.r.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(keys.flow(name))
        flows = [FlowStatus.from_hash(n, h) for n, h in zip(names, pipe.execute(), strict=True)]
        return RunStatus(
            run_id, meta.get(b"file", b"").decode(), float(meta.get(b"created", 0)), flows
        )

    def active_runs(self) -> list[str]:
        return sorted(m.decode() for m in self.r.smembers(Keys.ACTIVE_RUNS))

    # -- writing (workers) ----------------------------------------------------------------
    def update(self, run_id: str, flow: str, **values: Any) -> None:
        values["updated"] = time.time()
        self.r.hset(Keys(run_id).flow(flow), mapping=_wire(values))

    def received(self, run_id: str, flow: str, worker: str, alive_seconds: float) -> None:
        """A worker took a flow's message: note it, so its death can be noticed."""
        self.r.set(Keys.worker(worker), 1, ex=max(1, round(alive_seconds)))
        self._received(keys=[Keys(run_id).flow(flow)], args=[worker])

    def beat(self, worker: str, alive_seconds: float) -> None:
        self.r.set(Keys.worker(worker), 1, ex=max(1, round(alive_seconds)))

    def begin(self, job: FlowJob, token: str, ttl_ms: int, worker: str, task_id: str) -> Begun:
        """Take the lease on the flow's destination and mark it running (see _BEGIN)."""
        verdict, starts, ends, retries, holder = self._begin(
            keys=[Keys(job.run_id).flow(job.flow), Keys.lock(job.destination)],
            args=[job.generation, token, ttl_ms, worker, task_id, time.time(), job.run_id],
        )
        return Begun(verdict.decode(), int(starts), int(ends), int(retries), holder.decode())

    def end(self, job: FlowJob, token: str, state: str, **values: Any) -> list[FlowJob] | None:
        """End an attempt in `state`, releasing the lease `token`. A final state returns the
        dependants this unblocked (claimed: the caller sends them); None when the lease was
        no longer ours, and nothing was recorded."""
        run_id, flow = job.run_id, job.flow
        keys = Keys(run_id)
        final = state in TERMINAL
        now = time.time()
        fields = {"state": state, "updated": now, **({"finished": now} if final else {}), **values}
        ended, total, dependants = self._end(
            keys=[keys.flow(flow), Keys.lock(job.destination), keys.run],
            args=[token, int(final), *(x for kv in _wire(fields).items() for x in kv)],
        )
        if int(ended) == -2:
            return None
        if int(ended) >= int(total) > 0:
            self.finish(run_id, self.flow_names(run_id))
        if final and dependants:
            return self.advance(run_id, after=flow, dependants=dependants.decode().split(","))
        return []

    def advance(
        self, run_id: str, after: str | None = None, dependants: list[str] | None = None
    ) -> list[FlowJob]:
        """Skip flows behind a failure; claim the flows now ready. With `after` (a flow that
        just ended) only its `dependants` are looked at, so a flow's end costs the same in a
        run of 10 or 10,000 flows; without, the whole run (the sweeper's catch-up)."""
        if after is not None:
            return self._advance_from(run_id, list(dependants or []))
        keys = Keys(run_id)
        meta = self.r.hmget(keys.run, ["flows", "deps"])
        if meta[0] is None:  # expired
            self.r.srem(Keys.ACTIVE_RUNS, run_id)
            return []
        names: list[str] = json.loads(meta[0])
        deps: dict[str, list[str]] = json.loads(meta[1])
        pipe = self.r.pipeline(transaction=False)
        for name in names:
            pipe.hget(keys.flow(name), "state")
        states = {n: (v or b"").decode() for n, v in zip(names, pipe.execute(), strict=True)}
        ready: list[str] = []
        skipped: list[str] = []
        for name in _dependency_order(names, deps):  # so skips cascade in one pass
            if states[name] == PENDING:
                outcome = self._decide(run_id, name, deps[name], [states[d] for d in deps[name]])
                if outcome == QUEUED:
                    ready.append(name)
                elif outcome == SKIPPED:
                    skipped.append(name)
                states[name] = outcome or PENDING
        if skipped:
            self._count_ends(run_id, skipped)
        if all(states[n] in TERMINAL for n in names):
            self.finish(run_id, names)
        return [self.job(run_id, n) for n in ready]

    def _advance_from(self, run_id: str, todo: list[str]) -> list[FlowJob]:
        """Decide each flow in `todo` from its own hash and its dependencies' states."""
        keys = Keys(run_id)
        ready: list[str] = []
        skipped: list[str] = []
        seen: set[str] = set()
        while todo:
            name = todo.pop(0)
            if name in seen:
                continue
            seen.add(name)
            state, deps_raw, next_raw = self.r.hmget(
                keys.flow(name), ["state", "depends_on", "dependants"]
            )
            if (state or b"").decode() != PENDING:
                continue
            deps = [d for d in (deps_raw or b"").decode().split(",") if d]
            pipe = self.r.pipeline(transaction=False)
            for dep in deps:
                pipe.hget(keys.flow(dep), "state")
            outcome = self._decide(
                run_id, name, deps, [(v or b"").decode() for v in pipe.execute()]
            )
            if outcome == QUEUED:
                ready.append(name)
            elif outcome == SKIPPED:
                skipped.append(name)
                todo += [d for d in (next_raw or b"").decode().split(",") if d]
        if skipped:
            self._count_ends(run_id, skipped)
        return [self.job(run_id, n) for n in ready]

    def _decide(self, run_id: str, name: str, deps: list[str], states: list[str]) -> str | None:
        """A pending flow: skipped if a dependency failed, queued (claimed once) if all
        succeeded, else still pending (None)."""
        blocked = [d for d, st in zip(deps, states, strict=True) if st in (FAILED, SKIPPED)]
        if blocked:
            self.update(
                run_id,
                name,
                state=SKIPPED,
                message=f"skipped: depends on {', '.join(blocked)}, which did not succeed",
                finished=time.time(),
            )
            return SKIPPED
        if all(st == SUCCESS for st in states) and self.r.hsetnx(
            Keys(run_id).flow(name), "submitted", 1
        ):
            self.update(run_id, name, state=QUEUED)
            return QUEUED
        return None

    def _count_ends(self, run_id: str, flows: list[str]) -> None:
        """Count each flow's end once; the last one to end retires the run."""
        keys = Keys(run_id)
        pipe = self.r.pipeline(transaction=False)
        for flow in flows:
            pipe.hsetnx(keys.flow(flow), "counted", 1)
        newly = sum(pipe.execute())
        if newly:
            ended = self.r.hincrby(keys.run, "ended", newly)
            if ended >= int(self.r.hget(keys.run, "total") or 0):
                self.finish(run_id, self.flow_names(run_id))

    def finish(self, run_id: str, names: Iterable[str]) -> None:
        """A run whose flows all ended: off the active set, kept a while for `hygge status`."""
        keys = Keys(run_id)
        pipe = self.r.pipeline(transaction=False)
        pipe.srem(Keys.ACTIVE_RUNS, run_id)
        for key in (keys.run, keys.jobs, *(keys.flow(n) for n in names)):
            pipe.expire(key, FINISHED_RUN_TTL)
        pipe.execute()

    def reclaim(self, run_id: str) -> list[FlowJob]:
        """Flows of `run_id` whose worker is gone, each with a new generation to send."""
        keys = Keys(run_id)
        names = self.flow_names(run_id)
        note = "re-sent: the worker running it stopped answering"
        now = time.time()
        pipe = self.r.pipeline(transaction=False)
        for name in names:
            self._reclaim(
                keys=[keys.flow(name)],
                args=[Keys.worker(""), note, now],
                client=pipe,
            )
        generations = pipe.execute()
        return [
            self.job(run_id, name).model_copy(update={"generation": int(gen)})
            for name, gen in zip(names, generations, strict=True)
            if gen
        ]


def _dependency_order(names: list[str], deps: Mapping[str, list[str]]) -> list[str]:
    """Names with every flow after the flows it depends on (so skips cascade in one pass)."""
    ordered: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for dep in deps.get(name, []):
            if dep in deps:
                visit(dep)
        ordered.append(name)

    for name in names:
        visit(name)
    return ordered


def _wire(values: Mapping[str, Any]) -> dict[str, str | int | float]:
    return {k: (v if isinstance(v, int | float | str) else str(v)) for k, v in values.items()}
