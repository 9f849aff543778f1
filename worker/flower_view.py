"""What Flower shows of hygge's tasks: a task list that reads at a glance.

Every flow runs as the one Celery task `hygge.run_flow`, so Flower's list would show the same
name on every line. `hygge flower` starts Flower with `worker/flowerconfig.py`, which
- names each task by its flow (`users`, a partition `lineitem#3/8`) with `format_task`,
- shows the columns an operator looks at (TASKS_COLUMNS): flow, state, progress or result,
  retries, worker, start and runtime (FLOWER_TASKS_COLUMNS or --tasks_columns override it).
A flow skipped because a dependency failed never runs, so no worker would tell Flower about
it: `announce_skipped` sends a `task-skipped` event for each (Flower shows state SKIPPED and
the reason as its result), after a flow task failed.
"""

from __future__ import annotations

import ast
import logging
from typing import Any

from celery.signals import task_postrun

from hygge.secrets import mask_url
from worker.contract import PREFIX, TASK_NAME
from worker.signals import receives

log = logging.getLogger("hygge.worker")

TASKS_COLUMNS = "name,state,result,retries,worker,started,runtime,uuid"
ANNOUNCED_TTL = 7 * 24 * 3600  # as long as a finished run's record is kept


def flow_of(args: Any) -> str | None:
    """The flow name in a task's args as Flower holds them: the text "('users',)"."""
    try:
        value = ast.literal_eval(args) if isinstance(args, str) else args
    except (ValueError, SyntaxError):
        return None
    if isinstance(value, tuple | list) and value and isinstance(value[0], str):
        return value[0]
    return None


def format_task(task: Any) -> Any:
    """Flower's hook (option format_task): a hygge task is listed under its flow's name."""
    if getattr(task, "name", None) in (TASK_NAME, None):
        flow = flow_of(getattr(task, "args", None))
        if flow:
            task.name = flow
    return task


def announce_skipped(run_id: str) -> int:
    """Tell Flower (a `task-skipped` event) about each flow of the run skipped since; each
    flow once (a Redis SET NX). Returns how many were announced."""
    from worker.app import app, runs

    records = runs()
    skipped = [f for f in records.status(run_id).flows if f.state == "skipped" and f.task_id]
    fresh = [
        f
        for f in skipped
        if records.r.set(f"{PREFIX}:run:{run_id}:flower:{f.flow}", 1, nx=True, ex=ANNOUNCED_TTL)
    ]
    if not fresh:
        return 0
    with app.events.default_dispatcher() as dispatcher:
        for f in fresh:
            dispatcher.send(
                "task-skipped",
                uuid=f.task_id,
                name=TASK_NAME,
                args=repr((f.flow,)),
                kwargs=repr({"run_id": run_id}),
                result=mask_url(f.message),
            )
    return len(fresh)


@receives(task_postrun)
def _after_a_flow(task: Any = None, kwargs: Any = None, state: str | None = None, **_: Any) -> None:
    """Skips follow only a failure: look for them then (never on the common path)."""
    if getattr(task, "name", None) != TASK_NAME or state != "FAILURE":
        return
    job = (kwargs or {}).get("job") or {}
    try:
        announce_skipped(job["run_id"])
    except Exception as exc:  # Flower's view is best effort; the run record is the truth
        log.warning("could not tell Flower about skipped flows: %s", mask_url(str(exc)))
