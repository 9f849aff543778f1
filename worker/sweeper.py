"""Each worker's sweeper: a thread in the worker's main process that keeps runs moving.

Every HYGGE_SWEEP_SECONDS it
- says this worker is alive (a key with a short expiry that other sweepers check);
- re-sends the flows whose worker is gone: a running flow whose lease expired, or a flow whose
  message sits with a worker that stopped beating. Redis itself would only redeliver such a
  message after the visibility timeout (hours); this brings a killed worker's flow back on
  another worker within about `HYGGE_LEASE_SECONDS + HYGGE_SWEEP_SECONDS`;
- sends again the flows claimed for sending whose message never reached the broker (a killed
  `hygge enqueue`, or a worker killed between claiming and sending), after a grace of
  `HYGGE_LEASE_SECONDS`;
- advances `depends_on` for runs whose worker died between finishing a flow and sending the
  flows that waited for it;
- tells Flower of the flows skipped since (worker.flower_view), whoever skipped them.
All of it is idempotent and claimed atomically in Redis, so every worker can sweep.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery.signals import task_received, worker_ready, worker_shutdown

from hygge.secrets import mask_url
from worker.app import dispatch, runs, settings
from worker.contract import TASK_NAME, Keys
from worker.flower_view import announce_all
from worker.signals import receives

log = logging.getLogger("hygge.worker.sweeper")


class Sweeper(threading.Thread):
    def __init__(self, hostname: str) -> None:
        super().__init__(name="hygge-sweeper", daemon=True)
        self.hostname = hostname
        self.stopping = threading.Event()

    @property
    def alive_seconds(self) -> float:
        return max(3 * settings.sweep_seconds, 15.0)

    def run(self) -> None:
        while True:
            try:
                self.sweep()
            except Exception as exc:  # Redis away for a moment: try again next round
                log.warning("sweep failed: %s", mask_url(str(exc)))
            if self.stopping.wait(settings.sweep_seconds):
                return

    def sweep(self) -> None:
        records = runs()
        records.beat(self.hostname, self.alive_seconds)
        for run_id in records.active_runs():
            lost = records.reclaim(run_id)
            for job in lost:
                log.warning(
                    "flow %s of run %s lost its worker; re-sending it (generation %d)",
                    job.flow,
                    run_id,
                    job.generation,
                )
            unsent = records.unsent(run_id, settings.lease_seconds)
            for job in unsent:
                log.warning(
                    "flow %s of run %s was never sent (its sender stopped); sending it",
                    job.flow,
                    run_id,
                )
            dispatch(records, [*lost, *unsent, *records.advance(run_id)])
        try:  # the skips just decided (or a scheduled run skipped whole) reach Flower too
            announce_all()
        except Exception as exc:  # Flower's view is best effort; the run record is the truth
            log.warning("could not tell Flower about skipped flows: %s", mask_url(str(exc)))

    def stop(self) -> None:
        self.stopping.set()
        try:
            runs().r.delete(Keys.worker(self.hostname))
        except Exception as exc:
            log.warning("could not sign off: %s", mask_url(str(exc)))


_sweeper: Sweeper | None = None


@receives(worker_ready)
def _start_sweeper(sender: Any = None, **_: Any) -> None:
    global _sweeper
    hostname = getattr(sender, "hostname", None) or "worker"
    _sweeper = Sweeper(hostname)
    _sweeper.start()


@receives(worker_shutdown)
def _stop_sweeper(**_: Any) -> None:
    if _sweeper is not None:
        _sweeper.stop()


@receives(task_received)
def _note_received(request: Any = None, **_: Any) -> None:
    """Remember which worker holds a delayed (retry) message, so its death can be noticed.

    Only messages with an ETA wait in a worker: with prefetch 1 and late acks every other
    message a worker takes is one it starts at once (and then the lease covers it), so this
    costs nothing on the common path."""
    if request is None or request.name != TASK_NAME or not request.eta:
        return
    job = (request.kwargs or {}).get("job") or {}
    try:
        runs().received(
            job["run_id"], job["flow"], request.hostname, max(3 * settings.sweep_seconds, 15.0)
        )
    except Exception as exc:
        log.warning("could not note a received flow: %s", mask_url(str(exc)))
