"""The states a flow goes through, and how progress figures read to a human."""

from __future__ import annotations

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
