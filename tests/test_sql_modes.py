"""replace, append and merge on PostgreSQL, MariaDB and SQLite, read back independently."""

from __future__ import annotations

import datetime as dt
import decimal
import re
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hygge import ConfigError, Flow, ParquetHome, SQLHome, SQLStore
from tests.helpers import parquet_file
from tests.sqldb import database, unique


@pytest.fixture(params=["postgres", "mysql", "sqlite"])
def db_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue(f"{request.param}_url")


def move(path: str, url: str, table: str, batch_size: int = 2, **store: object) -> None:
    Flow(
        ParquetHome("src", path=path, batch_size=batch_size),
        SQLStore(table, connection=url, **store),
    ).run()


def test_replace_then_append_then_merge(db_url: str, tmp_path: Path):
    table = unique("modes")
    with database(db_url, table) as db:
        first = parquet_file(tmp_path, "a", {"id": [1, 2, 3], "name": ["a", "b", "c"]})
        move(first, db_url, table)
        assert db.rows(table) == [(1, "a"), (2, "b"), (3, "c")]

        move(parquet_file(tmp_path, "b", {"id": [9, 8], "name": ["z", "y"]}), db_url, table)
        assert db.rows(table) == [(8, "y"), (9, "z")], "replace drops the old rows"

        move(
            parquet_file(tmp_path, "c", {"id": [1, 2], "name": ["a", None]}),
            db_url,
            table,
            mode="append",
        )
        assert db.rows(table) == [(1, "a"), (2, None), (8, "y"), (9, "z")]

        db.drop(table)
        move(first, db_url, table, mode="merge", key=["id"])  # creates it with a key
        move(
            parquet_file(tmp_path, "d", {"id": [3, 4], "name": ["C", "d"]}),
            db_url,
            table,
            mode="merge",
            key="id",
        )
        assert db.rows(table) == [(1, "a"), (2, "b"), (3, "C"), (4, "d")]
        assert not [t for t in db.staging_tables() if table in t]


def test_new_columns_are_added_and_types_evolve(db_url: str, tmp_path: Path):
    table = unique("evolve")
    with database(db_url, table) as db:
        move(
            parquet_file(tmp_path, "a", {"id": [1], "v": pa.array([5], pa.int16())}), db_url, table
        )
        # a wider integer type keeps the table's column; the values are range-checked
        move(
            parquet_file(
                tmp_path, "b", {"id": [2], "v": pa.array([7], pa.int64()), "extra": ["new"]}
            ),
            db_url,
            table,
            mode="append",
        )
        assert db.rows(table) == [(1, 5, None), (2, 7, "new")]
        if db.dialect == "sqlite":
            return  # SQLite cannot change a column's type (tested as an error elsewhere)
        # a different kind of value changes the column's type under schema_policy: evolve
        move(parquet_file(tmp_path, "c", {"id": [3], "v": ["seven"]}), db_url, table, mode="append")
        assert db.rows(table) == [(1, "5", None), (2, "7", "new"), (3, "seven", None)]


def test_merge_on_a_quoted_composite_key(db_url: str, tmp_path: Path):
    table = unique('or"der')
    with database(db_url, table) as db:
        data = {"select": [1, 1, 2], "order": ["x", "y", "x"], 'a"b': [1.5, 2.5, 3.5]}
        move(
            parquet_file(tmp_path, "a", data), db_url, table, mode="merge", key=["select", "order"]
        )
        update = {"select": [1, 3], "order": ["y", "x"], 'a"b': [9.0, 4.0]}
        move(
            parquet_file(tmp_path, "b", update),
            db_url,
            table,
            mode="merge",
            key=["select", "order"],
        )
        assert db.rows(table, "1, 2") == [
            (1, "x", 1.5),
            (1, "y", 9.0),
            (2, "x", 3.5),
            (3, "x", 4.0),
        ]


def test_sqlite_types_round_trip(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'types.db'}"
    data = pa.table(
        {
            "i": pa.array([1, None, -(2**63)], pa.int64()),
            "n": pa.array(
                [decimal.Decimal("12345678901234567890.123"), None, decimal.Decimal("-0.001")],
                pa.decimal128(23, 3),
            ),
            "f": [0.1, None, 1e308],
            "s": ["h\u00e9llo", None, ""],
            "b": [True, None, False],
            "d": [dt.date(1, 1, 1), None, dt.date(9999, 12, 31)],
            "ts": [dt.datetime(2020, 1, 2, 3, 4, 5, 6), None, dt.datetime(1970, 1, 1)],
            "tz": pa.array(
                [dt.datetime(2020, 1, 2, 3, 4, 5, 6), None, dt.datetime(1999, 1, 1)],
                pa.timestamp("us", "UTC"),
            ),
            "tm": pa.array([dt.time(23, 59, 59, 999999), None, dt.time(0)], pa.time64("us")),
            "by": [b"\x00\xff", None, b""],
        }
    )
    pq.write_table(data, tmp_path / "in.parquet")
    move(str(tmp_path / "in.parquet"), url, "t", batch_size=10)
    out = []
    Flow(SQLHome("t", connection=url), _Collect("c", sink=out)).run()
    back = pl.concat(out).to_arrow()
    assert back.num_rows == 3
    for name in data.column_names:
        assert back.column(name).to_pylist() == data.column(name).to_pylist(), name


from hygge import Home, Store  # noqa: E402


class _Collect(Store):
    """Keeps what it is given, to compare with what went in."""

    type_name = "test_collect"

    def __init__(self, name: str, sink: list) -> None:
        super().__init__(name)
        self.sink = sink

    async def write(self, df: pl.DataFrame) -> None:
        self.sink.append(df)


class _Watched(Home):
    """Yields two batches and, between them, records what a reader of the target sees."""

    type_name = "test_watched"

    def __init__(self, name: str, db, table: str, seen: list) -> None:
        super().__init__(name)
        self.db, self.table, self.seen = db, table, seen

    async def read_batches(self):
        yield pl.DataFrame({"id": [10, 11], "name": ["new", "new"]})
        self.seen.append(self.db.rows(self.table))
        yield pl.DataFrame({"id": [12], "name": ["new"]})


@pytest.mark.parametrize("mode", ["replace", "append", "merge"])
def test_readers_see_the_old_table_until_commit(request, mode, tmp_path: Path):
    for service in ("postgres", "mysql"):
        url = request.getfixturevalue(f"{service}_url")
        table = unique("atomic")
        with database(url, table) as db:
            db.run(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name VARCHAR(10))")
            db.run(f"INSERT INTO {table} VALUES (1, 'old')")
            seen: list = []
            key = {"key": ["id"]} if mode == "merge" else {}
            Flow(
                _Watched("w", db, table, seen), SQLStore(table, connection=url, mode=mode, **key)
            ).run()
            assert seen == [[(1, "old")]], service
            new = [(10, "new"), (11, "new"), (12, "new")]
            assert db.rows(table) == (new if mode == "replace" else [(1, "old"), *new])


def test_import_hygge_loads_no_database_driver():
    import subprocess
    import sys

    code = (
        "import sys, hygge; hygge.Flow; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('sqlalchemy', 'adbc_driver_manager', 'adbc_driver_postgresql', 'pymysql', 'psycopg')]; "
        "assert not bad, bad; hygge.SQLHome; assert 'hygge.homes.sql' in sys.modules"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stderr


def test_python_api_defaults_to_database_url(postgres_url: str, monkeypatch, tmp_path: Path):
    table = unique("envurl")
    with database(postgres_url, table) as db:
        db.run(f"CREATE TABLE {table} (id integer, name text)")
        db.run(f"INSERT INTO {table} VALUES (1, 'a'), (2, NULL)")
        monkeypatch.setenv("DATABASE_URL", postgres_url)
        out: list = []
        result = Flow(SQLHome(table), _Collect("c", sink=out)).run()
        assert result.rows == 2
        assert pl.concat(out).sort("id").rows() == [(1, "a"), (2, None)]
        monkeypatch.delenv("DATABASE_URL")
        with pytest.raises(ConfigError, match="DATABASE_URL is not set"):
            Flow(SQLHome(table), _Collect("c", sink=out)).run()


@pytest.mark.parametrize("service", ["postgres", "mysql"])
def test_staging_left_by_a_dead_run_is_dropped_and_a_live_runs_kept(request, service, tmp_path):
    url = request.getfixturevalue(f"{service}_url")
    table = unique("sweep")
    dead, live = f"_hygge_stage_{table}_dead000000", f"_hygge_stage_{table}_live000000"
    with database(url, table, dead, live) as db, database(url) as other:
        db.run(f"CREATE TABLE {db.q(dead)} (id integer)")
        db.run(f"CREATE TABLE {db.q(live)} (id integer)")
        lock = (
            f"SELECT pg_advisory_lock(hashtext('{live}'))"
            if db.dialect == "postgresql"
            else f"SELECT GET_LOCK('{live}', 0)"
        )
        other.run(lock)  # another run is still loading into `live`
        move(parquet_file(tmp_path, "a", {"id": [1]}), url, table)
        assert db.rows(table) == [(1,)]
        assert not db.exists(dead), "a dead run's staging table was left behind"
        assert db.exists(live), "a live run's staging table was dropped"


def test_an_append_under_a_commit_key_lands_once(db_url: str, tmp_path: Path):
    """A worker's run of an append flow carries a commit key: the same run delivered again
    after its publish landed (the worker killed before recording the flow as done) reads and
    stages again, finds the mark its publish wrote, and appends nothing more; another run's
    key appends."""
    from hygge.sql.state_table import STATE_TABLE, mark_key

    table = unique("o'nce \"50%_\\ æ")  # hostile: quotes, LIKE wildcards, a backslash
    path = parquet_file(tmp_path, "a", {"id": [1, 2, 3]})

    def append(key: str) -> None:
        store = SQLStore(table, connection=db_url, mode="append")
        store.commit_key = key
        result = Flow(ParquetHome("src", path=path, batch_size=2), store).run()
        assert result.ok and result.rows == 3, result

    with database(db_url, table) as db:
        append("run1.flow")
        append("run1.flow")  # the same run, delivered again
        append("run2.flow")
        assert db.rows(table) == [(1,), (1,), (2,), (2,), (3,), (3,)]
        marks = sorted(r[0] for r in db.run(f"SELECT flow FROM {STATE_TABLE}") if table in r[0])
        assert marks == [mark_key(table, "run1.flow"), mark_key(table, "run2.flow")]
        assert not [t for t in db.staging_tables() if re.sub(r"\W", "_", table) in t]
        one = "?" if db.dialect == "sqlite" else "%s"
        for mark in marks:
            db.run(f"DELETE FROM {STATE_TABLE} WHERE flow = {one}", (mark,))


def test_a_target_a_dead_replace_moved_aside_is_dropped_and_a_live_runs_kept(mysql_url, tmp_path):
    """A MariaDB replace swaps its staging table in outside a transaction (`RENAME TABLE t TO
    _hygge_old_<t>_<run>, staging TO t`), then drops the old table: a run killed between the
    two (as planted here) left a whole copy of the old rows. The next run into the table
    drops it; one whose run still holds its staging claim (still publishing) is kept."""
    table = unique("moved")
    dead, live = f"_hygge_old_{table}_dead000000", f"_hygge_old_{table}_live000000"
    with database(mysql_url, table, dead, live) as db, database(mysql_url) as other:
        for name in (table, dead, live):
            db.run(f"CREATE TABLE {db.q(name)} (id integer)")
        db.run(f"INSERT INTO {db.q(dead)} VALUES (7)")
        other.run(f"SELECT GET_LOCK('_hygge_stage_{table}_live000000', 0)")
        move(parquet_file(tmp_path, "a", {"id": [1]}), mysql_url, table)
        assert db.rows(table) == [(1,)]
        assert not db.exists(dead), "a dead replace's old table was left behind"
        assert db.exists(live), "a live run's old table was dropped"
        assert not [t for t in db.staging_tables() if table in t and t != live]


@pytest.mark.parametrize("streams", [1, 3])
def test_mariadb_loads_each_batch_once_over_parallel_streams(mysql_url, tmp_path, streams):
    """`streams` connections run LOAD DATA at once: every row lands exactly once, and text
    holding LOAD DATA's special characters arrives as it was, in the batches that hold
    them and beside the batches that hold none (which skip the escaping)."""
    specials = ["a\\b", "t\tab", "new\nline", "c\rr", "nul\x00", "\\N", "\\", '"q"', "", None]
    specials += ["😀 ü", '\\\t"\n\\N']
    ids = list(range(2_000))
    names = [specials[i % len(specials)] if i < 300 or i >= 1_800 else f"row {i}" for i in ids]
    path = parquet_file(tmp_path, "many", {"id": ids, "name": names})
    table = unique("streams")
    with database(mysql_url, table) as db:
        move(path, mysql_url, table, batch_size=150, streams=streams)
        assert db.rows(table) == list(zip(ids, names, strict=True))
        assert not [t for t in db.staging_tables() if table in t]
