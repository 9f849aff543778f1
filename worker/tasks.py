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
import time
from typing import Any

from celery import Task
from celery.exceptions import Ignore

from hygge.config import parse_flow
from hygge.errors import HyggeError
from hygge.flow import FlowResult
from hygge.jobs import (
    FAILED,
    NOOP_TASK_NAME,
    RETRYING,
    RUNNING,
    SUCCESS,
    TASK_NAME,
    FlowJob,
    Keys,
    progress_fields,
)
from hygge.progress import Progress
from hygge.retry import backoff_delay, is_transient
from hygge.secrets import mask_url
from worker.app import app, send, settings
from worker.app import run_state as _run_state
from worker.lease import Lease, LeaseLost

log = logging.getLogger("hygge.worker")

PROGRESS_EVERY = 1.0  # seconds between progress events of one flow


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
        self._last_report = 0.0
        self._lease: Lease | None = None

    def run(self) -> dict[str, Any]:
        job = self.job
        if self._stale():
            raise Ignore()
        lease = Lease(self.state.r, Keys(job.run_id).lock(job.flow), settings.lease_seconds)
        if not lease.acquire():
            log.info("flow %s is already running elsewhere; dropping this copy", job.flow)
            raise Ignore()
        self._lease = lease
        status = self.state.flow_status(job.run_id, job.flow)
        if self._stale(status):
            lease.release()
            raise Ignore()
        crashes = self.state.count(job.run_id, job.flow, "starts") - 1 - status.ends
        if crashes >= settings.max_crashes:
            self._fail(
                f"flow '{job.flow}': its worker died {crashes} times while running it "
                "(killed, or out of memory?); giving up",
                hint="run it alone with `hygge run` to see what happens, or give workers "
                "more memory",
            )
        self._update(
            state=RUNNING,
            worker=self.hostname,
            task_id=self.task.request.id,
            retries=self.task.request.retries,
            message="",
            rows=0,
            batches=0,
            bytes=0,
            seconds=0,
            summary="",
            started=time.time(),
        )
        try:
            with lease:
                result = self._move()
        except LeaseLost:
            self.state.count(job.run_id, job.flow, "ends")
            raise Ignore() from None  # another worker owns the flow now
        except Exception as exc:
            self.state.count(job.run_id, job.flow, "ends")
            self._failed(exc)
        self.state.count(job.run_id, job.flow, "ends")
        return self._succeeded(result)

    def _stale(self, status: Any = None) -> bool:
        """True when this message must not run: the flow ended, or a newer copy was sent."""
        status = status or self.state.flow_status(self.job.run_id, self.job.flow)
        return status.done or self.job.generation < status.generation

    def _move(self) -> FlowResult:
        spec = parse_flow(self.job.flow, self.job.raw, base_dir=self.job.base_dir, env=os.environ)
        self.retries, self.retry_delay = spec.options.retries, spec.options.retry_delay
        flow = spec.build(on_progress=self._progress)
        flow.retries = 0  # retries are Celery's here, so Flower shows them
        return asyncio.run(flow.start())

    def _progress(self, progress: Progress) -> None:
        assert self._lease is not None
        self._lease.check()
        if progress.state != "running":
            return
        now = time.monotonic()
        if now - self._last_report < PROGRESS_EVERY and progress.batches > 1:
            return
        self._last_report = now
        self.task.send_event("task-progress", result=progress.summary())
        self._update(**progress_fields(progress))

    def _succeeded(self, result: FlowResult) -> dict[str, Any]:
        progress = Progress(
            result.name, "success", result.rows, result.batches, result.bytes, result.seconds
        )
        self._update(state=SUCCESS, message="", finished=time.time(), **progress_fields(progress))
        self._release()
        self._advance()
        return {
            "flow": self.job.flow,
            "run_id": self.job.run_id,
            "rows": result.rows,
            "batches": result.batches,
            "bytes": result.bytes,
            "seconds": round(result.seconds, 3),
            "summary": progress.summary(),
        }

    def _failed(self, exc: Exception) -> None:
        """Retry a transient fault (Celery RETRY), or fail for good; always raises."""
        message = mask_url(str(exc))
        attempt = self.task.request.retries + 1
        if is_transient(exc) and attempt <= self.retries:
            delay = backoff_delay(attempt, self.retry_delay)
            self._update(
                state=RETRYING,
                retries=attempt,
                message=f"retry {attempt}/{self.retries} in {delay:.1f}s: {message}",
            )
            self._release()
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
        self._update(state=FAILED, message=str(error), finished=time.time())
        self._release()
        self._advance()
        raise error from None

    def _update(self, **values: Any) -> None:
        self.state.update(self.job.run_id, self.job.flow, **values)

    def _release(self) -> None:
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    def _advance(self) -> None:
        """Send the dependants this flow's end unblocked (the sweeper catches up on errors)."""
        try:
            for ready in self.state.advance(self.job.run_id):
                send(ready)
        except Exception as exc:
            log.warning("could not advance run %s: %s", self.job.run_id, mask_url(str(exc)))
