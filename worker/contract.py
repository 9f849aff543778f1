"""The job contract shared by `hygge enqueue`, the workers and `hygge status`.

One place says what travels and where it is kept, so the two sides cannot drift apart:
- the Celery task name and its message (`FlowJob`: intent, never data or secrets: the flow's
  raw config with `${VAR}` unresolved, a run id, a generation number);
- the Redis keys a run lives under (`Keys`), and a flow's status as stored there
  (`FlowStatus`), which is also what `hygge status` reads back;
- the settings every side takes from the environment (`Settings`).

It imports neither Celery nor redis: `hygge enqueue` and `hygge status` read it without them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ConfigDict

from hygge.progress import TERMINAL_STATES, FlowState
from hygge.report import FlowReport
from hygge.run.steps import Step, StepKind

TASK_NAME = "hygge.run_flow"
NOOP_TASK_NAME = "hygge.noop"  # a do-nothing task: the baseline of the dispatch benchmark
PREFIX = "hygge"


class FlowJob(BaseModel):
    """The message of one flow task. Everything here is safe to show in a queue or dashboard."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    flow: str
    raw: dict[str, Any]  # named homes/stores inlined, `${VAR}` left for the worker to resolve
    base_dir: str  # relative paths in the flow are relative to this folder (the flows.yml's)
    task_id: str
    depends_on: list[str] = []
    full_refresh: bool = False  # incremental flows: forget their state, reload everything
    generation: int = 1  # bumped when a flow is re-sent after its worker died; older copies drop
    # Partitioned flows: a partition task has `part` (0-based) of `parts`; the flow's commit
    # step has `parts` and no `part`, and runs once every partition has ended.
    part: int | None = None
    parts: int = 0
    of: str = ""  # a partition's flow (its config is the flow's); "" for whole flows
    # A discover step (flows.yml has definitions with entities): the worker discovers the
    # entities with its own environment and adds the flows to this run. It carries the
    # flows.yml text (`${VAR}` unresolved, as `raw` does) and the names selected.
    flows_yml: str = ""
    select: list[str] = []

    @property
    def step(self) -> Step:
        """The hygge.run step this message asks a worker to execute."""
        if self.flows_yml:
            kind = StepKind.DISCOVER
        elif not self.parts:
            kind = StepKind.MOVE
        else:
            kind = StepKind.COMMIT if self.part is None else StepKind.STAGE
        deps = tuple(self.depends_on)
        return Step(self.flow, self.config_name, kind, deps, self.part, self.parts)

    @property
    def config_name(self) -> str:
        """The flow in flows.yml this job runs (a partition runs a share of its flow)."""
        return self.of or self.flow

    @property
    def lease_key(self) -> str:
        """What the per-flow lease is taken on: this flow wherever it is enqueued from (the
        same flows.yml folder, flow name and store config). It never runs twice at once, in
        one run or across overlapping runs (two runs of an incremental flow would otherwise
        both load the same new rows). The store's own run lock, which `hygge run` takes too,
        is taken by the step that publishes (hygge.run)."""
        what = [self.base_dir, self.flow, self.raw.get("store")]
        if self.flows_yml:  # discovering writes nothing: runs of one file discover side by side
            what.append(self.run_id)
        where = json.dumps(what, sort_keys=True, default=str)
        # a partition's `flow` is its own name: partitions of a flow run side by side
        return hashlib.sha1(where.encode()).hexdigest()[:20]

    def describe(self) -> tuple[str, str]:
        """What Flower shows as the task's args and kwargs: names, never configuration."""
        return repr((self.flow,)), repr({"run_id": self.run_id})

    @property
    def parts_key(self) -> str:
        """The key every step of this partitioned flow run shares, the same on every worker:
        its parts stage as "<key>.p<index>" (hygge.run.parts.part_name), its plan and sealed
        parts are kept on the board under it (worker.board)."""
        seed = f"{self.run_id}:{self.config_name}"
        return hashlib.sha1(seed.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Keys:
    """Redis key names of one run. Every key starts with `hygge:` so a DB can be shared."""

    run_id: str

    ACTIVE_RUNS = f"{PREFIX}:runs:active"
    HISTORY = f"{PREFIX}:runs:history"  # sorted set: run id -> created (worker.history)
    # runs with skipped flows Flower has not been told of yet (worker.flower_view)
    UNANNOUNCED_RUNS = f"{PREFIX}:runs:unannounced"

    @property
    def run(self) -> str:
        return f"{PREFIX}:run:{self.run_id}"

    @property
    def jobs(self) -> str:
        return f"{PREFIX}:run:{self.run_id}:jobs"

    def flow(self, name: str) -> str:
        return f"{PREFIX}:run:{self.run_id}:flow:{name}"

    def plan(self, parts_key: str) -> str:
        """A partitioned flow's plan (its parts' descriptors), written once by the first
        partition that starts, read by the others: every partition splits the same way."""
        return f"{PREFIX}:run:{self.run_id}:plan:{parts_key}"

    def sealed(self, parts_key: str) -> str:
        """Hash of a partitioned flow's sealed parts: index -> description, rows, checkpoint,
        the worker that staged it."""
        return f"{PREFIX}:run:{self.run_id}:sealed:{parts_key}"

    @property
    def unannounced(self) -> str:
        """Set of this run's skipped flows Flower has not been told of (whoever skipped them,
        a worker, a sweeper or the scheduler, adds them; worker.flower_view announces)."""
        return f"{PREFIX}:run:{self.run_id}:unannounced"

    @property
    def sender(self) -> str:
        """Lives (a short expiry, refreshed) while `hygge enqueue` sends the run's messages."""
        return f"{PREFIX}:run:{self.run_id}:sending"

    @staticmethod
    def lock(destination: str) -> str:
        """The per-flow lease (FlowJob.lease_key): held and extended by the
        one worker writing there (worker.lease); its value is "<run id>:<generation>:<random>"."""
        return f"{PREFIX}:lock:{destination}"

    @staticmethod
    def worker(hostname: str) -> str:
        """A worker's liveness key, refreshed by its sweeper thread."""
        return f"{PREFIX}:worker:{hostname}"


@dataclass(frozen=True)
class FlowStatus(FlowReport):
    """One flow of a run as kept in its Redis hash: the FlowReport its worker last wrote (the
    very record `hygge run` draws, so both commands share one display), plus where it runs and
    how often it was tried. `attempt` is `retries + 1`."""

    task_id: str = ""
    worker: str = ""
    retries: int = 0
    starts: int = 0
    ends: int = 0
    generation: int = 1
    updated: float = 0.0
    started: float = 0.0  # epoch seconds the current attempt began
    finished: float = 0.0  # epoch seconds the flow ended
    depends_on: tuple[str, ...] = ()

    @classmethod
    def from_hash(cls, flow: str, data: Mapping[bytes | str, bytes | str]) -> FlowStatus:
        """Read a flow's hash (every field optional; fields it does not know are skipped)."""
        fields = {text(k): text(v) for k, v in data.items()}
        numbers: dict[str, Any] = {}
        for name in _INTS:
            numbers[name] = int(float(fields.get(name) or 0))
        for name in _FLOATS:
            numbers[name] = float(fields.get(name) or 0)
        numbers["generation"] = numbers["generation"] or 1
        total = int(float(fields.get("total_rows") or -1))  # -1 on the wire: unknown
        return cls(
            flow,
            FlowState(fields.get("state") or FlowState.PENDING),
            message=fields.get("message", ""),
            attempt=numbers["retries"] + 1,
            task_id=fields.get("task_id", ""),
            worker=fields.get("worker", ""),
            depends_on=tuple(d for d in fields.get("depends_on", "").split(",") if d),
            total_rows=total if total >= 0 else None,
            **numbers,
        )

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_STATES

    def as_report(self) -> FlowReport:
        """What the live display draws: a flow still in the broker shows as pending."""
        return replace(self, state=FlowState.PENDING) if self.state == FlowState.QUEUED else self


_INTS = ("rows", "batches", "memory_bytes", "retries", "starts", "ends", "generation")
_FLOATS = ("seconds", "updated", "started", "finished")


def text(value: bytes | str | None) -> str:
    """A value as redis-py returns it (bytes, or str on a decoding client), as text."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def progress_fields(report: FlowReport) -> dict[str, str | int | float]:
    """A FlowReport as the fields of a flow's Redis hash (`summary` for people reading it)."""
    return {
        "rows": report.rows,
        "batches": report.batches,
        "memory_bytes": report.memory_bytes,
        "seconds": round(report.seconds, 3),
        "summary": report.summary(),
        "total_rows": -1 if report.total_rows is None else report.total_rows,
    }


@dataclass(frozen=True)
class Settings:
    """Everything the enqueuer, the workers and Flower read from the environment."""

    broker_url: str
    result_backend: str
    flower_url: str
    visibility_timeout: int  # seconds; Redis redelivers an unacknowledged message after this
    lease_seconds: float  # a flow whose lease is not renewed for this long is presumed dead
    sweep_seconds: float  # how often each worker looks for dead flows
    max_crashes: int  # a flow whose worker died this many times fails instead of looping

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        broker = env.get("HYGGE_BROKER_URL") or "redis://localhost:6379/0"
        return cls(
            broker_url=broker,
            result_backend=env.get("HYGGE_RESULT_BACKEND") or broker,
            flower_url=env.get("HYGGE_FLOWER_URL") or "http://localhost:5555",
            visibility_timeout=int(env.get("HYGGE_VISIBILITY_TIMEOUT") or 43200),
            lease_seconds=float(env.get("HYGGE_LEASE_SECONDS") or 20),
            sweep_seconds=float(env.get("HYGGE_SWEEP_SECONDS") or 5),
            max_crashes=int(env.get("HYGGE_MAX_CRASHES") or 3),
        )
