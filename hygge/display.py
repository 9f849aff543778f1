"""What `hygge run` shows: a live table of flows while it runs, a summary when it ends."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from hygge.progress import FlowState, human_bytes, human_rate, human_seconds
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
        for column in ("flow", "state", "rows", "batches", "rows/s", "seconds", "progress"):
            left = column in ("flow", "state", "progress")
            table.add_column(column, justify="left" if left else "right")
        for p in self.latest.values():
            table.add_row(
                p.flow,
                f"[{STYLES[p.state]}]{p.state}[/]",
                f"{p.rows:,}",
                f"{p.batches:,}",
                human_rate(p.rows_per_second),
                f"{p.seconds:.1f}",
                progress_cell(p),
            )
        return table


BAR_WIDTH = 10


def progress_cell(report: FlowReport) -> Text:
    """A bar with percent and time left where the total is known; words where it is not, or
    where the estimate proved low (never a bar past 100% or a made-up one)."""
    state, total, rows = FlowState(report.state), report.total_rows, report.rows
    if state == FlowState.SUCCESS:
        return Text("done", style="green")
    if state.terminal or state in (FlowState.PENDING, FlowState.QUEUED):
        return Text("")
    if total is None:
        return Text("total unknown", style="dim")
    if rows > total:
        return Text(f"past the {human_rate(total)} estimated", style="dim")
    rate = report.rows_per_second
    left = f" · {human_seconds((total - rows) / rate)} left" if rate > 0 and rows else ""
    percent = 100 * rows / total if total else 100.0
    filled = int(BAR_WIDTH * percent / 100)
    bar = Text("█" * filled, style="cyan") + Text("░" * (BAR_WIDTH - filled), style="dim")
    return bar + Text(f" {percent:.0f}% of {human_rate(total)}{left}")


def summary_table(
    results: Iterable[FlowReport], destinations: Mapping[str, str] | None = None
) -> Table:
    """Rows, in-memory size, seconds and rows/s per flow, with a total line, and where each
    flow's data went (its store's secret-free description) when `destinations` are given."""
    destinations = destinations or {}
    table = Table(title="hygge run summary", title_justify="left")
    columns = ["flow", "state", "rows", "in memory", "seconds", "rows/s"]
    if destinations:
        columns.append("to")
    for column in columns:
        left = column in ("flow", "state", "to")
        table.add_column(column, justify="left" if left else "right", overflow="fold")
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
            *([destinations.get(r.flow, "")] if destinations else []),
        )
    table.add_section()
    table.add_row(
        "total", "", f"{rows:,}", human_bytes(size), "", "", *([""] if destinations else [])
    )
    return table
