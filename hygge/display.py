"""What `hygge run` shows: a live table of flows while it runs, a summary when it ends.

On a terminal the table is redrawn in place. Elsewhere (CI, cron, a container's log) every
line is timestamped: state changes as they happen, and a progress line per running flow every
`interval` seconds (HYGGE_PROGRESS_SECONDS, default 10), so a log shows a long flow is alive.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

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
_ANNOUNCED = (
    FlowState.RUNNING,
    FlowState.RETRYING,
    FlowState.SUCCESS,
    FlowState.FAILED,
    FlowState.SKIPPED,
)
DATA_COLUMN = "data moved"
DATA_CAPTION = "data moved: the rows' size in memory (Arrow), not memory use nor size on disk"
INTERRUPTED = "interrupted"
PROGRESS_SECONDS = 10.0  # between two progress lines of one flow when not on a terminal


def progress_interval(env: Mapping[str, str] | None = None) -> float:
    """Seconds between progress lines off a terminal: HYGGE_PROGRESS_SECONDS or the default."""
    value = (os.environ if env is None else env).get("HYGGE_PROGRESS_SECONDS", "")
    try:
        return max(0.1, float(value)) if value else PROGRESS_SECONDS
    except ValueError:
        return PROGRESS_SECONDS


def timestamp() -> str:
    """UTC, to the second, as log collectors and people both read it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LiveProgress:
    """Collects progress events; redraws a table on a terminal, prints timestamped lines
    elsewhere (state changes, and each running flow's progress every `interval` seconds).
    `quiet`: print nothing (the summary and errors are the caller's)."""

    def __init__(
        self, console: Console, interval: float | None = None, quiet: bool = False
    ) -> None:
        self.console = console
        self.latest: dict[str, FlowReport] = {}
        self.interval = progress_interval() if interval is None else interval
        self.quiet = quiet
        self._live: Live | None = None
        self._last_draw = 0.0
        self._last_line: dict[str, float] = {}  # flow -> when its last progress line went out

    def __enter__(self) -> LiveProgress:
        if self.console.is_terminal and not self.quiet:
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
        elif not self.quiet:
            self._print_line(previous, progress)

    def _print_line(self, previous: FlowReport | None, progress: FlowReport) -> None:
        """Off a terminal: a line at each state change, and progress at the interval."""
        now = time.monotonic()
        if self._worth_a_line(previous, progress):
            self._last_line[progress.flow] = now
            note = f": {progress.message}" if progress.message else ""
            if progress.state == FlowState.FAILED:
                note = " (its error is printed at the end)"  # once, with flows.yml:LINE
            if _cancelled(progress):
                note = f": {INTERRUPTED}"
            elif progress.state == FlowState.SUCCESS:
                note = f": {progress.summary()} in {human_seconds(progress.seconds)}"
            self._line(f"{progress.flow}: {progress.state}{note}")
        elif progress.state == FlowState.RUNNING and progress.rows and self._due(progress, now):
            self._last_line[progress.flow] = now
            self._line(f"{progress.flow}: running {progress.summary()}")

    def _due(self, progress: FlowReport, now: float) -> bool:
        return now - self._last_line.get(progress.flow, now) >= self.interval

    def _line(self, text: str) -> None:
        self.console.print(f"{timestamp()} {text}", highlight=False, soft_wrap=True)

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
        columns = ("flow", "state", "rows", "batches", "rows/s", "seconds", "progress", "note")
        for column in columns:
            left = column in ("flow", "state", "progress", "note")
            table.add_column(
                column,
                justify="left" if left else "right",
                no_wrap=True,
                overflow="ellipsis" if column == "note" else "fold",
            )
        for p in self.latest.values():
            table.add_row(
                Text(p.flow),
                f"[{STYLES[p.state]}]{p.state}[/]",
                f"{p.rows:,}",
                f"{p.batches:,}",
                human_rate(p.rows_per_second),
                f"{p.seconds:.1f}",
                progress_cell(p),
                live_note(p),
            )
        return table


def _cancelled(report: FlowReport) -> bool:
    """A flow that failed without a word: it was cancelled (Ctrl-C), not broken."""
    return report.state == FlowState.FAILED and not report.message and not report.error


def live_note(report: FlowReport) -> Text:
    """The live table's last column: why a flow retries (and which retry of how many), why
    it waits; one line, cut with an ellipsis rather than wrapped (it is redrawn in place)."""
    state = FlowState(report.state)
    if state == FlowState.RUNNING and report.attempt > 1:
        return Text(f"attempt {report.attempt}", style="yellow")
    if _cancelled(report):
        return Text(INTERRUPTED, style="red")
    if state in (FlowState.RETRYING, FlowState.PENDING, FlowState.SKIPPED, FlowState.FAILED):
        first = report.message.splitlines()[0] if report.message else ""
        return Text(first, style=STYLES[state])
    return Text("")


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
    results: Iterable[FlowReport],
    destinations: Mapping[str, str] | None = None,
    total_seconds: float | None = None,
    interrupted: bool = False,
) -> Table:
    """Rows, data moved, seconds and rows/s per flow, with a total line (the run's wall time
    when `total_seconds` is given), and where each flow's data went (its store's secret-free
    description) when `destinations` are given. `interrupted`: the run was stopped (Ctrl-C),
    and a flow that did not succeed says "interrupted"."""
    destinations = destinations or {}
    title = "hygge run summary" + (f" ({INTERRUPTED})" if interrupted else "")
    table = Table(title=title, title_justify="left", caption=DATA_CAPTION, caption_justify="left")
    columns = ["flow", "state", "rows", DATA_COLUMN, "seconds", "rows/s"]
    if destinations:
        columns.append("to")
    for column in columns:
        left = column in ("flow", "state", "to")
        table.add_column(column, justify="left" if left else "right", overflow="fold")
    rows = size = 0
    for r in results:
        rows += r.rows
        size += r.memory_bytes
        stopped = interrupted and not r.ok
        table.add_row(
            Text(r.flow),
            f"[red]{INTERRUPTED}[/]" if stopped else f"[{STYLES[r.state]}]{r.state}[/]",
            f"{r.rows:,}",
            human_bytes(r.memory_bytes),
            f"{r.seconds:.2f}",
            human_rate(r.rows_per_second),
            *([Text(destinations.get(r.flow, ""))] if destinations else []),
        )
    table.add_section()
    wall = "" if total_seconds is None else f"{total_seconds:.2f}"
    rate = human_rate(rows / total_seconds) if total_seconds else ""
    table.add_row(
        "total", "", f"{rows:,}", human_bytes(size), wall, rate, *([""] if destinations else [])
    )
    return table


def print_summary(console: Console, table: Table) -> None:
    """A summary that never wraps: on a terminal as wide as the screen allows, elsewhere as
    wide as it needs (a log line is cheaper to read whole than folded at 80 columns)."""
    if console.is_terminal:
        console.print(table)
        return
    wide = Console(file=console.file, width=10_000, color_system=None, soft_wrap=True)
    wide.print(table)
