"""The flow task: the same step as `hygge run` (hygge.run), wrapped in a lease, progress and
retries. A job is one step: a whole flow, one partition of one, or the commit of its parts.

What a worker adds around the Flow, and why:
- a generation check and the per-flow lease, so a redelivered or duplicated message never
  runs a flow twice at once, and a finished flow never runs again;
- a crash counter, so a flow that keeps killing its worker fails instead of looping;
- `${VAR}` resolved here, from the worker's own environment (secrets never travel);
- progress as Celery events (Flower shows PROGRESS and the summary) and in Redis for
  `hygge status`;
- transient faults retried by Celery (Flower shows RETRY), with backoff and jitter, up to the
  flow's `retries`; permanent faults fail at once with the clear message (the worker's log
  says it in one line; the traceback only at debug level).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from typing import Any

import redis
from celery import Task
from celery.exceptions import Ignore

from hygge.config import parse_flow
from hygge.errors import ConfigError, FlowFailed, FlowRetry, LeaseLost
from hygge.progress import FlowState
from hygge.report import FlowReport
from hygge.retry import backoff_delay, is_transient
from hygge.run.context import RunContext
from hygge.run.steps import StepKind, execute
from hygge.secrets import mask_url
from worker.app import app, dispatch, runs, send, settings
from worker.board import RedisBoard
from worker.contract import NOOP_TASK_NAME, TASK_NAME, FlowJob, progress_fields
from worker.lease import Lease

log = logging.getLogger("hygge.worker")

PROGRESS_EVERY = 1.0  # seconds between progress events of one flow
WAIT_SECONDS = 5.0  # how often a flow waiting for another run's write to its destination looks


@app.task(bind=True, name=TASK_NAME, throws=(FlowFailed,))  # type: ignore[untyped-decorator]  # celery ships no type hints
def run_flow(self: Task, job: dict[str, Any]) -> dict[str, Any]:
    return FlowRun(self, FlowJob.model_validate(job)).run()


@app.task(name=NOOP_TASK_NAME)  # type: ignore[untyped-decorator]  # celery ships no type hints
def noop() -> None:
    """Does nothing: the dispatch benchmark's baseline for Celery's own cost per task."""


class FlowRun:
    """One delivery of a flow's message to this worker."""

    def __init__(self, task: Task, job: FlowJob) -> None:
        self.task = task
        self.job = job
        self.runs = runs()
        self.hostname = task.request.hostname or os.uname().nodename
        self.retries = 0
        self.retry_delay = 1.0
        self.retries_done = 0
        self._last_report = time.monotonic()  # the first report comes after PROGRESS_EVERY
        self._lease: Lease | None = None

    def run(self) -> dict[str, Any]:
        job = self.job
        lease = Lease(self.runs.r, job, settings.lease_seconds)
        begun = self.runs.begin(job, lease, self.hostname, self.task.request.id)
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
        except LeaseLost:  # another worker owns the flow now (or will): touch nothing
            log.warning("flow %s: its lease was lost; stopped without committing", job.flow)
            raise Ignore() from None
        except Exception as exc:
            self._failed(exc)
        return self._succeeded(result)

    def _record_end(self, state: str, values: dict[str, Any]) -> list[FlowJob] | None:
        """`runs.end`, tried again for as long as the lease lasts if Redis is away (it
        restarts): the outcome of a flow that ran is not dropped for a blip."""
        assert self._lease is not None
        deadline = time.monotonic() + settings.lease_seconds
        while True:
            try:
                return self.runs.end(self.job, self._lease, state, **values)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning(
                    "flow %s: cannot record that it ended (%s); trying again",
                    self.job.flow,
                    mask_url(str(exc)),
                )
                time.sleep(1.0)

    def _wait_for(self, other_run: str) -> None:
        """Another run writes this flow's destination: try again later; never both at once."""
        self._update(message=f"waiting: run {other_run} is writing the same destination")
        send(self.job, countdown=WAIT_SECONDS * random.uniform(1, 1.5))
        raise Ignore()

    def _move(self) -> FlowReport:
        """Execute the job's step (hygge.run.steps), the code `hygge run` runs too, with this
        worker's context: progress to Flower and Redis, the lease as the fence before any
        commit, retries left to Celery, the board in Redis."""
        if self.job.step.kind == StepKind.DISCOVER:
            from worker.client import discover

            try:
                return discover(self.job, self.runs)
            except ConfigError as exc:  # e.g. a ${VAR} or a database this worker lacks
                raise ConfigError(
                    f"on worker {self.hostname}: {exc.message}", hint=exc.hint
                ) from None
        try:
            spec = parse_flow(
                self.job.config_name, self.job.raw, base_dir=self.job.base_dir, env=os.environ
            )
        except ConfigError as exc:  # e.g. a ${VAR} this worker's environment lacks
            raise ConfigError(f"on worker {self.hostname}: {exc.message}", hint=exc.hint) from None
        self.retries, self.retry_delay = spec.options.retries, spec.options.retry_delay
        assert self._lease is not None
        context = RunContext(
            on_progress=self._progress,
            fence=self._lease.fence,  # a lost lease commits nothing
            board=RedisBoard(self.runs.r, self.job.run_id),
            own_retries=False,  # retries are Celery's here, so Flower shows them
            worker=self.hostname,
            run_id=self.job.run_id,
        )
        step = self.job.step
        failed = self._failed_partitions() if step.kind == StepKind.COMMIT else []
        return asyncio.run(
            execute(
                step,
                spec,
                context,
                key=self.job.parts_key,
                full_refresh=self.job.full_refresh,
                failed=failed,
            )
        )

    def _failed_partitions(self) -> list[tuple[str, str]]:
        """The partitions of this commit step that did not succeed, with their messages."""
        return [
            (name, status.message)
            for name in self.job.depends_on
            if (status := self.runs.flow_status(self.job.run_id, name)).state != FlowState.SUCCESS
        ]

    def _progress(self, progress: FlowReport) -> None:
        assert self._lease is not None
        self._lease.check()
        if progress.state != FlowState.RUNNING:
            return
        now = time.monotonic()
        if now - self._last_report < PROGRESS_EVERY:
            return
        self._last_report = now
        try:
            self.task.send_event("task-progress", result=progress.summary())
            self._update(**progress_fields(progress))
        except Exception as exc:  # progress is best effort: Redis away for a moment
            log.warning("flow %s: could not report progress: %s", self.job.flow, mask_url(str(exc)))

    def _succeeded(self, result: FlowReport) -> dict[str, Any]:
        self._end(FlowState.SUCCESS, message=result.message, **progress_fields(result))
        return {
            "flow": self.job.flow,
            "run_id": self.job.run_id,
            "rows": result.rows,
            "batches": result.batches,
            "memory_bytes": result.memory_bytes,
            "seconds": round(result.seconds, 3),
            "summary": result.summary(),
            "checks": result.checks,
        }

    def _failed(self, exc: Exception) -> None:
        """Retry a transient fault (Celery RETRY), or fail for good; always raises."""
        message = mask_url(str(exc))
        attempt = self.retries_done + 1
        if is_transient(exc) and attempt <= self.retries:
            delay = backoff_delay(attempt, self.retry_delay)
            self._end(
                FlowState.RETRYING,
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
        log.debug("flow %s: the traceback of its failure", self.job.flow, exc_info=exc)
        self._fail(message)

    def _fail(self, message: str, hint: str | None = None) -> None:
        error = FlowFailed(message, hint=hint)
        self._end(FlowState.FAILED, message=str(error))
        # One clear line in the worker's log; Celery itself logs FlowFailed without a traceback
        # (the task's `throws`), and the traceback is logged at debug level (`_failed`).
        log.error("flow %s failed: %s", self.job.flow, " | ".join(str(error).splitlines()))
        raise error from None

    def _update(self, **values: Any) -> None:
        self.runs.update(self.job.run_id, self.job.flow, **values)

    def _end(self, state: str, **values: Any) -> None:
        """Record how the attempt ended and give the lease back (one step in Redis); then send
        the flows this unblocked (if sending fails, the sweeper sends them)."""
        assert self._lease is not None
        self._lease.stop()
        ready = self._record_end(state, values)
        self._lease = None
        if ready is None:
            log.warning(
                "flow %s: lease lost before it ended; another worker runs it", self.job.flow
            )
            raise Ignore()
        try:
            dispatch(self.runs, ready)
        except Exception as exc:
            log.warning("could not send the flows after %s: %s", self.job.flow, mask_url(str(exc)))
