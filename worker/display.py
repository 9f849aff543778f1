"""What `hygge status` shows: each flow of an enqueued run (`hygge run`'s table is in
hygge.display, whose styles it shares)."""

from __future__ import annotations

import re
from dataclasses import replace

from rich.table import Table

from hygge.display import STYLES, progress_cell
from hygge.progress import FlowState, human_rate
from worker.contract import FlowStatus
from worker.runs import RunStatus

_PARTITION = re.compile(r"^(?P<flow>.+)#(?P<index>\d+)/(?P<count>\d+)$")


def flow_lines(run: RunStatus, partitions: bool = False) -> list[FlowStatus]:
    """One line per flow: a partitioned flow's line (its commit step) sums its partitions'
    rows and says how many are done; each partition's own line only with `partitions`."""
    parts: dict[str, list[FlowStatus]] = {}
    for f in run.flows:
        if match := _PARTITION.match(f.flow):
            parts.setdefault(match["flow"], []).append(f)
    lines = []
    for f in run.flows:
        if _PARTITION.match(f.flow):
            if partitions:
                lines.append(f)
            continue
        mine = parts.get(f.flow)
        if mine and not f.done:
            done = sum(p.state == FlowState.SUCCESS for p in mine)
            active = any(p.state in (FlowState.RUNNING, FlowState.RETRYING) for p in mine)
            f = replace(
                f,
                state=FlowState.RUNNING if active and f.state == FlowState.PENDING else f.state,
                rows=sum(p.rows for p in mine),
                batches=sum(p.batches for p in mine),
                seconds=max(p.seconds for p in mine),
                message=f"partitions {done}/{len(mine)}",
            )
        elif mine:
            f = replace(f, message=(f.message or f"partitions {len(mine)}/{len(mine)}"))
        lines.append(f)
    return lines


def status_table(run: RunStatus, partitions: bool = False) -> Table:
    """`hygge status`: each flow of an enqueued run with its state, rows, rate and retries."""
    table = Table(title=f"run {run.run_id}  {run.file}", title_justify="left")
    columns = ("flow", "state", "rows", "rows/s", "seconds", "progress", "retries", "worker")
    for column in (*columns, "note"):
        left = column in ("flow", "state", "progress", "worker", "note")
        table.add_column(
            column,
            justify="left" if left else "right",
            no_wrap=column != "note",
            overflow="fold",
        )
    for f in flow_lines(run, partitions):
        p = f.as_report()
        table.add_row(
            f.flow,
            f"[{STYLES.get(p.state, '')}]{f.state}[/]",
            f"{f.rows:,}",
            human_rate(f.rows_per_second),
            f"{f.seconds:.1f}",
            progress_cell(p),
            str(f.retries),
            f.worker,
            f.message,
        )
    return table
