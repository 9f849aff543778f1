"""The flow task: the same Flow as `hygge run`, wrapped in a lease, progress and retries.

What a worker adds around the Flow, and why:
- a generation check and the per-flow lease, so a redelivered or duplicated message never
  runs a flow twice at once, and a finished flow never runs again;
- a crash counter, so a flow that keeps killing its worker fails instead of looping;
- `${VAR}` resolved here, from the worker's own environment (secrets never travel);
- progress as Celery events (Flower shows PROGRESS and the summary) and in Redis for
  `hygge status`;
- transient faults retried by Celery (Flower shows RETRY), with backoff and jitter, up to the
  flow's `retries`; permanent faults fail at once with the clear message.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from typing import Any

from celery import Task
from celery.exceptions import Ignore

from hygge.config import parse_flow
from hygge.contract import Store
from hygge.errors import ConfigError, HyggeError
from hygge.jobs import (
    FAILED,
    NOOP_TASK_NAME,
    RETRYING,
    SUCCESS,
    TASK_NAME,
    FlowJob,
    Keys,
    progress_fields,
)
from hygge.report import FlowReport
from hygge.retry import backoff_delay, is_transient
from hygge.secrets import mask_url
from worker.app import app, send, settings
from worker.app import run_state as _run_state
from worker.lease import Lease, LeaseLost

log = logging.getLogger("hygge.worker")

PROGRESS_EVERY = 1.0  # seconds between progress events of one flow
WAIT_SECONDS = 5.0  # how often a flow waiting for another run's write to its destination looks


class FlowFailed(HyggeError):
    """A flow failed for good; its message is what Flower and `hygge status` show."""


class FlowRetry(HyggeError):
    """A transient fault; the flow will be tried again."""

    transient = True


@app.task(bind=True, name=TASK_NAME)
def run_flow(self: Task, job: dict[str, Any]) -> dict[str, Any]:
    return FlowRun(self, FlowJob.model_validate(job)).run()


@app.task(name=NOOP_TASK_NAME)
def noop() -> None:
    """Does nothing: the dispatch benchmark's baseline for Celery's own cost per task."""


class FlowRun:
    """One delivery of a flow's message to this worker."""

    def __init__(self, task: Task, job: FlowJob) -> None:
        self.task = task
        self.job = job
        self.state = _run_state()
        self.hostname = task.request.hostname or os.uname().nodename
        self.retries = 0
        self.retry_delay = 1.0
        self.retries_done = 0
        self._last_report = time.monotonic()  # the first report comes after PROGRESS_EVERY
        self._lease: Lease | None = None

    def run(self) -> dict[str, Any]:
        job = self.job
        lease = Lease(
            self.state.r, Keys.lock(job.destination), settings.lease_seconds, owner=job.run_id
        )
        begun = self.state.begin(
            job, lease.token, lease.ttl_ms, self.hostname, self.task.request.id
        )
        if begun.verdict == "waiting":
            self._wait_for(begun.holder.split(":")[0])
        if begun.verdict != "ok":  # ended, superseded, or running elsewhere: drop this copy
            log.info("flow %s: dropping a %s copy of its message", job.flow, begun.verdict)
            raise Ignore()
        self._lease = lease
        self.retries_done = begun.retries
        crashes = begun.starts - 1 - begun.ends
        if crashes >= settings.max_crashes:
            self._fail(
                f"flow '{job.flow}': its worker died {crashes} times while running it "
                "(killed, or out of memory?); giving up",
                hint="run it alone with `hygge run` to see what happens, or give workers "
                "more memory",
            )
        try:
            with lease:
                result = self._move()
        except LeaseLost:
            raise Ignore() from None  # another worker owns the flow now; touch nothing
        except Exception as exc:
            self._failed(exc)
        return self._succeeded(result)

    def _wait_for(self, other_run: str) -> None:
        """Another run writes this flow's destination: try again later; never both at once."""
        self._update(message=f"waiting: run {other_run} is writing the same destination")
        send(self.job, countdown=WAIT_SECONDS * random.uniform(1, 1.5))
        raise Ignore()

    def _move(self) -> FlowReport:
        try:
            spec = parse_flow(
                self.job.flow, self.job.raw, base_dir=self.job.base_dir, env=os.environ
            )
        except ConfigError as exc:  # e.g. a ${VAR} this worker's environment lacks
            raise ConfigError(f"on worker {self.hostname}: {exc.message}", hint=exc.hint) from None
        self.retries, self.retry_delay = spec.options.retries, spec.options.retry_delay
        flow = spec.build(on_progress=self._progress, full_refresh=self.job.full_refresh)
        flow.retries = 0  # retries are Celery's here, so Flower shows them
        self._fence(flow.store)
        return asyncio.run(flow.start())

    def _fence(self, store: Store[Any]) -> None:
        """Renew the lease right before the store commits: if it was lost (this worker was
        cut off longer than the lease and the flow was re-sent), commit nothing."""
        commit = store.commit
        lease = self._lease
        assert lease is not None

        async def fenced_commit() -> None:
            if lease.lost or not lease.extend():  # one quick round trip; nothing else runs now
                lease.lost = True
                lease.check()
            await commit()

        store.commit = fenced_commit  # type: ignore[method-assign]

    def _progress(self, progress: FlowReport) -> None:
        assert self._lease is not None
        self._lease.check()
        if progress.state != "running":
            return
        now = time.monotonic()
        if now - self._last_report < PROGRESS_EVERY:
            return
        self._last_report = now
        self.task.send_event("task-progress", result=progress.summary())
        self._update(**progress_fields(progress))

    def _succeeded(self, result: FlowReport) -> dict[str, Any]:
        self._end(SUCCESS, message="", **progress_fields(result))
        return {
            "flow": self.job.flow,
            "run_id": self.job.run_id,
            "rows": result.rows,
            "batches": result.batches,
            "memory_bytes": result.memory_bytes,
            "seconds": round(result.seconds, 3),
            "summary": result.summary(),
        }

    def _failed(self, exc: Exception) -> None:
        """Retry a transient fault (Celery RETRY), or fail for good; always raises."""
        message = mask_url(str(exc))
        attempt = self.retries_done + 1
        if is_transient(exc) and attempt <= self.retries:
            delay = backoff_delay(attempt, self.retry_delay)
            self._end(
                RETRYING,
                retries=attempt,
                message=f"retry {attempt}/{self.retries} in {delay:.1f}s: {message}",
            )
            argsrepr, kwargsrepr = self.job.describe()
            raise self.task.retry(
                exc=FlowRetry(message),
                countdown=delay,
                max_retries=self.retries,
                argsrepr=argsrepr,
                kwargsrepr=kwargsrepr,
            )
        if is_transient(exc) and self.retries:
            message = f"{message} (gave up after {self.retries} retries)"
        self._fail(message)

    def _fail(self, message: str, hint: str | None = None) -> None:
        error = FlowFailed(message, hint=hint)
        self._end(FAILED, message=str(error))
        raise error from None

    def _update(self, **values: Any) -> None:
        self.state.update(self.job.run_id, self.job.flow, **values)

    def _end(self, state: str, **values: Any) -> None:
        """Record how the attempt ended and give the lease back (one step in Redis); then send
        the flows this unblocked (if sending fails, the sweeper sends them)."""
        assert self._lease is not None
        self._lease.stop()
        ready = self.state.end(self.job, self._lease.token, state, **values)
        self._lease = None
        if ready is None:
            log.warning(
                "flow %s: lease lost before it ended; another worker runs it", self.job.flow
            )
            raise Ignore()
        try:
            for job in ready:
                send(job)
        except Exception as exc:
            log.warning("could not send the flows after %s: %s", self.job.flow, mask_url(str(exc)))
