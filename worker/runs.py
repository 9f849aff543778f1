"""A distributed run as kept in Redis: its plan, each flow's status, and who may send what.

Enqueuer, workers and `hygge status` all go through `Runs`, so the rules live once (the Lua
steps are in worker.scripts, the lease in worker.lease):
- `create` writes the whole plan before any message is sent (a run is never half-planned);
  a flow is marked `queued` only once its message is on the broker (`sent`), and a flow
  claimed for sending but never sent (its sender was killed) is sent again by `unsent`;
- `advance` is the small coordinator behind `depends_on`: whoever sees a flow end (the worker
  that ran it, or any worker's sweeper) submits the dependants whose dependencies all succeeded
  and marks as skipped those behind a failure. Submitting is claimed with HSETNX, so a flow is
  sent once however many workers race to do it;
- `reclaim` is how a dead worker's flow comes back: its lease expired (or the worker holding
  its message stopped beating), so the flow's generation is bumped and a new message is sent;
  any older copy of the message that Redis redelivers later sees it is stale and drops.

Over 400 lines: the run record in Redis is one object (create, update, follow,
recover); its Lua scripts are in `worker/scripts.py`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from hygge.errors import BrokerUnreachable, HyggeError, RunLost
from hygge.history.records import HistorySettings
from hygge.plan import waves
from hygge.progress import TERMINAL_STATES, FlowState
from hygge.run.steps import Decision, blocked_by, decide, skip_message
from hygge.secrets import mask_url
from worker import scripts
from worker.contract import FlowJob, FlowStatus, Keys, text
from worker.lease import Lease

PENDING, QUEUED, SUCCESS = FlowState.PENDING, FlowState.QUEUED, FlowState.SUCCESS
FAILED, SKIPPED = FlowState.FAILED, FlowState.SKIPPED

# seconds a finished run stays readable by `hygge status` and `hygge runs`
FINISHED_RUN_TTL = HistorySettings.from_env().keep_seconds


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


class Runs:
    """Reads and writes the records of runs in one Redis database."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self._reclaim = client.register_script(scripts.RECLAIM)
        self._received = client.register_script(scripts.RECEIVED)
        self._sent = client.register_script(scripts.SENT)
        self._unsent = client.register_script(scripts.UNSENT)
        self._start = client.register_script(scripts.START)
        self._end = client.register_script(scripts.END)

    # -- planning (enqueue) ---------------------------------------------------------------
    def create(
        self,
        run_id: str,
        file: str,
        jobs: list[FlowJob],
        sending_seconds: float = 20,
        meta: Mapping[str, str] | None = None,
    ) -> list[FlowJob]:
        """Store the plan of a run in one transaction; returns the jobs to send now (claimed
        for sending, still `pending` until `sent` says their message is on the broker).
        `meta`: more fields of the run's hash (e.g. `trigger: schedule`, for the history)."""
        keys = Keys(run_id)
        now = time.time()
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
                **_wire(meta or {}),
            },
        )
        self._plan_flows(pipe, keys, jobs, now, sending_seconds)
        pipe.sadd(Keys.ACTIVE_RUNS, run_id)
        pipe.zadd(Keys.HISTORY, {run_id: now})
        pipe.execute()
        return [j for j in jobs if not j.depends_on]

    def extend(
        self, run_id: str, jobs: list[FlowJob], sending_seconds: float = 20
    ) -> list[FlowJob] | None:
        """Add flows to a running run (the flows a discover step found on a worker), in one
        transaction; returns the jobs to send now, or None when this run was extended
        already (a discover step run again after its worker died: its flows are there)."""
        keys = Keys(run_id)
        if not self.r.hsetnx(keys.run, "extended", 1):
            return None
        now = time.time()
        names, deps = self.r.hmget(keys.run, ["flows", "deps"])
        every = [*json.loads(text(names) or "[]"), *(j.flow for j in jobs)]
        graph = {**json.loads(text(deps) or "{}"), **{j.flow: j.depends_on for j in jobs}}
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(keys.run, mapping={"flows": json.dumps(every), "deps": json.dumps(graph)})
        pipe.hincrby(keys.run, "total", len(jobs))
        self._plan_flows(pipe, keys, jobs, now, sending_seconds)
        pipe.execute()
        return [j for j in jobs if not j.depends_on]

    @staticmethod
    def _plan_flows(
        pipe: Any, keys: Keys, jobs: list[FlowJob], now: float, sending_seconds: float
    ) -> None:
        """Each job's message and its flow's record, pending (roots claimed for sending)."""
        pipe.hset(keys.jobs, mapping={j.flow: j.model_dump_json() for j in jobs})
        for job in jobs:
            pipe.hset(
                keys.flow(job.flow),
                mapping={
                    "state": PENDING,
                    "task_id": job.task_id,
                    "generation": job.generation,
                    "depends_on": ",".join(job.depends_on),
                    "lock": Keys.lock(job.lease_key),
                    "dependants": ",".join(d.flow for d in jobs if job.flow in d.depends_on),
                    # a partitioned flow's commit step: it runs once its partitions ended,
                    # also after a failure (to discard every partition's staging)
                    "collects": int(job.step.collects),
                    "updated": now,
                    **({} if job.depends_on else {"submitted": now}),
                },
            )
        pipe.set(keys.sender, 1, px=max(1000, int(sending_seconds * 1000)))

    # -- reading --------------------------------------------------------------------------
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
            raise RunLost(
                f"no run with id '{run_id}'",
                hint="use the run id `hygge enqueue` printed; finished runs are kept "
                f"{FINISHED_RUN_TTL / 86400:g} days, HYGGE_HISTORY_KEEP_DAYS (unless Redis "
                "restarted without "
                "persistence, which loses every run)",
            )
        names = json.loads(meta[b"flows"])
        pipe = self.r.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(keys.flow(name))
        flows = [FlowStatus.from_hash(n, h) for n, h in zip(names, pipe.execute(), strict=True)]
        return RunStatus(run_id, text(meta.get(b"file")), float(meta.get(b"created", 0)), flows)

    def active_runs(self) -> list[str]:
        return sorted(text(m) for m in self.r.smembers(Keys.ACTIVE_RUNS))

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

    def sending(self, run_id: str, seconds: float | None) -> None:
        """The enqueuer is still sending (for `seconds` more), or, with None, is done."""
        key = Keys(run_id).sender
        if seconds is None:
            self.r.delete(key)
        else:
            self.r.set(key, 1, px=max(1000, int(seconds * 1000)))

    def sent(self, job: FlowJob) -> None:
        """The flow's message is on the broker: `queued` (unless it already runs or ended)."""
        self._sent(keys=[Keys(job.run_id).flow(job.flow)], args=[time.time()])

    def begin(self, job: FlowJob, lease: Lease, worker: str, task_id: str) -> Begun:
        """Take the lease on the flow's destination and mark the flow running. The verdict is
        'ok', 'stale' (the flow ended, or this message is an older copy), 'busy' (a copy of
        this flow runs elsewhere: drop this one) or 'waiting' (another run writes the same
        destination, or an older copy is letting go: try again later)."""
        key = Keys(job.run_id).flow(job.flow)
        state, generation = self.r.hmget(key, ["state", "generation"])
        if text(state) in TERMINAL_STATES or job.generation < int(generation or 1):
            return Begun("stale", 0, 0, 0, "")
        if not lease.take():
            holder = lease.holder()
            run, _, held_generation = holder.partition(":")
            held_generation = held_generation.split(":")[0]
            ours = run == job.run_id and (
                not held_generation.isdigit() or int(held_generation) >= job.generation
            )
            return Begun("busy" if ours else "waiting", 0, 0, 0, holder)
        verdict, starts, ends, retries = self._start(
            keys=[key], args=[job.generation, worker, task_id, time.time()]
        )
        if verdict == b"stale":  # superseded between the look and the lease: let go
            lease.release()
        return Begun(verdict.decode(), int(starts), int(ends), int(retries), lease.token)

    def end(self, job: FlowJob, lease: Lease, state: str, **values: Any) -> list[FlowJob] | None:
        """End an attempt in `state` and release its lease. A final state returns the
        dependants this unblocked (claimed: the caller sends them); None when the lease was
        no longer ours, and nothing was recorded."""
        run_id, flow = job.run_id, job.flow
        keys = Keys(run_id)
        final = state in TERMINAL_STATES
        now = time.time()
        fields = {"state": state, "updated": now, **({"finished": now} if final else {}), **values}
        ended, total, dependants = self._end(
            keys=[keys.flow(flow), Keys.lock(job.lease_key), keys.run],
            args=[lease.token, int(final), *(x for kv in _wire(fields).items() for x in kv)],
        )
        lease.release()
        if int(ended) == -2:
            return None
        if int(ended) >= int(total) > 0:
            self.finish(run_id, self.flow_names(run_id))
        if final and dependants:
            return self.advance(run_id, after=flow, dependants=text(dependants).split(","))
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
        deps: dict[str, list[str]] = json.loads(text(meta[1]) or "{}")
        pipe = self.r.pipeline(transaction=False)
        for name in names:
            pipe.hmget(keys.flow(name), ["state", "collects"])
        found = dict(zip(names, pipe.execute(), strict=True))
        states = {n: text(v[0]) for n, v in found.items()}
        collects = {n: text(v[1]) == "1" for n, v in found.items()}
        ready: list[str] = []
        skipped: list[str] = []
        for name in (n for wave in waves(deps) for n in wave):  # so skips cascade in one pass
            if states[name] == PENDING:
                outcome = self._decide(
                    run_id, name, deps[name], [states[d] for d in deps[name]], collects[name]
                )
                if outcome == QUEUED:
                    ready.append(name)
                elif outcome == SKIPPED:
                    skipped.append(name)
                states[name] = outcome or PENDING
        if skipped:
            self._count_ends(run_id, skipped)
        if all(states[n] in TERMINAL_STATES for n in names):
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
            state, deps_raw, next_raw, collects = self.r.hmget(
                keys.flow(name), ["state", "depends_on", "dependants", "collects"]
            )
            if text(state) != PENDING:
                continue
            deps = [d for d in text(deps_raw).split(",") if d]
            pipe = self.r.pipeline(transaction=False)
            for dep in deps:
                pipe.hget(keys.flow(dep), "state")
            outcome = self._decide(
                run_id, name, deps, [text(v) for v in pipe.execute()], text(collects) == "1"
            )
            if outcome == QUEUED:
                ready.append(name)
            elif outcome == SKIPPED:
                skipped.append(name)
                todo += [d for d in text(next_raw).split(",") if d]
        if skipped:
            self._count_ends(run_id, skipped)
        return [self.job(run_id, n) for n in ready]

    def _decide(
        self, run_id: str, name: str, deps: list[str], states: list[str], collects: bool = False
    ) -> str | None:
        """A pending flow, by the one skip rule (hygge.run.steps.decide): skipped if a
        dependency failed, claimed for sending (once; QUEUED is returned, the flow is marked
        so by `sent`) if all succeeded, else still pending. A commit step (`collects`) is sent
        once all its partitions ended, however they ended."""
        decision = decide(states, collects)
        if decision == Decision.SKIP:
            self.update(
                run_id,
                name,
                state=SKIPPED,
                message=skip_message(blocked_by(deps, states)),
                finished=time.time(),
            )
            pipe = self.r.pipeline(transaction=False)
            unannounced(pipe, run_id, [name])
            pipe.execute()
            return SKIPPED
        if decision == Decision.RUN and self.r.hsetnx(
            Keys(run_id).flow(name), "submitted", time.time()
        ):
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

    def unsent(self, run_id: str, grace_seconds: float) -> list[FlowJob]:
        """Flows of `run_id` claimed for sending more than `grace_seconds` ago whose message
        never reached the broker (`hygge enqueue`, or the worker sending them, was killed in
        between): to send again. A copy too many is harmless: the lease and the generation
        make every copy but one drop."""
        keys = Keys(run_id)
        names = self.flow_names(run_id)
        note = "re-sent: whoever sent it was stopped before its message reached the broker"
        pipe = self.r.pipeline(transaction=False)
        for name in names:
            self._unsent(
                keys=[keys.flow(name), keys.sender],
                args=[time.time(), grace_seconds, note],
                client=pipe,
            )
        return [
            self.job(run_id, name)
            for name, claimed in zip(names, pipe.execute(), strict=True)
            if claimed
        ]


def unannounced(pipe: Any, run_id: str, flows: list[str]) -> None:
    """Note (on a pipeline) skipped flows Flower is to be told of: no worker runs a skipped
    flow, so whoever skips one leaves it here and worker.flower_view announces it."""
    pipe.sadd(Keys(run_id).unannounced, *flows)
    pipe.expire(Keys(run_id).unannounced, FINISHED_RUN_TTL)
    pipe.sadd(Keys.UNANNOUNCED_RUNS, run_id)


def _wire(values: Mapping[str, Any]) -> Mapping[Any, str | int | float]:
    return {k: (v if isinstance(v, int | float | str) else str(v)) for k, v in values.items()}
