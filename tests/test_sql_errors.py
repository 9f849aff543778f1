"""Bad input: each case gives a clear HyggeError and leaves the target table untouched."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from hygge import ConfigError, Flow, HomeError, ParquetHome, SQLHome, SQLStore, StoreError
from tests.helpers import parquet_file
from tests.sqldb import Db, database, unique

SECRET = "s3cr3t-Pa55"


@pytest.fixture(params=["postgres", "mysql"])
def target(request) -> tuple[Db, str, str]:
    """A real table with two rows, whose content must survive every failed run."""
    url = request.getfixturevalue(f"{request.param}_url")
    table = unique("bad")
    with database(url, table) as db:
        db.run(
            f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, small SMALLINT, "
            "price NUMERIC(6,2), code VARCHAR(5), name TEXT)"
        )
        db.run(f"INSERT INTO {table} VALUES (1, 10, 1.50, 'ab', 'one'), (2, 20, 2.50, 'cd', 'two')")
        before = db.rows(table)
        yield db, url, table
        assert db.rows(table) == before, "the target table was changed by a failed run"
        assert not [t for t in db.staging_tables() if table in t], "staging table left behind"


def run(home, store, **flow) -> None:
    Flow(home, store, **flow).run()


def load(tmp_path: Path, url: str, table: str, data: dict, **store) -> None:
    run(
        ParquetHome("in", path=parquet_file(tmp_path, "in", data)),
        SQLStore(table, connection=url, **store),
    )


def test_unreachable_host_is_retried_then_reported_with_host_port_database(target, tmp_path):
    _db, url, table = target
    events = []
    bad = "postgresql://postgres@127.0.0.1:1/test"
    flow = Flow(
        SQLHome("users", connection=bad),
        SQLStore(table, connection=url),
        retries=2,
        retry_delay=0.01,
        on_progress=events.append,
    )
    with pytest.raises(HomeError) as err:
        flow.run()
    message = str(err.value)
    assert "host 127.0.0.1, port 1, database test" in message
    assert err.value.transient
    assert [e.state for e in events].count("retrying") == 2


def test_wrong_password_is_refused_and_masked(target, mysql_url, tmp_path):
    _db, _url, table = target
    bad = mysql_url.replace("root@", f"root:{SECRET}@")
    with pytest.raises(StoreError) as err:
        load(tmp_path, bad, table, {"id": [5]}, mode="append")
    message = str(err.value)
    assert SECRET not in message and "root:***@" in message
    assert "Access denied" in message and "user and password" in message
    assert not err.value.transient
    assert SECRET not in SQLStore(table, connection=bad).describe()


def test_missing_table(target, tmp_path):
    _db, url, table = target
    with pytest.raises(HomeError, match=r"table no_such_table_\w+ not found"):
        run(SQLHome(unique("no_such_table"), connection=url), SQLStore(table, connection=url))


def test_query_syntax_error(target, tmp_path):
    _db, url, table = target
    with pytest.raises(HomeError, match=r"(?i)reading the query .* failed: .*syntax"):
        run(
            SQLHome("q", connection=url, query="SELEC id FROM nowhere"),
            SQLStore(table, connection=url),
        )


def test_a_huge_query_with_a_wrong_column_reports_quickly_and_truncated(target, tmp_path):
    """PostgreSQL echoes the query in its error: 300 KB of it took minutes to mask (quadratic)
    and was printed back whole."""
    _db, url, table = target
    literal = "x" * 300_000
    query = f"SELECT '{literal}' AS big, no_such_column FROM {table}"
    start = time.perf_counter()
    with pytest.raises(HomeError, match="no_such_column") as err:
        run(SQLHome("q", connection=url, query=query), SQLStore(table, connection=url))
    assert time.perf_counter() - start < 10
    message = str(err.value)
    assert len(message) < 5000, f"{len(message):,} characters printed back"
    if "xxxxx" in message:  # the server echoed the query (PostgreSQL does)
        assert "characters, truncated)" in message


def test_merge_without_key_is_a_config_error():
    with pytest.raises(ConfigError, match="mode: merge needs `key"):
        SQLStore("t", connection="postgresql://h/db", mode="merge")


def test_key_column_missing_from_the_data(target, tmp_path):
    _db, url, table = target
    with pytest.raises(StoreError, match=r"key column\(s\) id not in the data"):
        load(tmp_path, url, table, {"name": ["x"]}, mode="merge", key=["id"])


def test_duplicate_keys_in_one_batch_for_merge(target, tmp_path):
    _db, url, table = target
    with pytest.raises(StoreError, match=r"duplicate key in the data: \(id=2\) appears 2 times"):
        load(
            tmp_path, url, table, {"id": [2, 3, 2], "name": ["a", "b", "c"]}, mode="merge", key="id"
        )


def test_type_change_under_freeze(target, tmp_path):
    _db, url, table = target
    with pytest.raises(StoreError, match=r"column 'small' is .* but the data has .*freeze"):
        load(
            tmp_path,
            url,
            table,
            {"id": [3], "small": ["not a number"]},
            mode="append",
            schema_policy="freeze",
        )


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("small", pa.array([40000], pa.int32()), r"column 'small'.*40000 not in range"),
        (
            "price",
            pa.array([Decimal("12345.67")], pa.decimal128(7, 2)),
            r"column 'price'.*without loss",
        ),
        (
            "price",
            pa.array([Decimal("1.234")], pa.decimal128(4, 3)),
            r"column 'price'.*without loss",
        ),
        ("code", pa.array(["too long"]), r"column 'code': a value of 8 characters"),
    ],
)
def test_value_that_overflows_the_target_column(target, tmp_path, column, value, message):
    _db, url, table = target
    with pytest.raises(StoreError, match=message):
        load(tmp_path, url, table, {"id": pa.array([3]), column: value}, mode="append")


def test_a_failed_replace_keeps_the_old_table(target, tmp_path):
    _db, url, table = target
    # the second batch overflows after the first was staged: nothing may be published
    with pytest.raises(StoreError, match="column 'small'"):
        run(
            ParquetHome(
                "in",
                path=parquet_file(tmp_path, "in", {"id": [7, 8], "small": [1, 99999]}),
                batch_size=1,
            ),
            SQLStore(table, connection=url),
        )


@pytest.mark.parametrize("bad_batch", [0, 5])
def test_a_value_the_server_changes_fails_the_run_whichever_stream_loads_it(
    mysql_url, tmp_path, bad_batch
):
    """LOAD DATA LOCAL loads a value the server cannot store changed, with a warning (a date
    past 9999 here: Arrow's date32 holds it): any warning fails the run, whichever of the
    parallel LOAD DATA connections met it, and the target keeps its rows."""
    table = unique("warned")
    days = [18_262] * 600  # 2020-01-01
    days[bad_batch * 100 + 42] = 3_650_000  # about the year 11963
    data = {"id": list(range(600)), "d": pa.array(days, pa.int32()).cast(pa.date32())}
    with database(mysql_url, table) as db:
        db.run(f"CREATE TABLE {table} (id INTEGER, d DATE)")
        db.run(f"INSERT INTO {table} VALUES (1, '2026-01-02')")
        with pytest.raises(StoreError, match=r"changed or refused values .*column 'd'"):
            run(
                ParquetHome("in", path=parquet_file(tmp_path, "in", data), batch_size=100),
                SQLStore(table, connection=mysql_url, streams=2),
            )
        assert db.rows(table) == [(1, dt.date(2026, 1, 2))]
        assert not [t for t in db.staging_tables() if table in t], "staging table left behind"


@pytest.mark.parametrize("which", ["mysql", "sqlite"])
def test_merge_into_a_table_without_a_matching_unique_key(request, which, tmp_path):
    # PostgreSQL merges with MERGE, which needs no unique index; these need one
    url = (
        f"sqlite:///{tmp_path / 'm.db'}"
        if which == "sqlite"
        else request.getfixturevalue("mysql_url")
    )
    table = unique("nokey")
    with database(url, table) as db:
        db.run(f"CREATE TABLE {table} (id INTEGER, name TEXT)")
        db.run(f"INSERT INTO {table} VALUES (1, 'one')")
        with pytest.raises(StoreError, match=r"needs a primary key or unique index"):
            load(tmp_path, url, table, {"id": [1], "name": ["x"]}, mode="merge", key="id")
        assert db.rows(table) == [(1, "one")]
