"""One PostgreSQL table read by several connections at once, each a range of its pages, in
one snapshot (hygge/sql/page_readers.py). Real PostgreSQL; the parquet read back by DuckDB,
the connections seen in pg_stat_activity by a separate client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from hygge import Flow, ParquetStore, SQLHome
from hygge.errors import HomeError
from hygge.sql import page_readers, postgres
from hygge.sql.base import Session
from hygge.sql.connect import connect
from hygge.sql.url import parse_url
from tests.checks import fingerprint
from tests.sqldb import Db, database, unique

ROWS = 60_000


def fill(db: Db, table: str, rows: int = ROWS) -> None:
    db.run(
        f"CREATE TABLE {table} (id bigint, price numeric(12,2), note text, day date, "
        "at timestamptz)"
    )
    db.run(
        f"INSERT INTO {table} SELECT g, g * 0.01, repeat('n', g % 50), "
        "DATE '2020-01-01' + (g % 1000), TIMESTAMPTZ '2020-01-01 00:00:00+00' + g * "
        f"INTERVAL '1 second' FROM generate_series(1, {int(rows)}) g"
    )
    db.run(f"ANALYZE {table}")


def expected(db: Db, table: str, tmp_path: Path) -> tuple[int, int]:
    """The table as one connection reads it, for the comparison."""
    out = tmp_path / "one"
    Flow(SQLHome(table, connection=db.url, readers=1), ParquetStore("one", path=str(out))).run()
    return fingerprint(out)


def readers_at_work(db: Db, marker: str = "hygge_pages") -> int:
    return len(
        db.run(
            f"SELECT pid FROM pg_stat_activity WHERE query LIKE '%{marker}%' "
            "AND state = 'active' AND query NOT LIKE '%pg_stat_activity%'"
        )
    )


def most_readers_at_work(db: Db, marker: str, wanted: int, within: float = 60.0) -> int:
    """The most readers seen at work at one moment, polled until `wanted` are (or `within`
    seconds passed)."""
    most, deadline = 0, time.monotonic() + within
    while most < wanted and time.monotonic() < deadline:
        most = max(most, readers_at_work(db, marker))
        time.sleep(0.05)
    return most


def first_batch_then(home: SQLHome, then: Callable[[], None]) -> pl.DataFrame:
    """Read `home`, calling `then` after the first batch arrived (the readers wait)."""

    async def read() -> pl.DataFrame:
        frames = []
        async for df in home.read_batches():
            if not frames:
                then()
            frames.append(df)
        return pl.concat(frames)

    return asyncio.run(read())


def session(url: str) -> Session:
    return connect(parse_url(url, "test"), HomeError, "test")


def test_each_select_is_read_by_its_own_connection_at_once(postgres_url: str) -> None:
    """When the quick select's rows arrive, the two slow ones (the server sleeps per row) are
    running on the server, each on its own connection; every row comes once."""
    with database(postgres_url) as db:
        selects = [
            f"SELECT g, pg_sleep({pause})::text AS hygge_slow_marker "
            f"FROM generate_series({i * 1000}, {i * 1000 + 999}) g"
            for i, pause in enumerate([0, 0.005, 0.005])
        ]
        planner = session(postgres_url)
        stream = page_readers.read(planner, lambda: session(postgres_url), selects, 100, None)
        try:
            first = next(stream)
            # each slow select runs for 5 s or more on the server: on a busy machine a reader
            # thread may send its select a moment after the quick one's rows arrived
            at_work = most_readers_at_work(db, "hygge_slow_marker", 2)
            rows = [first, *stream]
        finally:
            planner.close()
        assert at_work == 2
        ids = sorted(v for t in rows for v in t.column("g").to_pylist())
        assert ids == list(range(3000))


def test_a_table_is_split_into_page_ranges_that_cover_it(postgres_url: str, monkeypatch) -> None:
    table = unique("pages")
    with database(postgres_url, table) as db:
        fill(db, table)
        planner = session(postgres_url)
        try:
            selects = page_readers.page_selects(planner, f"SELECT id FROM {table}", table, None, 3)
            assert len(selects) == 3
            counts = [planner.query(f"SELECT count(*) FROM ({s}) AS p")[0][0] for s in selects]
            assert sum(counts) == ROWS and all(c > ROWS // 5 for c in counts), counts
            # the default: one reader for a small table, two from 64 MB on disk
            assert page_readers.page_selects(planner, "x", table, None, None) == []
            size = db.run(f"SELECT pg_relation_size('{table}')")[0][0]
            with monkeypatch.context() as patch:
                patch.setattr(page_readers, "AUTO_MIN_BYTES", size)  # a smaller threshold
                auto = page_readers.page_selects(
                    planner, f"SELECT id FROM {table}", table, None, None
                )
            assert len(auto) == page_readers.AUTO_READERS
        finally:
            planner.close()


def test_three_readers_read_every_row_once(postgres_url: str, tmp_path: Path) -> None:
    table = unique("pages")
    with database(postgres_url, table) as db:
        fill(db, table)
        out = tmp_path / "three"
        Flow(
            SQLHome(table, connection=postgres_url, readers=3, batch_size=1_000),
            ParquetStore("t", path=str(out)),
        ).run()
        assert fingerprint(out) == expected(db, table, tmp_path)


def test_rows_written_during_the_read_are_not_read(postgres_url: str, tmp_path: Path) -> None:
    """Every reader reads the snapshot the read started in: rows committed after the first
    batch (in new pages, the last reader's range) are not part of it, nor deleted ones gone."""
    table = unique("pages")
    with database(postgres_url, table) as db:
        fill(db, table)

        def change() -> None:
            db.run(f"INSERT INTO {table} SELECT g FROM generate_series(1000001, 1005000) g")
            db.run(f"DELETE FROM {table} WHERE id > {ROWS - 5000}")

        home = SQLHome(table, connection=postgres_url, readers=3, batch_size=1_000)
        got = first_batch_then(home, change)
        assert sorted(got.get_column("id").to_list()) == list(range(1, ROWS + 1))


def test_an_incremental_read_on_several_readers(postgres_url: str, tmp_path: Path) -> None:
    table = unique("pages")
    with database(postgres_url, table) as db:
        fill(db, table)
        out = tmp_path / "inc"
        home = SQLHome(table, connection=postgres_url, readers=3, cursor="id")
        Flow(home, ParquetStore("i", path=str(out), mode="append"), incremental=True).run()
        db.run(f"INSERT INTO {table} SELECT g FROM generate_series({ROWS + 1}, {ROWS + 700}) g")
        again = SQLHome(table, connection=postgres_url, readers=3, cursor="id")
        store = ParquetStore("i", path=str(out), mode="append")
        result = Flow(again, store, incremental=True).run()
        assert result.rows == 700
        assert fingerprint(out) == expected(db, table, tmp_path)


def test_a_failing_reader_fails_the_flow_and_the_others_stop(
    postgres_url: str, tmp_path: Path
) -> None:
    """A value one reader cannot carry (an infinite date, in the last pages) fails the read
    with its message; the other readers cancel their statements; nothing is published."""
    table = unique("pages")
    with database(postgres_url, table) as db:
        fill(db, table)
        db.run(f"INSERT INTO {table} (id, day) VALUES (0, 'infinity')")
        out = tmp_path / "lake"
        flow = Flow(
            SQLHome(table, connection=postgres_url, readers=3, batch_size=500),
            ParquetStore("t", path=str(out)),
        )
        with pytest.raises(HomeError, match="infinity"):
            flow.run()
        assert not list(out.glob("**/*.parquet"))
        deadline = time.monotonic() + 120
        while readers_at_work(db) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert readers_at_work(db) == 0


def test_a_view_is_read_on_one_connection(postgres_url: str, tmp_path: Path) -> None:
    table, view = unique("pages"), unique("pages_v")
    with database(postgres_url, table) as db:
        fill(db, table, rows=2_000)
        db.run(f"CREATE VIEW {view} AS SELECT * FROM {table}")
        try:
            out = tmp_path / "v"
            Flow(
                SQLHome(view, connection=postgres_url, readers=3),
                ParquetStore("v", path=str(out)),
            ).run()
            assert fingerprint(out) == expected(db, table, tmp_path)
        finally:
            db.run(f"DROP VIEW IF EXISTS {view}")


def test_a_hostile_table_name_is_split_and_read(postgres_url: str, tmp_path: Path) -> None:
    import duckdb

    name = unique('Pa"ges; x')
    with database(postgres_url) as db:
        quoted = db.q(name)
        db.run(f"CREATE TABLE {quoted} AS SELECT g AS id FROM generate_series(1, 5000) g")
        try:
            out = tmp_path / "h"
            Flow(
                SQLHome("h", connection=postgres_url, table=name, readers=2, batch_size=700),
                ParquetStore("h", path=str(out)),
            ).run()
            got = duckdb.sql(
                f"SELECT count(*), count(DISTINCT id), sum(id) FROM '{out}/**/*.parquet'"
            ).fetchall()[0]
            assert got == (5000, 5000, 5000 * 5001 // 2)
        finally:
            db.run(f"DROP TABLE IF EXISTS {quoted}")


def test_the_driver_hands_over_batches_of_a_few_megabytes(postgres_url: str) -> None:
    """A flow batch keeps the driver's batches it was cut from alive until it is written, so
    the driver's batches stay small (`BATCH_HINT_BYTES`, not its 16 MB default); every row
    still comes once."""
    table, rows = unique("wide"), 120_000
    with database(postgres_url, table) as db:
        db.run(f"CREATE TABLE {table} (id bigint, note text)")
        db.run(f"INSERT INTO {table} SELECT g, repeat('w', 300) FROM generate_series(1, {rows}) g")
        reader = session(postgres_url)
        try:
            batches = list(reader.stream(f"SELECT id, note FROM {table}", 50_000, None))
        finally:
            reader.close()
        # 38 MB of rows: a 16 MB default would hand over three batches of over 12 MB
        sizes = [b.nbytes for b in batches]
        assert max(sizes) <= 2 * postgres.BATCH_HINT_BYTES <= 8 << 20, sizes
        assert len(batches) >= 6, sizes
        ids = sorted(v for b in batches for v in b.column("id").to_pylist())
        assert ids == list(range(1, rows + 1))
