"""What `hygge enqueue` and `--wait` tell the user about the world around a run: whether a
Flower answers at HYGGE_FLOWER_URL (its address is printed only then), and, while waiting,
that no worker has taken the run (with how to start one) instead of waiting in silence."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

import redis

from hygge.progress import FlowState
from worker.contract import PREFIX

if TYPE_CHECKING:
    from worker.runs import RunStatus

NO_WORKER_SECONDS = 20.0  # `--wait`: how long a run may sit untouched before we say so


def flower_answers(url: str, timeout: float = 1.0) -> bool:
    """Something answers HTTP at `url` (a 401 counts: Flower with auth answers that)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def live_workers(r: redis.Redis) -> int:
    """Workers whose liveness key (refreshed by each worker's sweeper) has not expired."""
    return sum(1 for _ in r.scan_iter(match=f"{PREFIX}:worker:*", count=1000))


class IdleWatch:
    """Says once, after `seconds`, that no flow of a run has been taken by a worker."""

    def __init__(self, r: redis.Redis, seconds: float = NO_WORKER_SECONDS) -> None:
        self.r = r
        self.seconds = seconds
        self.since = time.monotonic()
        self.said = False

    def check(self, run: RunStatus) -> str | None:
        if self.said or time.monotonic() - self.since < self.seconds:
            return None
        untouched = (FlowState.PENDING, FlowState.QUEUED)
        if any(f.state not in untouched or f.worker for f in run.flows):
            self.said = True  # a worker took something: nothing to say, ever
            return None
        self.said = True
        try:
            alive = live_workers(self.r)
        except redis.RedisError:
            alive = -1
        seen = {
            0: "no worker is running on this broker",
            -1: "could not count the workers",
        }.get(alive, f"{alive} worker(s) are alive but busy or on another queue")
        return (
            f"no worker has taken run {run.run_id} after {self.seconds:.0f}s ({seen}); start "
            "one with `hygge worker` (same HYGGE_BROKER_URL); the run waits for it, and "
            f"`hygge status {run.run_id} --watch` follows it later"
        )
