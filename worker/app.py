"""The Celery application of hygge, configured from the environment.

`celery --app worker.app worker` / `hygge worker` run it; `celery --app worker.app flower` /
`hygge flower` watch it. Settings (see worker.contract.Settings): HYGGE_BROKER_URL (default
redis://localhost:6379/0), HYGGE_RESULT_BACKEND (default: the broker), HYGGE_VISIBILITY_TIMEOUT,
HYGGE_LEASE_SECONDS, HYGGE_SWEEP_SECONDS, HYGGE_MAX_CRASHES, HYGGE_PLUGINS; HYGGE_LOG_FORMAT=json
makes the worker's log one JSON object per line (as `--log-format json` does for the CLI).

The settings that make a long task on Redis run exactly once: late acks (the message stays
until the flow ended), reject on worker lost, prefetch 1 (a worker holds only what it runs),
a visibility timeout longer than the longest flow, and JSON only (a message is data, never
code). Task events are on so Flower sees progress, retries and which worker ran what.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger

from hygge.secrets import mask_logs
from worker.contract import TASK_NAME, FlowJob, Settings
from worker.runs import Runs, connect
from worker.signals import receives

settings = Settings.from_env()

app = Celery("hygge", broker=settings.broker_url, backend=settings.result_backend)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    event_serializer="json",
    accept_content=["json"],
    result_accept_content=["json"],
    task_default_queue="hygge",
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    worker_send_task_events=True,
    task_send_sent_event=True,
    task_track_started=True,
    broker_transport_options={"visibility_timeout": settings.visibility_timeout},
    result_backend_transport_options={"visibility_timeout": settings.visibility_timeout},
    broker_connection_retry_on_startup=True,
    result_expires=7 * 24 * 3600,
    worker_hijack_root_logger=True,
    imports=("worker.tasks", "worker.sweeper", "worker.flower_view"),
)


@receives(after_setup_logger, after_setup_task_logger)
def _mask_logs(logger: Any, **_: Any) -> None:
    """Every line a worker logs passes the password masking (tracebacks included)."""
    mask_logs(logger)


def send(job: FlowJob, countdown: float | None = None) -> Any:
    """Put one flow's message on the queue, under its fixed task id (see `dispatch`)."""
    argsrepr, kwargsrepr = job.describe()
    return app.send_task(
        TASK_NAME,
        kwargs={"job": job.model_dump(mode="json")},
        task_id=job.task_id,
        argsrepr=argsrepr,
        kwargsrepr=kwargsrepr,
        countdown=countdown,
    )


def dispatch(records: Runs, jobs: list[FlowJob], sender_of: str | None = None) -> None:
    """Send flows claimed for sending, and mark each `queued` once its message is on the
    broker. If this process dies in between, the sweepers send the rest (Runs.unsent).
    `sender_of` (a run id): keep saying this run is still being sent, so that the sweepers
    wait for the enqueuer of a large run rather than send its flows twice."""
    said = time.monotonic()
    for job in jobs:
        send(job)
        records.sent(job)
        if sender_of is not None and time.monotonic() - said > 1.0:
            records.sending(sender_of, settings.lease_seconds)
            said = time.monotonic()
    if sender_of is not None:
        records.sending(sender_of, None)


_runs: tuple[int, Runs] | None = None


def runs() -> Runs:
    """This process's view of the run records (one client per process: prefork children fork)."""
    global _runs
    if _runs is None or _runs[0] != os.getpid():
        _runs = (os.getpid(), Runs(connect(settings.result_backend, "result backend")))
    return _runs[1]


@receives(after_setup_logger, after_setup_task_logger)
def _log_format(logger: Any = None, **_: Any) -> None:
    """HYGGE_LOG_FORMAT=json: every handler Celery set up writes JSON lines (hygge.logs)."""
    from hygge import logs

    if logger is None or logs.log_format(None, os.environ) != "json":
        return
    for handler in logger.handlers:
        handler.setFormatter(logs.JsonFormatter())
