"""`hygge scheduler flows.yml`: sends each scheduled flow to the workers when it is due.

Why a small loop of our own rather than Celery beat (with celery-redbeat for a schedule in
Redis): what a data load needs from a scheduler is three promises, and beat keeps none of them
by itself: a slot is sent once even if two schedulers act at once (redbeat records a send
after making it, so a crash in between sends it again; its lock, held by a killed beat, also
blocks a restarted one for the lock's whole timeout); a flow whose previous run is still going
is not sent again; a scheduler that was down sends a missed flow once, not once per slot.
Here each one is a step in Redis, in this module:

- **One active scheduler.** Schedulers sharing a name (default: the flows file's name, e.g.
  `flows`) elect one: a lease `hygge:scheduler:<name>:leader` (SET NX PX with a token,
  renewed every tick, released on a clean stop). The others stand by and take over when the
  lease lapses (HYGGE_SCHEDULER_LEASE_SECONDS, default 15).
- **Each slot once.** A flow's next due time is kept in Redis (`...:flow:<flow>`); whoever
  sends a slot first moves it forward with a compare-and-set (SCHEDULE_CLAIM), so even two
  schedulers that both believe they lead cannot send one slot twice. The claim also records
  the run id it will use; a scheduler killed between the claim and the send leaves it
  `pending`, and the next leader sends that run (the same id: a run already created is not
  created again; the workers' sweepers send whatever of it was not sent).
- **Missed slots.** The next slot is always computed from now, so after downtime the flow is
  sent once and its next slot is in the future again.
- **Overlap.** The run a flow was last sent in is kept; if it has not ended, the slot is
  recorded as a skipped run (`hygge runs` shows it and why) and nothing is sent.

A flow's schedule sends it together with the flows that depend on it (they run after it, in
the same run); a flow that depends on another cannot have a schedule (hygge.config_checks).
flows.yml is read again when it changes (a broken edit is logged; the old schedule stays); a
file without any schedule is waited on, not an error (the compose stack starts a scheduler
on a file that may have none yet).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis

from hygge import config as config_module
from hygge.errors import BrokerUnreachable, HyggeError
from hygge.schedule import Schedule, when
from hygge.secrets import mask_url
from worker import history
from worker.contract import PREFIX, Keys, Settings, text
from worker.runs import Runs, connect

log = logging.getLogger("hygge.scheduler")

# Claim a due slot: only if the flow's next slot is still the one we saw, move it on and note
# the run id we are about to send. KEYS: the flow's schedule hash. ARGV: seen next, new next,
# run id, now. Returns 1 if claimed.
SCHEDULE_CLAIM = """
if redis.call('HGET', KEYS[1], 'next') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'next', ARGV[2], 'pending', ARGV[3], 'pending_at', ARGV[4],
           'slot', ARGV[1])
return 1
"""
# Renew the leader lease if it is still ours. KEYS: lease. ARGV: token, milliseconds.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# Give the lease back if it is still ours. KEYS: lease. ARGV: token.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class ScheduledFlow:
    flow: str  # a flow, or a definition with entities (all its entities go in one run)
    schedule: Schedule
    # what the run sends: the flow (or definition), then its dependants; a definition stands
    # for all of its entities (found by the run's discover step)
    select: tuple[str, ...]


def scheduled_flows(path: str | os.PathLike[str]) -> dict[str, ScheduledFlow]:
    """The scheduled flows of a flows.yml, read as `hygge enqueue` reads it: variables left
    unresolved and definitions with entities undiscovered, so the scheduler needs only Redis
    (never the databases or clouds the definitions name). A definition is scheduled as one
    unit: each run starts with a discover step on a worker, so a new table joins at the next
    slot."""
    config = config_module.load(path, resolve=False, discover=False)
    options = {**{n: s.options for n, s in config.flows.items()}, **config.deferred}

    def unit(name: str) -> str:  # `crm.orders` of an undiscovered definition `crm`: `crm`
        head = name.split(".", 1)[0]
        return name if name in options or head not in config.deferred else head

    dependants: dict[str, list[str]] = {name: [] for name in options}
    for name, flow_options in options.items():
        for dep in flow_options.depends_on:
            dependants.setdefault(unit(dep), []).append(name)
    out: dict[str, ScheduledFlow] = {}
    for name, flow_options in options.items():
        schedule = flow_options.scheduled
        if schedule is None:
            continue
        chain, todo = [name], list(dependants[name])
        while todo:
            nxt = todo.pop(0)
            if nxt not in chain:
                chain.append(nxt)
                todo += dependants.get(nxt, [])
        out[name] = ScheduledFlow(name, schedule, tuple(chain))
    return out


class Leadership:
    """The lease that lets one scheduler of a name act."""

    def __init__(self, client: redis.Redis, name: str, seconds: float) -> None:
        self.r = client
        self.key = f"{PREFIX}:scheduler:{name}:leader"
        self.ms = max(1000, int(seconds * 1000))
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.held = False
        self._renew = client.register_script(RENEW)
        self._release = client.register_script(RELEASE)

    def hold(self) -> bool:
        """Renew the lease if held, else try to take it; True while this scheduler leads."""
        if self.held:
            self.held = bool(self._renew(keys=[self.key], args=[self.token, self.ms]))
            if not self.held:
                log.warning("scheduler lease lost; standing by")
            return self.held
        if self.r.set(self.key, self.token, nx=True, px=self.ms):
            self.held = True
            log.info("this scheduler is active (%s)", self.token)
        return self.held

    def holder(self) -> str:
        return text(self.r.get(self.key))

    def release(self) -> None:
        if self.held:
            self._release(keys=[self.key], args=[self.token])
            self.held = False


class Scheduler:
    """The loop behind `hygge scheduler`: every `tick` seconds, lead or stand by, and send
    what is due."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        name: str | None = None,
        settings: Settings | None = None,
        tick: float = 1.0,
        lease_seconds: float | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = name or self.path.stem
        self.settings = settings or Settings.from_env()
        self.tick_seconds = tick
        env_lease = os.environ.get("HYGGE_SCHEDULER_LEASE_SECONDS")
        self.lease_seconds = lease_seconds or float(env_lease or 15)
        self.flows = scheduled_flows(self.path)
        if not self.flows:  # a stack's scheduler idles until its flows.yml gets a schedule
            log.warning(
                '%s: no flow has a schedule (add `schedule: "*/15 * * * *"` or `every: 10m` '
                "under a flow's `options:`); waiting for the file to change",
                self.path,
            )
        self._mtime = self.path.stat().st_mtime
        self.records = Runs(connect(self.settings.result_backend, "result backend"))
        self.r = self.records.r
        self.leader = Leadership(self.r, self.name, self.lease_seconds)
        self._claim = self.r.register_script(SCHEDULE_CLAIM)
        self.stopping = threading.Event()
        self._standby_said = ""

    def key(self, flow: str) -> str:
        return f"{PREFIX}:scheduler:{self.name}:flow:{flow}"

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        """Until `stop()` (SIGTERM/SIGINT in `hygge scheduler`); Redis being away is waited
        out. The lease is given back on the way out, so a restart takes over at once."""
        for flow in self.flows.values():
            log.info("flow %s: %s", flow.flow, flow.schedule.describe())
        try:
            while not self.stopping.is_set():
                try:
                    self.step(time.time())
                except (redis.RedisError, OSError, BrokerUnreachable) as exc:
                    log.warning("Redis is not answering (%s); trying again", mask_url(str(exc)))
                    self.leader.held = False
                self.stopping.wait(self.tick_seconds)
        finally:
            try:
                self.leader.release()
            except (redis.RedisError, OSError) as exc:
                log.warning("could not give back the scheduler lease: %s", mask_url(str(exc)))

    def stop(self) -> None:
        self.stopping.set()

    def step(self, now: float) -> None:
        """One tick: lead or stand by; if leading, send (or skip) every flow that is due."""
        if not self.leader.hold():
            holder = self.leader.holder()
            if holder != self._standby_said:
                log.info("standing by: scheduler %s is active", holder or "(none)")
                self._standby_said = holder
            return
        self._standby_said = ""
        self._reload()
        for flow in self.flows.values():
            if self.stopping.is_set():
                return
            self._consider(flow, now)

    def _reload(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
            if mtime == self._mtime:
                return
            self._mtime = mtime
            self.flows = scheduled_flows(self.path)
            log.info("re-read %s: %d scheduled flow(s)", self.path, len(self.flows))
        except (HyggeError, OSError) as exc:
            log.error("%s changed but cannot be used; keeping the schedule: %s", self.path, exc)

    def _consider(self, flow: ScheduledFlow, now: float) -> None:
        key = self.key(flow.flow)
        expression, nxt, pending, pending_at = (
            text(v) for v in self.r.hmget(key, ["expression", "next", "pending", "pending_at"])
        )
        if expression != flow.schedule.expression or not nxt:
            first = flow.schedule.next_after(now)
            self.r.hset(key, mapping={"expression": flow.schedule.expression, "next": repr(first)})
            log.info("flow %s: next run %s", flow.flow, when(first))
            return
        if pending and now - float(pending_at or 0) > self.lease_seconds:
            self._recover(flow, pending)
        if now < float(nxt):
            return
        run_id = uuid.uuid4().hex[:12]
        following = flow.schedule.next_after(now)
        if self._claim(keys=[key], args=[nxt, repr(following), run_id, now]):
            self._send(flow, run_id, float(nxt))

    def _recover(self, flow: ScheduledFlow, run_id: str) -> None:
        """A claim left by a scheduler that stopped before it finished sending."""
        made = self.r.hmget(Keys(run_id).run, ["created", "skipped"])
        if made[1]:  # a skipped slot: the run still going is the one to wait for
            self.r.hdel(self.key(flow.flow), "pending", "pending_at")
            return
        if made[0]:
            self._sent(flow, run_id)
            return
        log.warning("flow %s: run %s was claimed but never sent; sending it", flow.flow, run_id)
        self._send(flow, run_id, float(self.r.hget(self.key(flow.flow), "slot") or 0))

    def _send(self, flow: ScheduledFlow, run_id: str, slot: float) -> None:
        previous = text(self.r.hget(self.key(flow.flow), "run"))
        if previous and self._still_going(previous):
            reason = (
                f"skipped: the previous run {previous} of this flow was still going at its "
                f"scheduled time {when(slot)}"
            )
            history.record_skipped(
                self.r,
                run_id,
                str(self.path),
                list(flow.select),
                reason,
                {"trigger": "schedule", "slot": repr(slot), "skipped": "1"},
            )
            log.warning("flow %s: %s (run %s)", flow.flow, reason, run_id)
            self.r.hdel(self.key(flow.flow), "pending", "pending_at")
            history.trim(self.r)  # skipped runs count against the retention too
            return
        from worker import client

        try:
            client.enqueue(
                self.path,
                list(flow.select),
                settings=self.settings,
                run_id=run_id,
                meta={"trigger": "schedule", "slot": repr(slot)},
            )
        except BrokerUnreachable:
            raise  # the claim stays pending: sent once Redis is back
        except HyggeError as exc:  # flows.yml broken since, a flow renamed...
            log.error("flow %s: not sent at %s: %s", flow.flow, when(slot), exc)
            self.r.hdel(self.key(flow.flow), "pending", "pending_at")
            return
        log.info("flow %s: sent as run %s (due %s)", flow.flow, run_id, when(slot))
        self._sent(flow, run_id)

    def _sent(self, flow: ScheduledFlow, run_id: str) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self.key(flow.flow), mapping={"run": run_id, "sent_at": time.time()})
        pipe.hdel(self.key(flow.flow), "pending", "pending_at")
        pipe.execute()

    def _still_going(self, run_id: str) -> bool:
        """A run not yet ended (any flow not in a final state). A run Redis no longer has
        (expired, or lost) is not going."""
        try:
            return not self.records.status(run_id).done
        except HyggeError:
            return False


def run_scheduler(path: str, name: str | None = None, tick: float = 1.0) -> None:
    """`hygge scheduler`: the loop in this process (PID 1 in a container), stopped cleanly by
    SIGTERM or Ctrl-C."""
    import signal

    from hygge import registry

    registry.load_plugins()
    scheduler = Scheduler(path, name=name, tick=tick)

    def stop(*_: object) -> None:
        scheduler.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    scheduler.run()
