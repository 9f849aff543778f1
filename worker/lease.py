"""The per-flow lease: one worker at a time writes a flow's destination, and a dead one is
noticed quickly.

Both halves live here: taking the lease when an attempt begins (worker.runs.begin calls
`take`) and keeping it while the flow runs (a heartbeat thread renews it; the fence renews it
once more right before the store commits). If the worker dies, the key simply expires after
`HYGGE_LEASE_SECONDS`, and a sweeper re-sends the flow (worker.runs.reclaim) long before
Redis' visibility timeout would redeliver the message.

It is redis-py's own `redis.lock.Lock` (`SET NX PX` to take, `reacquire` to renew,
compare-and-delete to release), with `thread_local=False` because the heartbeat thread renews
what the task thread took. Two things stay ours, and why:
- the token. We pass `"<run id>:<generation>:<random>"` to `Lock.acquire(token=...)` instead of
  its anonymous one, so an attempt that finds the lease taken can tell whether a copy of its
  own flow holds it (drop this copy), an older copy that is about to let go, or another run
  writing the same destination (wait and try again);
- recording an attempt's end only while the lease is still ours. That check and the write of
  the outcome must be one step (worker.scripts.END): `Lock.owned()` and then writing would
  leave a moment in which the lease can expire and be taken, and a late worker would record an
  outcome over the new attempt's.
"""

from __future__ import annotations

import logging
import threading
import uuid
from types import TracebackType

import redis
from redis.exceptions import LockError
from redis.lock import Lock

from hygge.errors import LeaseLost
from worker.contract import FlowJob, Keys, text

log = logging.getLogger("hygge.worker.lease")


class Lease:
    """The lease on one flow's destination for one attempt, renewed by a heartbeat while held."""

    def __init__(self, client: redis.Redis, job: FlowJob, ttl_seconds: float) -> None:
        self.r = client
        self.key = Keys.lock(job.lease_key)
        self.token = f"{job.run_id}:{job.generation}:{uuid.uuid4().hex}"
        self.ttl_seconds = max(1.0, ttl_seconds)
        self.lost = False
        self._lock = Lock(client, self.key, timeout=self.ttl_seconds, thread_local=False)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def take(self) -> bool:
        """Take the lease if it is free; never waits."""
        return bool(self._lock.acquire(blocking=False, token=self.token))

    def holder(self) -> str:
        """Who holds the lease now ("" if nobody): "<run id>:<generation>:<random>"."""
        return text(self.r.get(self.key))

    def renew(self) -> bool:
        """Reset the lease's expiry; False (and `lost`) if it is no longer ours."""
        try:
            self._lock.reacquire()
        except LockError:  # expired, or taken by another worker meanwhile
            self.lost = True
            return False
        return True

    def check(self) -> None:
        """Raise LeaseLost if the heartbeat found the lease expired or taken."""
        if self.lost:
            raise LeaseLost(f"lease {self.key} was lost; another worker may run this flow")

    async def fence(self) -> None:
        """The Flow's `before_commit` hook: renew once more right before the store commits. If
        the lease was lost (this worker was cut off longer than the lease, and the flow was
        re-sent), raise, so the store aborts and commits nothing."""
        if not self.lost:
            self.renew()  # one quick round trip; nothing else runs at this moment
        self.check()

    def stop(self) -> None:
        """Stop renewing (the lease stays held until released or expired)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def release(self) -> None:
        """Give the lease back if it is still ours; stops the heartbeat."""
        self.stop()
        try:
            self._lock.release()
        except LockError:
            pass  # expired, or someone else's now: nothing of ours to give back
        except redis.RedisError as exc:  # it expires by itself
            log.warning("could not release lease %s: %s", self.key, exc)

    # -- heartbeat ------------------------------------------------------------------------
    def __enter__(self) -> Lease:
        self._thread = threading.Thread(target=self._beat, name="hygge-lease", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _beat(self) -> None:
        interval = self.ttl_seconds / 6
        while not self._stop.wait(interval):
            try:
                if not self.renew():
                    log.error("lease %s was lost; the flow will stop", self.key)
                    return
            except redis.RedisError as exc:  # Redis away for a moment: try again next beat
                log.warning("could not renew lease %s: %s", self.key, exc)
