"""Row estimates behind the progress bar: exact where the format knows (parquet footers),
close where it is cheap to guess (CSV/NDJSON sizes, the database catalog), and None (never a
wrong number) where nothing is known."""

from __future__ import annotations

import asyncio
from pathlib import Path

import polars as pl
import pytest

from hygge import CsvHome, NdjsonHome, ParquetHome, SQLHome
from hygge.progress import progress_text
from tests.sqldb import database, unique


def _estimate(home) -> int | None:
    return asyncio.run(home.estimate_rows())


def _frame(n: int) -> pl.DataFrame:
    return pl.DataFrame({"id": range(n), "word": [f"word {i * 7919 % 1000}" for i in range(n)]})


def test_parquet_estimate_is_exact_from_the_footers(tmp_path: Path) -> None:
    for i, n in enumerate((1000, 2500, 7)):
        _frame(n).write_parquet(tmp_path / f"part-{i}.parquet")
    assert _estimate(ParquetHome("p", path=str(tmp_path))) == 3507


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_line_files_are_estimated_from_their_size(tmp_path: Path, fmt: str) -> None:
    small, big = tmp_path / f"small.{fmt}", tmp_path / f"big.{fmt}"
    writer = "write_csv" if fmt == "csv" else "write_ndjson"
    getattr(_frame(300), writer)(small)
    getattr(_frame(200_000), writer)(big)
    home = CsvHome if fmt == "csv" else NdjsonHome
    assert _estimate(home("s", path=str(small))) == 300  # read whole: exact
    estimate = _estimate(home("b", path=str(big)))
    assert estimate is not None and abs(estimate - 200_000) < 200_000 * 0.05, estimate


def test_sql_tables_use_the_catalog_and_queries_are_unknown(
    postgres_url: str, mysql_url: str
) -> None:
    pg_table, my_table = unique("est"), unique("est")
    with database(postgres_url, pg_table) as pg, database(mysql_url, my_table) as my:
        pg.run(f"CREATE TABLE {pg_table} AS SELECT g AS id FROM generate_series(1, 50000) g")
        home = SQLHome(pg_table, connection=postgres_url)
        assert _estimate(home) is None  # never analyzed: no estimate, not a wrong one
        pg.run(f"ANALYZE {pg_table}")
        assert _estimate(home) == 50_000
        query = SQLHome("q", connection=postgres_url, query=f"SELECT * FROM {pg_table}")
        assert _estimate(query) is None

        my.run(f"CREATE TABLE {my_table} (id int PRIMARY KEY)")
        my.run(
            f"INSERT INTO {my_table} SELECT seq FROM seq_1_to_50000"  # MariaDB's sequence engine
        )
        my.run(f"ANALYZE TABLE {my_table}")
        estimate = _estimate(SQLHome(my_table, connection=mysql_url))
        assert estimate is not None and 25_000 <= estimate <= 100_000, estimate


def test_progress_text_says_what_it_knows() -> None:
    assert progress_text(2_700_000, 6_000_000, 6.92) == (
        "45% · 2.7M of 6.0M rows · 390k rows/s · 8 s left"
    )
    assert progress_text(2_700_000, None, 6.92) == "2.7M rows · 390k rows/s · total unknown"
    assert progress_text(2_700_000, 2_500_000, 6.92) == (
        "2.7M rows, more than the 2.5M estimated · 390k rows/s"
    )
