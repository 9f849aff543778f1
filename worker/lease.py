"""The per-flow lease: one worker at a time runs a flow, and a dead one is noticed quickly.

`SET key token NX PX ttl` takes it; a heartbeat thread extends it while the flow runs (only
if it still holds our token); compare-and-delete releases it. If the worker dies, the key
simply expires after `ttl`, and a sweeper re-sends the flow (see hygge.runstate.reclaim) long
before Redis' visibility timeout would redeliver the message.
"""

from __future__ import annotations

import logging
import threading
import uuid
from types import TracebackType

import redis

log = logging.getLogger("hygge.worker.lease")

_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LeaseLost(Exception):
    """Our lease expired and may now belong to another worker: stop, commit nothing."""


class Lease:
    """A Redis lock with a token, extended by a heartbeat thread while held."""

    def __init__(self, client: redis.Redis, key: str, ttl_seconds: float, owner: str) -> None:
        self.r = client
        self.key = key
        self.ttl_ms = max(1000, int(ttl_seconds * 1000))
        self.token = f"{owner}:{uuid.uuid4().hex}"  # says who holds it (a run id)
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        return bool(self.r.set(self.key, self.token, nx=True, px=self.ttl_ms))

    def extend(self) -> bool:
        return bool(self.r.eval(_EXTEND, 1, self.key, self.token, self.ttl_ms))

    def stop(self) -> None:
        """Stop extending the lease (it stays held until released or expired)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def release(self) -> None:
        """Give the lease back (only if it is still ours); stops the heartbeat."""
        self.stop()
        try:
            self.r.eval(_RELEASE, 1, self.key, self.token)
        except redis.RedisError as exc:  # it expires by itself
            log.warning("could not release lease %s: %s", self.key, exc)

    def check(self) -> None:
        """Raise LeaseLost if the heartbeat found the lease taken or expired."""
        if self.lost:
            raise LeaseLost(f"lease {self.key} expired; another worker may run this flow")

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
        interval = self.ttl_ms / 1000 / 6
        while not self._stop.wait(interval):
            try:
                if not self.extend():
                    self.lost = True
                    log.error("lease %s was lost; the flow will stop", self.key)
                    return
            except redis.RedisError as exc:
                log.warning("could not extend lease %s: %s", self.key, exc)
