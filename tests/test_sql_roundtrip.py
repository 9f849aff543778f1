"""Every type, every value: PostgreSQL -> parquet -> MariaDB -> parquet -> PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hygge import Flow, ParquetHome, ParquetStore, SQLHome, SQLStore
from tests.checks import fingerprint
from tests.sqldb import database, unique

COLUMNS = """
    i2 smallint, i4 integer, i8 bigint, n numeric(12,3), nbig numeric(38,10), f4 real,
    f8 double precision, s text, v varchar(20), b boolean, d date, tm time, ts timestamp,
    tz timestamptz, by bytea, u uuid, j json, jb jsonb, "order" integer, "a""b" text,
    nu numeric, nw numeric(50,2)
"""
ROWS = """
    (-32768, 2147483647, -9223372036854775808, 123456789.123,
     1234567890123456789012345678.0123456789, 1.5, 0.1,
     E'h\u00e9llo \u2603 \U0001f600 \\t tab\\nnewline \\\\ back \\r cr', 'x', true, '0001-01-01',
     '23:59:59.999999', '2020-02-29 12:34:56.789012', '1999-12-31 23:59:59.000001+05',
     '\\x00ff10', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2], "\u00fc": "\u2603"}',
     '{"b": null}', 1, 'q"uote', 1.5, 123456789012345678901234567890123456789012345678.12),
    (null, null, null, null, null, null, null, null, null, null, null, null, null, null, null,
     null, null, null, null, null, null, null),
    (32767, -2147483648, 9223372036854775807, -0.001, 0, -3.4e38, 1e308, '', '', false,
     '9999-12-31', '00:00:00', '1970-01-01 00:00:00', '2038-01-19 03:14:08+00', '\\x',
     '00000000-0000-0000-0000-000000000000', '[]', '{}', 2, 'NULL',
     -0.000000000000000000000000000000000000000000001, 0),
    (0, 0, 0, 0.5, -99999999999999999999999999.9999999999, 'NaN', '-Infinity', '\\N', 'null',
     true, '2000-01-01', '12:00:00.5', '2262-04-11 23:47:16.854775', '1677-09-21 00:12:44+00',
     '\\x5c4e', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '"str"', '3', 3, '\\', 'NaN', -1)
"""
# MariaDB has no NaN/infinity: the last row keeps them out of the MariaDB leg.
COMPARED = (
    'i2, i4, i8, n, nbig, f4, f8, s, v, b, d, tm, ts, tz, by, u, j::jsonb, jb::jsonb, "order",'
    ' "a""b", nu, nw'
)


def test_every_type_survives_postgres_parquet_mariadb_parquet_postgres(
    postgres_url: str, mysql_url: str, tmp_path: Path
):
    table, back = unique("rt"), unique("rt_back")
    with database(postgres_url, table, back) as pg, database(mysql_url, table) as my:
        pg.run(f"CREATE TABLE {table} ({COLUMNS})")
        pg.run(f"INSERT INTO {table} VALUES {ROWS}")
        pg.run(f'DELETE FROM {table} WHERE "order" = 3')  # NaN row: PostgreSQL-only below
        lake1, lake2 = tmp_path / "one", tmp_path / "two"

        Flow(SQLHome(table, connection=postgres_url), ParquetStore("one", path=str(lake1))).run()
        Flow(ParquetHome("one", path=str(lake1)), SQLStore(table, connection=mysql_url)).run()
        Flow(SQLHome(table, connection=mysql_url), ParquetStore("two", path=str(lake2))).run()
        Flow(ParquetHome("two", path=str(lake2)), SQLStore(back, connection=postgres_url)).run()

        first, second = pq.read_table(lake1), pq.read_table(lake2)
        assert first.num_rows == second.num_rows == 3
        assert first.schema == second.schema
        assert first.sort_by("order").to_pylist() == second.sort_by("order").to_pylist()

        # content, compared by PostgreSQL itself, both ways round
        assert pg.run(f"SELECT {COMPARED} FROM {table} EXCEPT SELECT {COMPARED} FROM {back}") == []
        assert pg.run(f"SELECT {COMPARED} FROM {back} EXCEPT SELECT {COMPARED} FROM {table}") == []
        assert pg.run(f"SELECT count(*) FROM {back}") == [(3,)]
        types = dict(
            pg.run(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                f"WHERE attrelid = '{back}'::regclass AND attnum > 0"
            )
        )
        assert types["i2"] == "smallint" and types["i8"] == "bigint"
        assert types["n"] == "numeric(12,3)" and types["nbig"] == "numeric(38,10)"
        assert types["tz"] == "timestamp(6) with time zone" and types["u"] == "uuid"
        assert types["jb"] == "jsonb" and types["by"] == "bytea" and types["b"] == "boolean"
        # JSON text is kept byte for byte through MariaDB (a json column there)
        assert my.run(f"SELECT j FROM {table} WHERE `order` = 1") == [
            ('{"a": [1, 2], "\u00fc": "\u2603"}',)
        ]
        assert not [t for t in pg.staging_tables() + my.staging_tables() if table in t]


def test_postgres_to_postgres_keeps_nan_infinity_and_extreme_timestamps(
    postgres_url: str, tmp_path: Path
):
    table, back = unique("rt"), unique("rt_back")
    with database(postgres_url, table, back) as pg:
        pg.run(f"CREATE TABLE {table} ({COLUMNS})")
        pg.run(f"INSERT INTO {table} VALUES {ROWS}")
        Flow(SQLHome(table, connection=postgres_url), SQLStore(back, connection=postgres_url)).run()
        assert pg.run(f"SELECT {COMPARED} FROM {table} EXCEPT SELECT {COMPARED} FROM {back}") == []
        assert pg.run(f"SELECT {COMPARED} FROM {back} EXCEPT SELECT {COMPARED} FROM {table}") == []
        assert pg.run(f"SELECT count(*) FROM {back}") == [(4,)]


@pytest.mark.parametrize("service", ["postgres", "mysql"])
@pytest.mark.parametrize(
    "query",
    [
        "SELECT id, name FROM {t} WHERE id > 1 -- only ids above one",
        "SELECT id, name FROM {t} WHERE id > 1;  ",
        "SELECT id, name FROM {t}\n-- a comment line\nWHERE id > 1 /* block */ -- last;",
    ],
)
def test_a_query_ending_in_a_comment_or_semicolon_is_read_and_checked(
    request, service: str, query: str, tmp_path: Path
):
    url = request.getfixturevalue(f"{service}_url")
    table = unique("q")
    with database(url, table) as db:
        db.run(f"CREATE TABLE {table} (id INTEGER, name VARCHAR(20))")
        db.run(f"INSERT INTO {table} VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        home = SQLHome("q", connection=url, query=query.format(t=table))
        asyncio.run(home.check())  # the database parses the wrapped query
        lake = tmp_path / "lake"
        Flow(home, ParquetStore("q", path=str(lake))).run()
        assert fingerprint(lake) == fingerprint_of([(2, "b"), (3, "c")])
        incremental = SQLHome("q", connection=url, query=query.format(t=table), cursor="id")
        asyncio.run(incremental.check())  # the cursor probe and filter wrap it too
        out = tmp_path / "inc"
        Flow(incremental, ParquetStore("i", path=str(out)), incremental=True).run()
        assert fingerprint(out) == fingerprint_of([(2, "b"), (3, "c")])


def fingerprint_of(rows: list[tuple[int, str]]) -> tuple[int, int]:
    """What `fingerprint` gives for a file holding `rows` (id int32, name text)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "expected.parquet"
        ids, names = zip(*rows, strict=True)
        pq.write_table(pa.table({"id": pa.array(ids, pa.int32()), "name": list(names)}), path)
        return fingerprint(path)
