"""The MariaDB/MySQL home on the real local MariaDB: every type exact on both read paths
(connectorx and the PyMySQL fallback), zero dates refused by name, query homes, incremental
reads with lag, a connection killed mid-read and retried, and URLs with a password."""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hygge import Coordinator, Flow, ParquetHome, ParquetStore, SQLHome, SQLStore, Store
from hygge.errors import HyggeError
from hygge.sql import mysql_arrow
from tests.sqldb import Db, database, unique

UTC = dt.UTC
COLUMNS = """
    id int, ti tinyint, tiu tinyint unsigned, si smallint, siu smallint unsigned,
    mi mediumint, miu mediumint unsigned, i int, iu int unsigned, bi bigint,
    biu bigint unsigned, b1 tinyint(1), d10 decimal(10,2), d18 decimal(18,3) unsigned,
    d28 decimal(28,14),
    d38 decimal(38,10), d65 decimal(65,30), f float, dbl double, dt date, dtt datetime(6),
    ts timestamp(6) NULL, tm time(6), yr year, bt bit(10), b64 bit(64), en enum('a','b','ü'),
    st set('x','y','z'), js json, bn binary(4), vb varbinary(10), bl blob, ch char(5),
    vc varchar(20), tx text
"""
ROWS = """
    (1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
     -9223372036854775808, 18446744073709551615, 1, -12345678.91, 999999999999999.999,
     12345678901234.56789012345678,
     1234567890123456789012345678.0123456789,
     12345678901234567890123456789012345.123456789012345678901234567891, 3.25,
     1.0000000000000002, '1000-01-01', '9999-12-31 23:59:59.999999',
     '2038-01-19 03:14:07.999999', '-838:59:59.000000', 2155, b'1010101010',
     b'1111111111111111111111111111111111111111111111111111111111111111', 'ü', 'x,z',
     '{"a": [1, 2], "ü": "😀"}', x'00ff0001', x'deadbeef', x'005c4e0a',
     'ab😀', 'héllo 😀 \\t', '𝄞 text\\nline'),
    (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL),
    (3, 127, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807,
     9223372036854775808, 0, 0.01, 0, -0.00000000000001, -0.0000000001,
     -99999999999999999999999999999999999.999999999999999999999999999999, -1.5e38, -1e308,
     '2024-02-29', '1970-01-01 00:00:00.000001', '1970-01-01 00:00:01.000000',
     '838:59:59.500000', 1901, b'0', b'0', 'a', '', '[]', x'00000000', x'', x'',
     '', '', '')
"""
D = Decimal
EXPECTED = {
    "id": [1, 2, 3],
    "ti": [-128, None, 127],
    "tiu": [255, None, 0],
    "si": [-32768, None, 32767],
    "siu": [65535, None, 0],
    "mi": [-8388608, None, 8388607],
    "miu": [16777215, None, 0],
    "i": [-(2**31), None, 2**31 - 1],
    "iu": [2**32 - 1, None, 0],
    "bi": [-(2**63), None, 2**63 - 1],
    "biu": [2**64 - 1, None, 2**63],
    "b1": [True, None, False],
    "d10": [D("-12345678.91"), None, D("0.01")],
    "d18": [D("999999999999999.999"), None, D("0.000")],
    "d28": [D("12345678901234.56789012345678"), None, D("-0.00000000000001")],
    "d38": [D("1234567890123456789012345678.0123456789"), None, D("-0.0000000001")],
    # wider than decimal128: exact text (hygge's numeric type), see docs/sql.md
    "d65": [
        "12345678901234567890123456789012345.123456789012345678901234567891",
        None,
        "-99999999999999999999999999999999999.999999999999999999999999999999",
    ],
    "f": [3.25, None, float(pa.scalar(-1.5e38, pa.float32()).as_py())],
    "dbl": [1.0000000000000002, None, -1e308],
    "dt": [dt.date(1000, 1, 1), None, dt.date(2024, 2, 29)],
    "dtt": [
        dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
        None,
        dt.datetime(1970, 1, 1, 0, 0, 0, 1),
    ],
    "ts": [
        dt.datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=UTC),
        None,
        dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
    ],
    "tm": [
        -dt.timedelta(hours=838, minutes=59, seconds=59),
        None,
        dt.timedelta(hours=838, minutes=59, seconds=59, microseconds=500000),
    ],
    "yr": [2155, None, 1901],
    "bt": [0b1010101010, None, 0],
    "b64": [2**64 - 1, None, 0],
    "en": ["ü", None, "a"],
    "st": ["x,z", None, ""],
    "js": ['{"a": [1, 2], "ü": "😀"}', None, "[]"],
    "bn": [b"\x00\xff\x00\x01", None, b"\x00\x00\x00\x00"],
    "vb": [b"\xde\xad\xbe\xef", None, b""],
    "bl": [b"\x00\\N\n", None, b""],
    "ch": ["ab😀", None, ""],
    "vc": ["héllo 😀 \t", None, ""],
    "tx": ["𝄞 text\nline", None, ""],
}
TYPES = {
    "biu": pa.uint64(),
    "b1": pa.bool_(),
    "d10": pa.decimal128(10, 2),
    "d18": pa.decimal128(18, 3),
    "d28": pa.decimal128(28, 14),
    "d38": pa.decimal128(38, 10),
    "f": pa.float32(),
    "ts": pa.timestamp("us", "UTC"),
    "tm": pa.duration("us"),
    "b64": pa.uint64(),
    "bl": pa.large_binary(),
}


@pytest.fixture(params=["connectorx", "pymysql"])
def read_path(request, monkeypatch, caplog) -> str:
    """Each test runs on the fast path and again on the fallback path."""
    if request.param == "pymysql":
        monkeypatch.setattr(mysql_arrow, "available", lambda: False)
    caplog.set_level(logging.INFO, logger="hygge.sql.mysql")
    return request.param


def ran_through(caplog, path: str) -> bool:
    want = "through connectorx" if path == "connectorx" else "through PyMySQL"
    return any(want in r.getMessage() for r in caplog.records)


def every_type_table(db: Db, table: str) -> None:
    db.run("SET time_zone = '+00:00'")
    db.run(f"CREATE TABLE {table} ({COLUMNS}) CHARACTER SET utf8mb4")
    db.run(f"INSERT INTO {table} VALUES {ROWS}")


def test_every_type_reads_exactly(mysql_url: str, tmp_path: Path, read_path: str, caplog):
    table = unique("mytypes")
    with database(mysql_url, table) as db:
        every_type_table(db, table)
        lake = tmp_path / "lake"
        Flow(
            SQLHome(table, connection=mysql_url, batch_size=2), ParquetStore("l", path=str(lake))
        ).run()
        assert ran_through(caplog, read_path)
        got = pq.read_table(lake).sort_by("id")  # read back by pyarrow, not hygge
        for name, values in EXPECTED.items():
            column = got.column(name)
            storage = column.combine_chunks()
            if isinstance(storage.type, pa.BaseExtensionType):
                storage = storage.storage
            assert storage.to_pylist() == values, name
            if name in TYPES:
                assert column.type == TYPES[name], name
        # and the database agrees on the values carried as text
        for (text,) in db.run(f"SELECT CAST(d65 AS CHAR) FROM {table} WHERE d65 IS NOT NULL"):
            assert text in EXPECTED["d65"]


def test_zero_dates_are_an_error_naming_the_column(mysql_url: str, read_path: str):
    table = unique("myzero")
    with database(mysql_url, table) as db:
        db.run(f"CREATE TABLE {table} (id int, d date, n varchar(3))")
        db.run("SET SESSION sql_mode = ''")
        db.run(f"INSERT INTO {table} VALUES (1, '2024-01-01', 'ok'), (2, '0000-00-00', 'z')")
        with pytest.raises(HyggeError, match=r"column.*'?\bd\b") as caught:
            Flow(SQLHome(table, connection=mysql_url), _Sink("s")).run()
        assert "0000-00-00" in str(caught.value) or "date32" in str(caught.value)
        # the documented way out: a query that maps zero dates to NULL
        sink = _Sink("s2")
        query = f"SELECT id, NULLIF(d, '0000-00-00') AS d FROM {table} ORDER BY id"
        Flow(SQLHome("q", query=query, connection=mysql_url), sink).run()
        assert sink.rows() == [(1, dt.date(2024, 1, 1)), (2, None)]


def test_query_home_types_its_result(mysql_url: str, read_path: str, caplog):
    table = unique("myquery")
    with database(mysql_url, table) as db:
        db.run(
            f"CREATE TABLE {table} (id bigint unsigned, price decimal(20,4), a time, b time,"
            " name varchar(10)) CHARACTER SET utf8mb4"
        )
        db.run(
            f"INSERT INTO {table} VALUES (18446744073709551615, 1234567890123456.7891, "
            "'10:00:00', '-30:00:00', 'x😀'), (1, NULL, '00:00:01', '00:00:00', NULL)"
        )
        query = (
            f"SELECT id, price * 2 AS p2, TIMEDIFF(a, b) AS span, CONCAT(name, '!') AS n, "
            f"b'101' + 0 AS five FROM {table}"
        )
        sink = _Sink("s")
        Flow(SQLHome("q", query=query, connection=mysql_url), sink).run()
        assert ran_through(caplog, read_path)
        assert sink.rows() == [
            (1, None, dt.timedelta(seconds=1), None, 5),
            (2**64 - 1, D("2469135780246913.5782"), dt.timedelta(hours=40), "x😀!", 5),
        ]


def test_a_query_ordering_by_a_cast_column_keeps_its_order(mysql_url: str, read_path: str, caplog):
    """The fast path casts a wide decimal to text. A query in the very form of hygge's own
    table read but with ORDER BY must not have the cast in its select list, where ORDER BY
    would sort by the text alias ('10.00' < '100.00' < '9.00'): it reads through a derived
    table, and the rows come in the query's order, by value."""
    table = unique("myorder")
    with database(mysql_url, table) as db:
        db.run(f"CREATE TABLE {table} (`id` int, `wide` decimal(30,2), `price` decimal(15,2))")
        db.run(f"INSERT INTO {table} VALUES (1, 100, 1.5), (2, 9, 22.25), (3, 10, 3)")
        sink = _Sink("s")
        query = f"SELECT `wide`, `price` FROM `{table}` ORDER BY `wide`"
        Flow(SQLHome("q", query=query, connection=mysql_url), sink).run()
        got = [row for df in sink.frames for row in df.iter_rows()]  # in the order read
        assert got == [(D("9.00"), D("22.25")), (D("10.00"), D("3.00")), (D("100.00"), D("1.50"))]
        assert ran_through(caplog, read_path)
        # any other query that orders its rows and needs a cast reads through PyMySQL (a
        # cast around it, in a derived table, would lose its ORDER BY), and says why
        caplog.clear()
        sink = _Sink("s2")
        query = f"SELECT `wide` + 1 AS w, `id` FROM `{table}` ORDER BY w DESC"
        Flow(SQLHome("q2", query=query, connection=mysql_url), sink).run()
        got = [row for df in sink.frames for row in df.iter_rows()]
        assert got == [(D("101.00"), 1), (D("11.00"), 3), (D("10.00"), 2)]
        assert ran_through(caplog, "pymysql")
        if read_path == "connectorx":
            assert any("orders its rows (ORDER BY)" in r.getMessage() for r in caplog.records)


def test_spatial_columns_fall_back_to_pymysql(mysql_url: str, caplog):
    caplog.set_level(logging.INFO, logger="hygge.sql.mysql")
    table = unique("mygeo")
    with database(mysql_url, table) as db:
        db.run(f"CREATE TABLE {table} (id int, g point)")
        db.run(f"INSERT INTO {table} VALUES (1, POINT(1, 2))")
        sink = _Sink("s")
        Flow(SQLHome(table, connection=mysql_url, columns=["id"]), sink).run()
        assert ran_through(caplog, "connectorx")  # only `id` is read: fast
        caplog.clear()
        sink = _Sink("s2")
        Flow(SQLHome(table, connection=mysql_url), sink).run()
        assert ran_through(caplog, "pymysql")
        assert any("column 'g' is point" in r.getMessage() for r in caplog.records)
        [(ident, point)] = sink.rows()
        assert ident == 1
        assert point == db.run(f"SELECT g FROM {table}")[0][0]  # the server's bytes, as they are


def test_incremental_with_lag(mysql_url: str, tmp_path: Path, read_path: str, caplog):
    table = unique("myinc")
    base = dt.datetime(2024, 5, 1, 12, 0, 0)
    with database(mysql_url, table) as db:
        db.run(f"CREATE TABLE {table} (id int PRIMARY KEY, v varchar(20), at datetime(6))")

        def insert(ids: range, start: dt.datetime, v: str) -> None:
            rows = [(i, f"{v}{i}", start + dt.timedelta(seconds=i)) for i in ids]
            db.conn.cursor().executemany(f"INSERT INTO {table} VALUES (%s, %s, %s)", rows)

        (tmp_path / "flows.yml").write_text(
            "flows:\n  inc:\n"
            f"    home: {{type: sql, connection: '{mysql_url}', table: {table}, cursor: at,"
            " lag: 10m, batch_size: 50}\n"
            "    store: {path: lake/out}\n"
            "    options: {incremental: true}\n"
        )
        insert(range(1, 201), base, "a")
        run_ok(tmp_path)
        top = base + dt.timedelta(seconds=200)
        insert(range(201, 211), top + dt.timedelta(minutes=1), "new")
        insert(range(900, 903), top - dt.timedelta(minutes=3) - dt.timedelta(seconds=900), "late")
        insert(range(950, 951), top - dt.timedelta(hours=2) - dt.timedelta(seconds=950), "old")
        run_ok(tmp_path)
        assert ran_through(caplog, read_path)
        got = pq.read_table(tmp_path / "lake" / "out").to_pydict()
        ids = sorted(got["id"])
        # every row once; the late rows inside the lag window arrive; the one below it does not,
        # which only the pushed-down `at >= mark - lag` can do (it is new to the saved window)
        assert ids == [*range(1, 211), 900, 901, 902]


def run_ok(project: Path) -> None:
    result = Coordinator(project / "flows.yml").run()
    assert result.ok, {n: r.error for n, r in result.results.items()}


def test_a_killed_connection_is_retried(mysql_url: str, tmp_path: Path, caplog):
    caplog.set_level(logging.INFO)
    table = unique("mykill")
    marker = uuid.uuid4().hex[:12]
    with database(mysql_url, table) as db:
        db.run(f"CREATE TABLE {table} (id int, pad varchar(200))")
        db.run(f"INSERT INTO {table} SELECT seq, REPEAT('x', 200) FROM seq_1_to_300000")
        # the server pauses half way through the rows: the reader is killed mid-read then
        query = f"SELECT /* {marker} */ id, pad FROM {table} WHERE IF(id = 150000, SLEEP(1), 0) = 0"
        killed: list[int] = []

        def kill_first_reader() -> None:
            watcher = Db(mysql_url)
            deadline = time.monotonic() + 60
            while not killed and time.monotonic() < deadline:
                rows = watcher.run(  # sending rows, or blocked on the reader: mid-read
                    "SELECT ID FROM information_schema.PROCESSLIST "
                    f"WHERE INFO LIKE '%%{marker}%%' AND INFO NOT LIKE '%%LIMIT 0%%' "
                    "AND STATE IN ('User sleep', 'Writing to net', 'Sending data')"
                )
                if rows:
                    watcher.run(f"KILL {rows[0][0]}")
                    killed.append(rows[0][0])
                time.sleep(0.02)
            watcher.close()

        killer = threading.Thread(target=kill_first_reader)
        killer.start()
        lake = tmp_path / "lake"
        flow = Flow(
            SQLHome("q", query=query, connection=mysql_url, batch_size=10_000),
            ParquetStore("l", path=str(lake)),
            retries=2,
            retry_delay=0.1,
        )
        flow.run()
        killer.join()
        assert killed, "the reader was never seen"
        got = pq.read_table(lake)
        assert got.num_rows == 300_000
        assert sorted(got.column("id").to_pylist()) == list(range(1, 300_001))
        assert any("retry" in r.getMessage().lower() for r in caplog.records)


def test_url_forms_and_a_masked_password(mysql_url: str, tmp_path: Path, caplog):
    """mysql://, mysql+pymysql:// and mariadb:// with a password that needs quoting."""
    caplog.set_level(logging.DEBUG)
    user, password = unique("hy"), "p@ss:w/rd%?"
    table = unique("myurl")
    from urllib.parse import quote, urlparse

    u = urlparse(mysql_url)
    root = Db(mysql_url)
    try:
        root.run(f"CREATE USER '{user}'@'%%' IDENTIFIED BY '{password}'")
        root.run(f"GRANT ALL ON {u.path.lstrip('/')}.* TO '{user}'@'%%'")
        root.run(f"CREATE TABLE {table} (id int, d decimal(5,1))")
        root.run(f"INSERT INTO {table} VALUES (1, 2.5)")
        where = f"{quote(user)}:{quote(password, safe='')}@{u.hostname}:{u.port or 3306}{u.path}"
        for scheme in ("mysql", "mysql+pymysql", "mariadb"):
            sink = _Sink(scheme)
            Flow(SQLHome(table, connection=f"{scheme}://{where}"), sink).run()
            assert sink.rows() == [(1, D("2.5"))], scheme
        text = "\n".join(r.getMessage() for r in caplog.records)
        assert quote(password, safe="") not in text and password not in text
        assert "through connectorx" in text
        with pytest.raises(HyggeError) as caught:  # a wrong password: clear, and masked
            Flow(
                SQLHome(table, connection=f"mysql://{user}:wrong-pw@{u.hostname}{u.path}"),
                _Sink("x"),
            ).run()
        assert "wrong-pw" not in str(caught.value) and "***" in str(caught.value)
    finally:
        root.run(f"DROP TABLE IF EXISTS {table}")
        root.run(f"DROP USER IF EXISTS '{user}'@'%%'")
        root.close()


def test_mariadb_parquet_postgres_parquet_mariadb_round_trip(
    mysql_url: str, postgres_url: str, tmp_path: Path
):
    """The types both databases hold, exactly, compared by a checksum in MariaDB."""
    table, back = unique("myrt"), unique("myrt_back")
    columns = """
        id int, ti tinyint, si smallint, i int, bi bigint, iu int unsigned,
        biu bigint unsigned, d10 decimal(10,2), d38 decimal(38,10), f float, dbl double,
        dt date, dtt datetime(6), ts timestamp(6) NULL, b1 tinyint(1), vc varchar(20),
        tx text, bl blob, js json
    """
    rows = """
        (1, -128, -32768, -2147483648, -9223372036854775808, 4294967295,
         18446744073709551615, -12345678.91, 1234567890123456789012345678.0123456789, 3.25,
         1.0000000000000002, '1000-01-01', '9999-12-31 23:59:59.999999',
         '2038-01-19 03:14:07.999999', 1, 'héllo 😀', '𝄞 \\t\\n\\\\', x'005c4e0a',
         '{"a": [1, 2]}'),
        (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
         NULL, NULL, NULL, NULL),
        (3, 127, 32767, 2147483647, 9223372036854775807, 0, 0, 0.01, -0.0000000001, -1.5,
         -1e308, '2024-02-29', '1970-01-01 00:00:00.000001', '1970-01-01 00:00:01', 0, '',
         '', x'', '[]')
    """
    checksum = (
        "SELECT COUNT(*), MD5(GROUP_CONCAT(MD5(CONCAT_WS('|', id, COALESCE(ti, 'N'), "
        "COALESCE(si, 'N'), COALESCE(i, 'N'), COALESCE(bi, 'N'), COALESCE(iu, 'N'), "
        "COALESCE(biu, 'N'), COALESCE(d10, 'N'), COALESCE(d38, 'N'), COALESCE(f, 'N'), "
        "COALESCE(dbl, 'N'), COALESCE(dt, 'N'), COALESCE(dtt, 'N'), COALESCE(ts, 'N'), "
        "COALESCE(b1, 'N'), COALESCE(vc, 'N'), COALESCE(tx, 'N'), COALESCE(HEX(bl), 'N'), "
        "COALESCE(JSON_COMPACT(js), 'N'))) ORDER BY id)) FROM {}"
    )
    with database(mysql_url, table, back) as my, database(postgres_url, table) as _pg:
        my.run("SET time_zone = '+00:00'")
        my.run(f"CREATE TABLE {table} ({columns}) CHARACTER SET utf8mb4")
        my.run(f"INSERT INTO {table} VALUES {rows}")
        one, two = tmp_path / "one", tmp_path / "two"
        Flow(SQLHome(table, connection=mysql_url), ParquetStore("one", path=str(one))).run()
        Flow(ParquetHome("one", path=str(one)), SQLStore(table, connection=postgres_url)).run()
        Flow(SQLHome(table, connection=postgres_url), ParquetStore("two", path=str(two))).run()
        Flow(ParquetHome("two", path=str(two)), SQLStore(back, connection=mysql_url)).run()
        first, second = pq.read_table(one).sort_by("id"), pq.read_table(two).sort_by("id")
        assert first.num_rows == second.num_rows == 3
        for name in first.column_names:  # PostgreSQL widens unsigned types; values stay
            assert first.column(name).to_pylist() == second.column(name).to_pylist(), name
        original = my.run(checksum.format(table))
        assert original == my.run(checksum.format(back))
        assert original[0][0] == 3


class _Sink(Store):
    """Keeps the rows it is given (as tuples), to compare with what the database holds."""

    type_name = "test_mysql_sink"

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.frames: list = []

    async def write(self, df) -> None:
        self.frames.append(df)

    def rows(self) -> list[tuple]:
        out = [row for df in self.frames for row in df.iter_rows()]
        return sorted(out, key=lambda r: r[0])


def peak_rss_mb(project: Path, flow: str) -> float:
    """`hygge run` as its own process; its peak RSS as the kernel counted it (wait4)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    process = subprocess.Popen(
        [sys.executable, "-m", "hygge", "run", "flows.yml", "--flow", flow],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0, process.stderr.read() if process.stderr else ""
    return usage.ru_maxrss / 1024


def test_the_flow_queue_leaves_out_what_connectorx_reads_ahead(mysql_url: str, read_path: str):
    """The relay lets connectorx read `mysql_arrow.AHEAD` batches ahead, and one more is
    regrouped from its pieces; the flow's queue holds that many fewer (`Home.reads_ahead`).
    The PyMySQL path reads nothing ahead."""
    home = SQLHome("t", connection=mysql_url)
    assert home.reads_ahead == (mysql_arrow.AHEAD + 1 if read_path == "connectorx" else 0)
    assert SQLHome("t", connection="postgresql://u@localhost/db").reads_ahead == 0


@pytest.mark.slow
def test_memory_is_bounded_by_the_batch_not_the_table(mysql_url: str, tmp_path: Path):
    """1.2 M rows (about 200 MB as Arrow) need no more memory than 200 k rows: a reader that
    kept the result would grow by the table's size. (The 6 M vs 1 M rows figure of lineitem
    is measured by benchmarks/bench_sql.py, case (d): loading 6 M rows takes minutes.)"""
    big, small = unique("mybig"), unique("mysmall")
    with database(mysql_url, big, small) as db:
        db.run(
            f"CREATE TABLE {big} (id bigint, price decimal(15,2), at datetime(6), "
            "note varchar(200))"
        )
        db.run(
            f"INSERT INTO {big} SELECT seq, seq / 100, '2024-01-01' + INTERVAL seq SECOND, "
            f"CONCAT(REPEAT('x', 100), seq) FROM seq_1_to_1200000"
        )
        db.run(f"CREATE TABLE {small} AS SELECT * FROM {big} WHERE id <= 200000")
        flows = "flows:\n" + "".join(
            f"  {name}:\n"
            f"    home: {{type: sql, connection: '{mysql_url}', table: {table},"
            " batch_size: 20000}\n"
            f"    store: {{path: lake/{name}}}\n"
            for name, table in (("big", big), ("small", small))
        )
        (tmp_path / "flows.yml").write_text(flows)
        small_mb = peak_rss_mb(tmp_path, "small")
        big_mb = peak_rss_mb(tmp_path, "big")
        assert pq.read_metadata(next((tmp_path / "lake" / "big").glob("*.parquet"))).num_rows
        rows = sum(
            pq.read_metadata(f).num_rows for f in (tmp_path / "lake" / "big").glob("*.parquet")
        )
        assert rows == 1_200_000
        assert big_mb <= 1.3 * small_mb, (big_mb, small_mb)


@pytest.mark.parametrize("batch_size", [None, 40_000, 30_000])
def test_batches_regrouped_from_connectorx_pieces_are_exact(
    mysql_url: str, read_path: str, caplog: pytest.LogCaptureFixture, batch_size: int | None
) -> None:
    """connectorx decodes at most `PIECE_ROWS` rows at a time; the home regroups its pieces
    into batches of exactly `batch_size` rows (a piece split across two batches included;
    None: the SQL home's default), every row once, with its exact values."""
    table = unique("mypieces")
    rows = 60_001
    size = batch_size or 50_000  # the default, written out: a change to it must be meant
    assert size > mysql_arrow.PIECE_ROWS  # the case under test
    with database(mysql_url, table) as db:
        db.run(f"CREATE TABLE {table} (id bigint, price decimal(15,2), note varchar(40))")
        db.run(f"INSERT INTO {table} SELECT seq, seq / 100, CONCAT('n', seq) FROM seq_1_to_{rows}")
        sink = _Sink("s")
        given = {} if batch_size is None else {"batch_size": batch_size}
        home = SQLHome(table, connection=mysql_url, **given)
        Flow(home, sink).run()
        assert ran_through(caplog, read_path)
        heights = [df.height for df in sink.frames]
        full, rest = divmod(rows, size)
        assert heights == [size] * full + [rest]
        got = sink.rows()
        assert [r[0] for r in got] == list(range(1, rows + 1))
        assert sum(r[1] for r in got) == sum(Decimal(i) / 100 for i in range(1, rows + 1))
        assert all(r[2] == f"n{r[0]}" for r in got)


def test_a_tinyint1_that_is_not_a_boolean_is_an_error(mysql_url: str, read_path: str):
    table = unique("mybool")
    with database(mysql_url, table) as db:
        db.run(f"CREATE TABLE {table} (id int, flag tinyint(1))")
        db.run(f"INSERT INTO {table} VALUES (1, 1), (2, 5)")
        with pytest.raises(HyggeError, match=r"column 'flag'.*other than 0 or 1"):
            Flow(SQLHome(table, connection=mysql_url), _Sink("s")).run()
        sink = _Sink("s2")  # the way out: read it as the integer it is
        query = f"SELECT id, CAST(flag AS SIGNED) AS flag FROM {table}"
        Flow(SQLHome("q", query=query, connection=mysql_url), sink).run()
        assert sink.rows() == [(1, 1), (2, 5)]


def test_a_row_over_max_allowed_packet_is_read_or_named_never_retried(
    mysql_url: str, tmp_path: Path
) -> None:
    """A 20 MB row (two 10 MB columns; the server's packet limit is 16 MB) failed as "lost
    connection" and was retried 3 times. First in the read, PyMySQL reads it, exactly; after
    rows already read, it is a permanent error saying what it is."""
    from tests.conftest import run_cli

    first, later = unique("bigrow"), unique("bigrow")
    with database(mysql_url, first, later) as my:
        for table, big_id in ((first, 1), (later, 300_000)):  # later: after 200,000 rows
            my.run(f"CREATE TABLE {table} (id int, a longtext, b longtext)")
            small = "seq_2_to_2" if big_id == 1 else "seq_1_to_200000"
            my.run(f"INSERT INTO {table} SELECT seq, 's', 't' FROM {small}")
            my.run(
                f"INSERT INTO {table} SELECT {big_id}, repeat('x', 10485760), repeat('y', 10485760)"
            )
        (tmp_path / "flows.yml").write_text(
            "flows:\n"
            f'  first: {{home: {{type: sql, connection: "{mysql_url}", '
            f'query: "SELECT * FROM {first} ORDER BY id", batch_size: 1}}, store: lake/first}}\n'
            f'  later: {{home: {{type: sql, connection: "{mysql_url}", '
            f'query: "SELECT * FROM {later} ORDER BY id", batch_size: 1000}}, store: lake/later}}\n'
        )
        result = run_cli("run", "flows.yml", "--flow", "first", cwd=tmp_path, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        got = pq.read_table(tmp_path / "lake" / "first").sort_by("id").to_pylist()
        assert [(r["id"], len(r["a"]), len(r["b"])) for r in got] == [
            (1, 10485760, 10485760),
            (2, 1, 1),
        ]
        assert set(got[0]["a"]) == {"x"} and set(got[0]["b"]) == {"y"}
        result = run_cli("run", "flows.yml", "--flow", "later", cwd=tmp_path, timeout=600)
        out = result.stdout + result.stderr
        assert result.returncode != 0 and "Traceback" not in out, out
        assert "larger than max_allowed_packet" in out and "not retried" in out, out
        assert "retry" not in out.replace("not retried", ""), out  # tried once
        assert not (tmp_path / "lake" / "later").exists()


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.slow
def test_connectorx_reads_ahead_of_a_stalled_writer_only_a_window(mysql_url: str):
    """connectorx decodes into an unbounded channel: a writer that stalls would let it
    buffer the whole result (about 150 MB of Arrow here). Through hygge's relay
    (hygge/sql/relay.py) it stops a window (16 MB) ahead of the reader, whatever the table."""
    from hygge.sql.connect import connect
    from hygge.sql.url import parse_url

    table = unique("myahead")
    with database(mysql_url, table) as db:
        db.run(f"CREATE TABLE {table} (id bigint, note varchar(250))")
        db.run(
            f"INSERT INTO {table} SELECT seq, CONCAT(REPEAT('x', 200), seq) FROM seq_1_to_700000"
        )
        session = connect(parse_url(mysql_url, "test"), HyggeError, "test")
        try:
            columns = session.columns(table, None)
            assert columns is not None
            sql = f"SELECT {session.select_list(columns)} FROM {session.qualified(table, None)}"
            stream = session.stream(sql, 20_000, columns)
            rows = next(stream).num_rows  # connectorx runs; the writer now "stalls"
            before, grown, deadline = _rss_mb(), [0.0], time.monotonic() + 120
            while time.monotonic() < deadline:  # until connectorx stops reading
                time.sleep(2)
                grown.append(_rss_mb() - before)
                if grown[-1] - grown[-2] < 1:
                    break
            assert grown[-1] < 60, f"read {grown[-1]:.0f} MB ahead of a stalled writer"
            rows += sum(t.num_rows for t in stream)
            assert rows == 700_000
        finally:
            session.close()
