"""How `hygge runs` shows the history: a table of runs, one run's flows, or JSON."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from rich import box
from rich.table import Table

from hygge.history.records import RunRecord
from hygge.progress import FlowState, human_seconds

_STYLE = {
    "success": "green",
    "failed": "red",
    "skipped": "yellow",
    "running": "cyan",
}


def started(epoch: float, seconds: bool = True) -> str:
    """Local time: what an operator compares with a clock."""
    return (
        datetime.fromtimestamp(epoch)
        .astimezone()
        .strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    )


def by(run: RunRecord) -> str:
    """Who started a run: `hygge run`, `hygge enqueue`, or the scheduler."""
    if run.trigger == "schedule":
        return "scheduler"
    return "run" if run.runner == "embedded" else "enqueue"


def runs_table(runs: Iterable[RunRecord]) -> Table:
    """A line per run; fits 80 columns."""
    zone = datetime.now().astimezone().strftime("%Z")
    table = Table(
        title=f"runs, newest first (times in {zone})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
        show_edge=False,
    )
    for name in ("run id", "started", "took", "state", "ok", "fail", "skip", "rows", "by"):
        numeric = name in ("took", "ok", "fail", "skip", "rows")
        table.add_column(name, justify="right" if numeric else "left", no_wrap=True)
    for run in runs:
        state = run.state
        table.add_row(
            run.run_id,
            started(run.started, seconds=False),
            human_seconds(run.seconds),
            f"[{_STYLE.get(state, '')}]{state}[/]",
            str(run.count(FlowState.SUCCESS)),
            str(run.count(FlowState.FAILED)),
            str(run.count(FlowState.SKIPPED)),
            f"{run.rows:,}",
            by(run),
        )
    return table


def run_table(run: RunRecord, flows: list[str] | None = None) -> Table:
    """One run, a line per flow: state, rows, time, retries, error."""
    title = (
        f"run {run.run_id}: {run.state}, {run.runner} (hygge {by(run)}), "
        f"started {started(run.started)}, took {human_seconds(run.seconds)}"
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
            flow.error.split("\n  hint:")[0],  # the hint is for when it happens
        )
    return table
