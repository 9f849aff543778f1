"""How `hygge runs` shows the history: a table of runs, one run's flows, or JSON."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from rich.table import Table

from hygge.history.records import RunRecord
from hygge.progress import FlowState, human_seconds

_STYLE = {
    "success": "green",
    "failed": "red",
    "skipped": "yellow",
    "running": "cyan",
}


def started(epoch: float) -> str:
    """Local time, to the second: what an operator compares with a clock."""
    return datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def runs_table(runs: Iterable[RunRecord]) -> Table:
    table = Table(title="runs, newest first", title_justify="left")
    for name in ("run id", "started", "duration", "state", "ok", "failed", "skipped", "rows"):
        numeric = name in ("duration", "ok", "failed", "skipped", "rows")
        table.add_column(name, justify="right" if numeric else "left", no_wrap=True)
    table.add_column("runner")
    for run in runs:
        state = run.state
        table.add_row(
            run.run_id,
            started(run.started),
            human_seconds(run.seconds),
            f"[{_STYLE.get(state, '')}]{state}[/]",
            str(run.count(FlowState.SUCCESS)),
            str(run.count(FlowState.FAILED)),
            str(run.count(FlowState.SKIPPED)),
            f"{run.rows:,}",
            run.runner + (" (scheduled)" if run.trigger == "schedule" else ""),
        )
    return table


def run_table(run: RunRecord, flows: list[str] | None = None) -> Table:
    """One run, a line per flow: state, rows, time, retries, error."""
    title = (
        f"run {run.run_id}: {run.state}, {run.runner}"
        + (" (scheduled)" if run.trigger == "schedule" else "")
        + f", started {started(run.started)}, {human_seconds(run.seconds)}"
        + (f", {run.file}" if run.file else "")
    )
    table = Table(title=title, title_justify="left")
    table.add_column("flow", no_wrap=True)
    table.add_column("state")
    for name in ("rows", "time", "retries"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("error")
    for flow in run.flows:
        if flows and not any(flow.flow == f or flow.flow.startswith(f"{f}.") for f in flows):
            continue
        table.add_row(
            flow.flow,
            f"[{_STYLE.get(flow.state, '')}]{flow.state}[/]",
            f"{flow.rows:,}",
            f"{flow.seconds:.1f} s",
            str(flow.retries),
            flow.error,
        )
    return table
