"""What `hygge run` shows: a live table of flows while it runs, a summary when it ends."""

from __future__ import annotations

import time
from collections.abc import Iterable

from rich.console import Console
from rich.live import Live
from rich.table import Table

from hygge.progress import FlowState, human_bytes, human_rate
from hygge.report import FlowReport

STYLES = {
    FlowState.PENDING: "dim",
    FlowState.QUEUED: "dim",
    FlowState.RUNNING: "cyan",
    FlowState.RETRYING: "yellow",
    FlowState.SUCCESS: "green",
    FlowState.FAILED: "red",
    FlowState.SKIPPED: "yellow",
}
# States worth a line of their own when the output is not a terminal (a log, CI).
_ANNOUNCED = (FlowState.RUNNING, FlowState.RETRYING, FlowState.FAILED, FlowState.SKIPPED)


class LiveProgress:
    """Collects progress events; redraws a table on a terminal, prints state changes elsewhere."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.latest: dict[str, FlowReport] = {}
        self._live: Live | None = None
        self._last_draw = 0.0

    def __enter__(self) -> LiveProgress:
        if self.console.is_terminal:
            self._live = Live(self._table(), console=self.console, auto_refresh=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._table(), refresh=True)
            self._live.__exit__(None, None, None)

    def __call__(self, progress: FlowReport) -> None:
        previous = self.latest.get(progress.flow)
        self.latest[progress.flow] = progress
        if self._live is not None:
            now = time.monotonic()
            if progress.state != FlowState.RUNNING or now - self._last_draw > 0.2:
                self._last_draw = now
                self._live.update(self._table(), refresh=True)
        elif self._worth_a_line(previous, progress):
            note = f": {progress.message}" if progress.message else ""
            self.console.print(f"{progress.flow}: {progress.state}{note}", highlight=False)

    @staticmethod
    def _worth_a_line(previous: FlowReport | None, progress: FlowReport) -> bool:
        """State changes, and a pending flow's news (it waits for another run's lock)."""
        if progress.state == FlowState.PENDING:
            return bool(progress.message) and (
                previous is None or previous.message != progress.message
            )
        changed = previous is None or previous.state != progress.state
        return changed and progress.state in _ANNOUNCED

    def _table(self) -> Table:
        table = Table(box=None, pad_edge=False)
        for column in ("flow", "state", "rows", "batches", "rows/s", "seconds"):
            table.add_column(column, justify="left" if column in ("flow", "state") else "right")
        for p in self.latest.values():
            table.add_row(
                p.flow,
                f"[{STYLES[p.state]}]{p.state}[/]",
                f"{p.rows:,}",
                f"{p.batches:,}",
                human_rate(p.rows_per_second),
                f"{p.seconds:.1f}",
            )
        return table


def summary_table(results: Iterable[FlowReport]) -> Table:
    """Rows, in-memory size, seconds and rows/s per flow, with a total line."""
    table = Table(title="hygge run summary", title_justify="left")
    for column in ("flow", "state", "rows", "in memory", "seconds", "rows/s"):
        table.add_column(column, justify="left" if column in ("flow", "state") else "right")
    rows = size = 0
    for r in results:
        rows += r.rows
        size += r.memory_bytes
        table.add_row(
            r.flow,
            f"[{STYLES[r.state]}]{r.state}[/]",
            f"{r.rows:,}",
            human_bytes(r.memory_bytes),
            f"{r.seconds:.2f}",
            human_rate(r.rows_per_second),
        )
    table.add_section()
    table.add_row("total", "", f"{rows:,}", human_bytes(size), "", "")
    return table
