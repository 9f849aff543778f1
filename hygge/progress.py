"""Progress of a flow: what a callback receives per batch, and how it reads to a human."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class FlowState(StrEnum):
    """The one vocabulary of a flow's states: the Flow, the display, the job contract and the
    run state kept in Redis all use it. A StrEnum, so it travels as its plain value."""

    PENDING = "pending"  # waits for the flows it depends on
    QUEUED = "queued"  # distributed: its message is in the broker
    RUNNING = "running"  # moving data (a worker holds its lease)
    RETRYING = "retrying"  # a transient fault; a retry is scheduled
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"  # a flow it depends on did not succeed

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({FlowState.SUCCESS, FlowState.FAILED, FlowState.SKIPPED})


@dataclass(frozen=True)
class Progress:
    """A snapshot of one flow, sent after every batch and at every state change."""

    flow: str
    state: FlowState
    rows: int = 0
    batches: int = 0
    bytes: int = 0
    seconds: float = 0.0
    attempt: int = 1
    message: str = ""

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line for people: "1,200,000 rows · 12 batches · 85k rows/s"."""
        return (
            f"{self.rows:,} rows · {self.batches:,} batches · "
            f"{human_rate(self.rows_per_second)} rows/s"
        )


ProgressCallback = Callable[[Progress], None]


def human_rate(value: float) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.1f}{unit}" if value < 10 * size else f"{value / size:.0f}{unit}"
    return f"{value:.0f}"


def human_bytes(value: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"  # pragma: no cover
