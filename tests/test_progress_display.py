"""Progress you can read: percent and time left where the home knows its total, words where
it does not or where its estimate proved low, and a summary saying where the data went."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import polars as pl
from rich.console import Console

from hygge import Flow, Home, ParquetHome, ParquetStore, registry
from hygge.display import LiveProgress, progress_cell
from hygge.progress import FlowState
from hygge.report import FlowReport
from tests.conftest import run_cli
from tests.sqldb import database, unique

with registry.registered("home", "guessing_test"):  # used from Python only

    class GuessingHome(Home):
        """Yields `rows` rows in batches and estimates `guess` (None: it cannot tell)."""

        type_name = "guessing_test"

        def __init__(self, name: str, rows: int, guess: int | None, delay: float = 0.0) -> None:
            super().__init__(name, batch_size=1000)
            self.rows, self.guess, self.delay = rows, guess, delay

        async def estimate_rows(self) -> int | None:
            return self.guess

        async def read_batches(self) -> AsyncIterator[pl.DataFrame]:
            for start in range(0, self.rows, self.batch_size):
                yield pl.DataFrame({"n": range(start, min(self.rows, start + self.batch_size))})
                await asyncio.sleep(self.delay)


def _reports(home: Home, tmp_path: Path) -> list[FlowReport]:
    seen: list[FlowReport] = []
    Flow(home, ParquetStore("out", path=str(tmp_path / "out")), on_progress=seen.append).run()
    return seen


def _running(reports: list[FlowReport]) -> list[FlowReport]:
    return [r for r in reports if r.state == FlowState.RUNNING and r.rows]


def test_a_parquet_home_gives_percent_and_time_left(tmp_path: Path) -> None:
    pl.DataFrame({"n": range(50_000)}).write_parquet(tmp_path / "in.parquet", row_group_size=5000)
    reports = _reports(
        ParquetHome("in", path=str(tmp_path / "in.parquet"), batch_size=5000), tmp_path
    )
    running = _running(reports)
    assert len(running) == 10 and all(r.total_rows == 50_000 for r in running)
    assert running[4].summary().startswith("50% · 25k of 50k rows · ")
    assert all(r.summary().endswith(" left") for r in running[:-1])
    assert (
        "50% of 50k" in progress_cell(running[4]).plain
        and "█████░░░░░" in progress_cell(running[4]).plain
    )
    assert reports[-1].summary().startswith("50,000 rows · 10 batches · ")
    assert progress_cell(reports[-1]).plain == "done"


def test_unknown_totals_and_low_estimates_are_said_not_drawn(tmp_path: Path) -> None:
    unknown = _running(_reports(GuessingHome("u", rows=5000, guess=None), tmp_path))
    assert all(r.summary().endswith("rows/s · total unknown") for r in unknown)
    assert all(progress_cell(r).plain == "total unknown" for r in unknown)

    low = _running(_reports(GuessingHome("low", rows=5000, guess=2000), tmp_path))
    past = [r for r in low if r.rows > 2000]
    assert past and all("more than the 2.0k estimated" in r.summary() for r in past)
    assert all("%" not in r.summary() for r in past)
    assert all(progress_cell(r).plain == "past the 2.0k estimated" for r in past)


def test_the_live_table_on_a_terminal_draws_the_bar(tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160, color_system=None)
    with LiveProgress(console) as live:
        home = GuessingHome("in", rows=4000, guess=4000, delay=0.3)  # redrawn every 0.2 s
        Flow(home, ParquetStore("o", path=str(tmp_path / "o")), on_progress=live).run()
    text = out.getvalue()
    assert "progress" in text and "% of 4.0k" in text and "█" in text and " left" in text, text


def test_the_summary_says_where_each_flow_went_without_secrets(
    tmp_path: Path, postgres_url: str
) -> None:
    table = unique("dest")
    secret_url = postgres_url.replace("postgres@", "postgres:hush-secret-42@", 1)
    assert "hush-secret-42" in secret_url
    pl.DataFrame({"n": range(100)}).write_parquet(tmp_path / "in.parquet")
    (tmp_path / "flows.yml").write_text(
        "flows:\n"
        "  to_lake: {home: in.parquet, store: lake/n}\n"
        f"  to_pg: {{home: in.parquet, store: {{type: sql, connection: '{secret_url}',"
        f" table: {table}}}}}\n"
    )
    with database(postgres_url, table):
        result = run_cli("run", "flows.yml", cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert f"parquet:{tmp_path / 'lake' / 'n'}" in out.replace("\n", "").replace("│", "")
    assert f"table {table}" in out and "hush-secret-42" not in out, out
