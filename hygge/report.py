"""FlowReport: the one record of what a flow is doing or did.

The Flow sends one to its progress callback after every batch and at every state change, and
returns the last one from `start()`; the display draws them, the Coordinator collects them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from hygge.progress import FlowState, human_rate, progress_text


@dataclass(frozen=True)
class FlowReport:
    """A snapshot of one flow: how far it got, how long it took, how it ended."""

    flow: str
    state: FlowState
    rows: int = 0
    batches: int = 0
    memory_bytes: int = 0  # estimated in-memory size of the batches moved (not on-disk size)
    seconds: float = 0.0
    attempt: int = 1
    message: str = ""  # what a person should know now: a retry's reason, why it was skipped
    error: str | None = None  # why it failed or was skipped (None while fine)
    exception: BaseException | None = field(default=None, repr=False, compare=False)
    total_rows: int | None = None  # an estimate of the rows to move, for a progress bar
    parts_done: int = 0  # partitioned flows: partitions staged so far, of `parts_total`
    parts_total: int = 0
    checks: str = ""  # what the flow's checks decided (hygge/gate.py), once decided

    @property
    def ok(self) -> bool:
        return self.state == FlowState.SUCCESS

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line for people (Flower's progress text): while running, how far it is, as
        "45% · 2.7M of 6.0M rows · 390k rows/s · 8 s left" (or that the total is unknown);
        once ended, "6,001,215 rows · 61 batches · 390k rows/s"."""
        if not FlowState(self.state).terminal:
            return progress_text(self.rows, self.total_rows, self.seconds)
        text = (
            f"{self.rows:,} rows · {self.batches:,} batches · "
            f"{human_rate(self.rows_per_second)} rows/s"
        )
        return f"{text} · {self.checks}" if self.checks else text


ProgressCallback = Callable[[FlowReport], None]
