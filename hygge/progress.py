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


def progress_text(rows: int, total: int | None, seconds: float, done: bool = False) -> str:
    """How far a flow is, for people: "45% · 2.7M of 6.0M rows · 390k rows/s · 8 s left".

    `total` is the home's estimate (None: unknown, and then it says so rather than drawing a
    wrong bar); past an estimate that proved low it says that instead of a percent over 100.
    """
    rate = rows / seconds if seconds > 0 else 0.0
    speed = f"{human_rate(rate)} rows/s"
    if done or total is None:
        tail = "" if done else " · total unknown"
        return f"{human_rate(rows)} rows · {speed}{tail}"
    if rows > total:
        return f"{human_rate(rows)} rows, more than the {human_rate(total)} estimated · {speed}"
    percent = 100 * rows / total if total else 100.0
    left = f" · {human_seconds((total - rows) / rate)} left" if rate > 0 and rows else ""
    return f"{percent:.0f}% · {human_rate(rows)} of {human_rate(total)} rows · {speed}{left}"


def human_seconds(value: float) -> str:
    """8 s, 3 min, 1 h 5 min."""
    if value < 60:
        return f"{value:.0f} s"
    if value < 3600:
        return f"{value / 60:.0f} min"
    return f"{value // 3600:.0f} h {value % 3600 / 60:.0f} min"
