"""`hygge enqueue`, `hygge status` and `hygge worker` behind the CLI: runs on Celery workers.

`enqueue` checks everything it can before it sends anything: the whole flows.yml (with `${VAR}`
left for the workers), the selected flow names, and that Redis answers. Then it writes the
run's plan to Redis and sends one message per flow that depends on nothing; the others are
sent by whichever worker sees their dependencies succeed (see hygge.runstate.advance). Celery
is imported only when a message is actually sent.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hygge import config as config_module
from hygge.entities import manifest
from hygge.jobs import FlowJob, Settings
from hygge.runstate import RunState, RunStatus, connect


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
) -> EnqueuedRun:
    """Validate, plan and send a run; raises a HyggeError before sending anything if it can't."""
    settings = settings or Settings.from_env()
    config = config_module.load(path, resolve=False)
    selected = config.select(flows)
    order = [name for wave in config.waves(selected) for name in wave]
    # Entities were discovered just now, here, with this environment: the run's list of
    # entity flows is fixed from here on (a table added meanwhile waits for the next run).
    sets = [s for s in config.entity_sets.values() if set(s.flows) & set(selected)]
    notes = [note for s in sets for note in (*s.notes, *manifest.gone(s))]
    nothing = "; nothing was enqueued"
    connect(settings.broker_url, "broker", nothing)
    state = RunState(connect(settings.result_backend, "result backend", nothing))
    run_id = uuid.uuid4().hex[:12]
    base_dir = str(Path(path).resolve().parent)
    jobs = [
        FlowJob(
            run_id=run_id,
            flow=name,
            raw=config.flows[name].raw,
            base_dir=base_dir,
            task_id=str(uuid.uuid4()),
            depends_on=[d for d in config.flows[name].options.depends_on if d in selected],
            full_refresh=full_refresh,
        )
        for name in order
    ]
    roots = state.create(run_id, str(path), jobs)
    from worker.app import send

    for job in roots:
        send(job)
    notes += [n for n in (manifest.record(s) for s in sets) if n]
    return EnqueuedRun(
        run_id,
        {j.flow: j.task_id for j in jobs},
        [j.flow for j in roots],
        settings.flower_url,
        notes,
    )


def status(run_id: str, settings: Settings | None = None) -> RunStatus:
    settings = settings or Settings.from_env()
    return RunState(connect(settings.result_backend, "result backend")).status(run_id)


def follow(
    run_id: str,
    on_status: Callable[[RunStatus], None],
    settings: Settings | None = None,
    interval: float = 0.5,
    timeout: float | None = None,
) -> RunStatus:
    """Poll a run until every flow ended, calling `on_status` each time; returns the end."""
    settings = settings or Settings.from_env()
    state = RunState(connect(settings.result_backend, "result backend"))
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        current = state.status(run_id)
        on_status(current)
        if current.done or (deadline is not None and time.monotonic() > deadline):
            return current
        time.sleep(interval)


def run_worker(args: list[str]) -> None:
    """Run a Celery worker in this process (so it is PID 1 in a container and gets SIGTERM)."""
    from hygge import registry
    from worker.app import app

    registry.load_plugins()  # a wrong HYGGE_PLUGINS fails here, not in the first task
    argv = ["worker", *args]
    if not any(a in ("-l", "--loglevel") or a.startswith("--loglevel=") for a in args):
        argv += ["--loglevel", "INFO"]
    app.worker_main(argv)


def run_flower(args: list[str]) -> None:
    """Run Flower on hygge's app (`celery --app worker.app flower` in one word)."""
    from worker.app import app

    app.start(["flower", *args])
