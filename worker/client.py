"""The client side of distributed runs: what `hygge enqueue`, `hygge status` and `--wait` do.

`enqueue` checks everything it can before it sends anything: the whole flows.yml (with `${VAR}`
left for the workers), the selected flow names, and that Redis answers. Then it writes the
run's plan to Redis and sends one message per flow that depends on nothing; the others are
sent by whichever worker sees their dependencies succeed (see worker.runs.advance). Celery
is imported only when a message is actually sent.

`follow` rides out a Redis restart: it says so in one line, reconnects, and keeps following;
a run that is gone afterwards (a Redis without persistence) is reported as lost (RunLost).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import redis

from hygge import config as config_module
from hygge.config import FlowsFile, FlowSpec
from hygge.config_checks import check_for_workers
from hygge.entities import manifest
from hygge.errors import BrokerUnreachable, ConfigError, RunLost
from hygge.progress import FlowState
from hygge.report import FlowReport
from hygge.run.steps import DISCOVER_STEP, StepKind, compile_flow
from hygge.secrets import literal_secrets, mask_url
from worker import history
from worker.contract import FlowJob, Keys, Settings, text
from worker.runs import Runs, RunStatus, connect

RECONNECT_SECONDS = 600.0  # how long `follow` keeps trying to reach a Redis that went away


@dataclass(frozen=True)
class EnqueuedRun:
    run_id: str
    task_ids: dict[str, str]  # flow -> Celery task id (fixed for the run's life)
    sent: list[str]  # flows sent now; the others wait for their dependencies
    flower_url: str
    notes: list[str] = field(default_factory=list)  # e.g. an entity gone since last run


def enqueue(
    path: str | os.PathLike[str],
    flows: list[str] | None = None,
    settings: Settings | None = None,
    full_refresh: bool = False,
    run_id: str | None = None,
    meta: Mapping[str, str] | None = None,
) -> EnqueuedRun:
    """Validate, plan and send a run; raises a HyggeError before sending anything if it can't.
    `run_id`: the id to use (the scheduler claims one before it sends); `meta`: fields kept
    with the run from its first moment (the scheduler's `trigger` and `slot`).

    Definitions with entities are not discovered here (this machine needs only Redis, not
    the databases or storage credentials): the run then starts with one discover step, and
    the worker that runs it discovers, plans and adds every selected flow to the run."""
    settings = settings or Settings.from_env()
    config = config_module.load(path, resolve=False, discover=False)
    base_dir = str(Path(path).resolve().parent)
    if config.deferred:
        for name in flows or []:  # what can be checked before discovery
            if name not in config.flows and name.split(".", 1)[0] not in config.deferred:
                config.select([name])  # unknown: the usual error, with the choices
        selected: list[str] = []
    else:
        selected = config.select(flows)
        check_for_workers(config, selected)  # before Redis is even asked: nothing is sent
        refuse_literal_secrets(config, selected)
    nothing = "; nothing was enqueued"
    connect(settings.broker_url, "broker", nothing)
    records = Runs(connect(settings.result_backend, "result backend", nothing))
    run_id = run_id or uuid.uuid4().hex[:12]
    if config.deferred:
        jobs = [
            FlowJob(
                run_id=run_id,
                flow=DISCOVER_STEP,
                raw={},
                base_dir=base_dir,
                task_id=str(uuid.uuid4()),
                full_refresh=full_refresh,
                flows_yml=config_module.read(path),
                select=list(flows or []),
            )
        ]
        notes = [
            f"entities of {', '.join(config.deferred)} are discovered on a worker; "
            f"`hygge status {run_id}` lists every flow once it has"
        ]
    else:
        jobs = plan_jobs(config, selected, run_id, base_dir, full_refresh)
        notes = []
    roots = records.create(run_id, str(path), jobs, settings.lease_seconds, meta=meta)
    from worker.app import dispatch

    dispatch(records, roots, sender_of=run_id)
    with contextlib.suppress(redis.RedisError):  # retention is best effort, the run is sent
        history.trim(records.r)
    return EnqueuedRun(
        run_id,
        {j.flow: j.task_id for j in jobs},
        [j.flow for j in roots],
        settings.flower_url,
        notes,
    )


def plan_jobs(
    config: FlowsFile, selected: list[str], run_id: str, base_dir: str, full_refresh: bool
) -> list[FlowJob]:
    """The jobs of the selected flows, in dependency order: what `enqueue` sends, or what a
    discover step adds to its run once it has found the entities."""
    jobs: list[FlowJob] = []
    for name in (n for wave in config.waves(selected) for n in wave):
        job = FlowJob(
            run_id=run_id,
            flow=name,
            raw=config.flows[name].raw,
            base_dir=base_dir,
            task_id=str(uuid.uuid4()),
            depends_on=[d for d in config.flows[name].options.depends_on if d in selected],
            full_refresh=full_refresh,
        )
        jobs += flow_jobs(job, config.flows[name])
    return jobs


def discover(job: FlowJob, records: Runs) -> FlowReport:
    """A discover step, on a worker: find the entities with this worker's environment, plan
    the selected flows, add them to the run and send those ready. Run again (its worker
    died), it finds its flows added already and sends nothing twice (the sweepers send what
    was claimed and not sent)."""
    from worker.app import dispatch

    started = time.perf_counter()
    file = records.r.hget(Keys(job.run_id).run, "file")
    label = text(file) or "flows.yml"
    config = config_module.parse(job.flows_yml, label, base_dir=Path(job.base_dir), env=None)
    selected = config.select(job.select or None)
    check_for_workers(config, selected)
    # The run's list of entity flows is fixed from here on (a table added meanwhile waits
    # for the next run).
    sets = [s for s in config.entity_sets.values() if set(s.flows) & set(selected)]
    notes = [note for s in sets for note in (*s.notes, *manifest.gone(s))]
    jobs = plan_jobs(config, selected, job.run_id, job.base_dir, job.full_refresh)
    roots = records.extend(job.run_id, jobs)
    if roots is not None:
        dispatch(records, roots, sender_of=job.run_id)
        notes += [n for n in (manifest.record(s) for s in sets) if n]
    found = ", ".join(f"{s.definition}: {len(s.entities)}" for s in sets)
    return FlowReport(
        job.flow,
        FlowState.SUCCESS,
        seconds=time.perf_counter() - started,
        message="; ".join([f"{len(jobs)} flow(s) planned (entities {found})", *notes]),
    )


def refuse_literal_secrets(config: config_module.FlowsFile, names: list[str]) -> None:
    """A password written out in flows.yml would lie in clear text in Redis and Flower (the
    message carries the flow as written): refuse it before anything is sent."""
    for name in names:
        found = literal_secrets(config.flows[name].raw)
        if found:
            raise ConfigError(
                f"{found[0]} holds a password or secret written out; enqueued, it would be "
                "stored in clear text in Redis; nothing was enqueued",
                file=str(config.path),
                flow=name,
                hint="put it in an environment variable the workers have and write "
                "${VAR} in its place, e.g. connection: ${PG_URL}",
            )


def flow_jobs(job: FlowJob, spec: FlowSpec) -> list[FlowJob]:
    """A flow's steps (hygge.run.steps.compile_flow) as jobs: the flow itself, or one task
    per partition and the commit step, which keeps the flow's name (flows depending on it
    wait for the commit) and depends on every partition. `partitions: auto` is the cores of
    the machine that enqueues."""
    jobs = []
    for step in compile_flow(spec, job.depends_on):
        if step.kind == StepKind.MOVE:
            jobs.append(job)
            continue
        update: dict[str, object] = {"parts": step.parts, "depends_on": list(step.depends_on)}
        if step.kind == StepKind.STAGE:
            update |= {"flow": step.name, "of": job.flow, "part": step.part}
            update["task_id"] = str(uuid.uuid4())
        jobs.append(job.model_copy(update=update))
    return jobs


def status(run_id: str, settings: Settings | None = None) -> RunStatus:
    settings = settings or Settings.from_env()
    return Runs(connect(settings.result_backend, "result backend")).status(run_id)


def follow(
    run_id: str,
    on_status: Callable[[RunStatus], None],
    settings: Settings | None = None,
    interval: float = 0.5,
    timeout: float | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> RunStatus:
    """Poll a run until every flow ended, calling `on_status` each time; returns the end.

    If Redis goes away meanwhile, `on_notice` hears it once, and again once it is back;
    RunLost if the run is gone after the restart, BrokerUnreachable after RECONNECT_SECONDS."""
    settings = settings or Settings.from_env()
    url = mask_url(settings.result_backend)
    records = Runs(connect(settings.result_backend, "result backend"))
    notice = on_notice or (lambda _: None)
    deadline = None if timeout is None else time.monotonic() + timeout
    down_since: float | None = None
    seen = False  # a run we have read does not vanish while it runs, unless Redis lost it
    while True:
        try:
            current = records.status(run_id)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            if down_since is None:
                down_since = time.monotonic()
                notice(
                    f"lost the connection to Redis at {url} ({mask_url(str(exc))}); reconnecting"
                )
            elif time.monotonic() - down_since > RECONNECT_SECONDS:
                raise BrokerUnreachable(
                    f"Redis at {url} has not answered for {RECONNECT_SECONDS:.0f}s; "
                    f"stopped following run {run_id}",
                    hint=f"once it is back, `hygge status {run_id} --watch` follows it again",
                ) from None
            time.sleep(min(2 * interval, 2.0))
            continue
        except RunLost:
            if not seen:
                raise
            raise _lost(run_id, url) from None
        if down_since is not None:
            down_since = None
            notice(f"reconnected to Redis at {url}; following run {run_id} again")
        seen = True
        on_status(current)
        if current.done or (deadline is not None and time.monotonic() > deadline):
            return current
        time.sleep(interval)


def _lost(run_id: str, url: str) -> RunLost:
    return RunLost(
        f"run {run_id} is LOST: Redis at {url} restarted without keeping its data, so the "
        "run's record and its queued messages are gone. Flows that had not finished may not "
        "have run, or stopped without committing anything (workers commit only while they "
        "hold their lease)",
        hint="check the destinations, then enqueue the flows again; run Redis with "
        "persistence (`appendonly yes`) so a restart keeps the runs",
    )
