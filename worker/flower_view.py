"""What Flower shows of hygge's tasks: a task list that reads at a glance.

Every flow runs as the one Celery task `hygge.run_flow`, so Flower's list would show the same
name on every line. `hygge flower` starts Flower with `worker/flowerconfig.py`, which
- names each task by its flow (`users`, a partition `lineitem#3/8`) with `format_task`,
- shows the columns an operator looks at (TASKS_COLUMNS): flow, state, progress or result,
  retries, worker, start and runtime (FLOWER_TASKS_COLUMNS or --tasks_columns override it).
A skipped flow (a dependency failed, or a scheduled run was skipped whole) never runs, so no
worker would tell Flower about it: whoever skips it notes it (`worker.runs.unannounced`) and
`announce_skipped` sends a `task-skipped` event for each (Flower shows state SKIPPED and the
reason as its result): the worker whose flow failed, at once; every sweeper round
(`announce_all`), for the skips a sweeper decided and any a worker could not announce; the
scheduler, for a run it skipped.
"""

from __future__ import annotations

import ast
import logging
import uuid
from typing import Any

from celery.signals import task_postrun

from hygge.secrets import mask_url
from worker.contract import TASK_NAME, Keys, text
from worker.signals import receives

log = logging.getLogger("hygge.worker")

TASKS_COLUMNS = "name,state,result,retries,worker,started,runtime,uuid"


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
    """Tell Flower (a `task-skipped` event) about each skipped flow of the run it has not
    been told of (`Keys.unannounced`, filled by whoever skipped it: a worker, a sweeper, the
    scheduler); each flow once (claimed by SREM). Returns how many were announced."""
    from worker.app import app, runs

    records = runs()
    keys = Keys(run_id)
    names = sorted(text(n) for n in records.r.smembers(keys.unannounced))
    pipe = records.r.pipeline(transaction=False)
    for name in names:
        pipe.srem(keys.unannounced, name)
    fresh = [n for n, claimed in zip(names, pipe.execute(), strict=True) if claimed]
    if not records.r.exists(keys.unannounced):
        records.r.srem(Keys.UNANNOUNCED_RUNS, run_id)
    if not fresh:
        return 0
    with app.events.default_dispatcher() as dispatcher:
        for name in fresh:
            status = records.flow_status(run_id, name)
            dispatcher.send(
                "task-skipped",
                # a flow skipped before it was planned to a task (a scheduled run skipped
                # whole) gets an id of its own, the same wherever it is computed
                uuid=status.task_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{run_id}/{name}")),
                name=TASK_NAME,
                args=repr((name,)),
                kwargs=repr({"run_id": run_id}),
                result=mask_url(status.message),
            )
    return len(fresh)


def announce_all() -> int:
    """Announce the skipped flows of every run that has some not yet announced (a sweeper
    calls it each round: skips it decided, and any a worker could not announce)."""
    from worker.app import runs

    waiting = sorted(text(r) for r in runs().r.smembers(Keys.UNANNOUNCED_RUNS))
    return sum(announce_skipped(run_id) for run_id in waiting)


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
