"""What `hygge status` shows: each flow of an enqueued run (`hygge run`'s table is in
hygge.display, whose styles it shares)."""

from __future__ import annotations

from rich.table import Table

from hygge.display import STYLES
from hygge.progress import human_rate
from worker.runs import RunStatus


def status_table(run: RunStatus) -> Table:
    """`hygge status`: each flow of an enqueued run with its state, rows, rate and retries."""
    table = Table(title=f"run {run.run_id}  {run.file}", title_justify="left")
    for column in ("flow", "state", "rows", "rows/s", "seconds", "retries", "worker", "note"):
        left = column in ("flow", "state", "worker", "note")
        table.add_column(
            column,
            justify="left" if left else "right",
            no_wrap=column != "note",
            overflow="fold",
        )
    for f in run.flows:
        p = f.as_report()
        table.add_row(
            f.flow,
            f"[{STYLES.get(p.state, '')}]{f.state}[/]",
            f"{f.rows:,}",
            human_rate(f.rows_per_second),
            f"{f.seconds:.1f}",
            str(f.retries),
            f.worker,
            f.message,
        )
    return table
