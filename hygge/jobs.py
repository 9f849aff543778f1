"""The job contract shared by `hygge enqueue`, the workers and `hygge status`.

One place says what travels and where it is kept, so the two sides cannot drift apart:
- the Celery task name and its message (`FlowJob`: intent, never data or secrets: the flow's
  raw config with `${VAR}` unresolved, a run id, a generation number);
- the Redis keys a run lives under (`Keys`), and a flow's status as stored there
  (`FlowStatus`), which is also what `hygge status` reads back;
- the settings every side takes from the environment (`Settings`).

This module imports neither Celery nor redis, so `hygge` stays light.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from pydantic import BaseModel, ConfigDict

from hygge.progress import TERMINAL_STATES, FlowState
from hygge.report import FlowReport

TASK_NAME = "hygge.run_flow"
NOOP_TASK_NAME = "hygge.noop"  # a do-nothing task: the baseline of the dispatch benchmark
PREFIX = "hygge"

# A flow's states: the one enum of hygge.progress (names kept here for the worker's modules).
PENDING = FlowState.PENDING
QUEUED = FlowState.QUEUED
RETRYING = FlowState.RETRYING
SUCCESS = FlowState.SUCCESS
FAILED = FlowState.FAILED
SKIPPED = FlowState.SKIPPED
TERMINAL = TERMINAL_STATES


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

    @property
    def destination(self) -> str:
        """This flow wherever it is enqueued from: the same flows.yml folder, flow name and
        store config. It never runs twice at once, in one run or across overlapping runs (two
        runs of an incremental flow would otherwise both load the same new rows)."""
        where = json.dumps(
            [self.base_dir, self.flow, self.raw.get("store")], sort_keys=True, default=str
        )
        return hashlib.sha1(where.encode()).hexdigest()[:20]

    def describe(self) -> tuple[str, str]:
        """What Flower shows as the task's args and kwargs: names, never configuration."""
        return repr((self.flow,)), repr({"run_id": self.run_id})


@dataclass(frozen=True)
class Keys:
    """Redis key names of one run. Every key starts with `hygge:` so a DB can be shared."""

    run_id: str

    ACTIVE_RUNS = f"{PREFIX}:runs:active"

    @property
    def run(self) -> str:
        return f"{PREFIX}:run:{self.run_id}"

    @property
    def jobs(self) -> str:
        return f"{PREFIX}:run:{self.run_id}:jobs"

    def flow(self, name: str) -> str:
        return f"{PREFIX}:run:{self.run_id}:flow:{name}"

    @staticmethod
    def lock(destination: str) -> str:
        """The per-flow lease, by destination (FlowJob.destination): held and extended by the
        one worker writing there; its value is "<run id>:<token>"."""
        return f"{PREFIX}:lock:{destination}"

    @staticmethod
    def worker(hostname: str) -> str:
        """A worker's liveness key, refreshed by its sweeper thread."""
        return f"{PREFIX}:worker:{hostname}"


@dataclass
class FlowStatus:
    """One flow of a run as stored in its Redis hash (all fields optional on the wire)."""

    flow: str
    state: str = PENDING
    task_id: str = ""
    worker: str = ""
    rows: int = 0
    batches: int = 0
    memory_bytes: int = 0
    seconds: float = 0.0
    retries: int = 0
    starts: int = 0
    ends: int = 0
    generation: int = 1
    message: str = ""
    summary: str = ""
    total_rows: int = -1  # the home's row estimate; -1: unknown
    updated: float = 0.0
    started: float = 0.0  # epoch seconds the current attempt began
    finished: float = 0.0  # epoch seconds the flow ended
    depends_on: list[str] = field(default_factory=list)

    @classmethod
    def from_hash(cls, flow: str, data: Mapping[bytes | str, bytes | str]) -> FlowStatus:
        values: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(cls)}
        for raw_key, raw_value in data.items():
            key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
            value = raw_value.decode() if isinstance(raw_value, bytes) else raw_value
            if key not in types or key == "flow":
                continue
            if key == "depends_on":
                values[key] = [d for d in value.split(",") if d]
            elif types[key] == "int":
                values[key] = int(float(value or 0))
            elif types[key] == "float":
                values[key] = float(value or 0)
            else:
                values[key] = value
        return cls(flow, **values)

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def as_progress(self) -> FlowReport:
        """The same snapshot `hygge run` draws, so both commands share one display."""
        state = {QUEUED: PENDING}.get(self.state, self.state)
        return FlowReport(
            self.flow,
            FlowState(state),
            rows=self.rows,
            batches=self.batches,
            memory_bytes=self.memory_bytes,
            seconds=self.seconds,
            attempt=self.retries + 1,
            message=self.message,
            total_rows=self.total_rows if self.total_rows >= 0 else None,
        )


def progress_fields(progress: FlowReport) -> dict[str, str | int | float]:
    """A FlowReport as the fields of a flow's Redis hash."""
    return {
        "rows": progress.rows,
        "batches": progress.batches,
        "memory_bytes": progress.memory_bytes,
        "seconds": round(progress.seconds, 3),
        "summary": progress.summary(),
        "total_rows": -1 if progress.total_rows is None else progress.total_rows,
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
