"""Types across databases, through a parquet lake, as a chain of real flows: every value the
source accepts arrives and comes back unchanged, or the flow fails naming the column and what
to do (docs/sql.md, "Across databases")."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.parquet as pq

from tests.conftest import run_cli
from tests.sqldb import database, unique

# PostgreSQL -> parquet -> MariaDB -> parquet -> PostgreSQL.
CHAIN = """
flows:
  pg_to_lake: {{home: {{type: sql, table: {src}}}, store: lake/pg}}
  lake_to_my:
    home: lake/pg
    store: {{type: sql, connection: "${{MY_URL}}", table: {mid}}}
    options: {{depends_on: pg_to_lake}}
  my_to_lake:
    home: {{type: sql, connection: "${{MY_URL}}", table: {mid}}}
    store: lake/my
    options: {{depends_on: lake_to_my}}
  lake_to_pg:
    home: lake/my
    store: {{type: sql, table: {back}}}
    options: {{depends_on: my_to_lake}}
"""

UUID = "123e4567-e89b-12d3-a456-426614174000"

# Each PostgreSQL column as text, the way both ends are compared.
PG_COLUMNS = "id, u::text, t::text, iv::text, mood::text, bits::text, vb::text, ttz::text, ip::text"


def test_postgres_values_survive_mariadb_and_back(
    tmp_path: Path, postgres_url: str, mysql_url: str
) -> None:
    src, mid, back, mood = unique("xsrc"), unique("xmid"), unique("xback"), unique("mood")
    (tmp_path / "flows.yml").write_text(CHAIN.format(src=src, mid=mid, back=back))
    env = {"DATABASE_URL": postgres_url, "MY_URL": mysql_url}
    with database(postgres_url, src, back) as pg, database(mysql_url, mid) as my:
        pg.run(f"CREATE TYPE {mood} AS ENUM ('sad', 'ok', 'happy')")
        try:
            pg.run(
                f"CREATE TABLE {src} AS SELECT g AS id,"
                " md5(g::text)::uuid AS u,"  # not RFC 4122 variants: MariaDB's UUID refuses them
                " time '12:34:56.789012' + g * interval '1 second' AS t,"
                " g * interval '1 day 2 hours 3.5 seconds' AS iv,"
                f" (array['sad', 'ok', 'happy'])[1 + g % 3]::{mood} AS mood,"
                " (g % 256)::bit(8) AS bits, (g::bit(12))::varbit AS vb,"
                " timetz '12:00:00+02' AS ttz, ('10.0.0.' || g % 250)::inet AS ip"
                " FROM generate_series(1, 2000) g"
            )
            pg.run(f"INSERT INTO {src} (id) VALUES (0)")  # NULLs everywhere
            result = run_cli("run", "flows.yml", cwd=tmp_path, env=env)
            assert result.returncode == 0, result.stdout + result.stderr
            # MariaDB holds every uuid, in a column it reads back as uuid.
            assert my.run(f"SELECT count(u) FROM {mid}") == [(2000,)]
            created = my.run(f"SHOW CREATE TABLE {mid}")[0][1]
            assert "'hygge:uuid'" in created, created
            query = f"SELECT {PG_COLUMNS} FROM {{}} ORDER BY id"
            assert pg.run(query.format(back)) == pg.run(query.format(src))
            assert pg.run(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
                f" WHERE attrelid = '{back}'::regclass AND attname = 'u'"
            ) == [("uuid",)]
        finally:
            pg.drop(src, back)
            pg.run(f"DROP TYPE IF EXISTS {mood}")


MY_TO_PG = """
flows:
  my_to_lake: {{home: {{type: sql, connection: "${{MY_URL}}", table: {src}}}, store: lake/my}}
  lake_to_pg:
    home: lake/my
    store: {{type: sql, table: {dst}}}
    options: {{depends_on: my_to_lake}}
"""


def test_mariadb_values_survive_postgres(tmp_path: Path, postgres_url: str, mysql_url: str) -> None:
    src, dst = unique("xmy"), unique("xpg")
    (tmp_path / "flows.yml").write_text(MY_TO_PG.format(src=src, dst=dst))
    env = {"DATABASE_URL": postgres_url, "MY_URL": mysql_url}
    with database(mysql_url, src) as my, database(postgres_url, dst) as pg:
        my.run(
            f"CREATE TABLE {src} (id int PRIMARY KEY, ub bigint unsigned, ui int unsigned,"
            " ut tinyint unsigned, b bit(8), e enum('sad','ok','happy'), s set('a','b','c'),"
            " t time(6), y year, u uuid)"
        )
        my.run(
            f"INSERT INTO {src} VALUES"
            " (1, 18446744073709551615, 4294967295, 255, b'10000001', 'ok', 'a,c',"
            f"  '23:59:59.999999', 2026, '{UUID}'),"
            " (2, 0, 0, 0, b'0', 'sad', '', '00:00:00', 1999, NULL),"
            " (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
        )
        result = run_cli("run", "flows.yml", cwd=tmp_path, env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert pg.run(
            f"SELECT id, ub::text, ui, ut, b, e, s, t::text, y, u::text FROM {dst} ORDER BY id"
        ) == [
            (
                1,
                "18446744073709551615",
                4294967295,
                255,
                129,
                "ok",
                "a,c",
                "23:59:59.999999",
                2026,
                UUID,
            ),
            (2, "0", 0, 0, 0, "sad", "", "00:00:00", 1999, None),
            (3, None, None, None, None, None, None, None, None, None),
        ]


def test_values_without_an_exact_match_are_refused_with_what_to_do(
    tmp_path: Path, postgres_url: str, mysql_url: str
) -> None:
    zero, hours = unique("xzero"), unique("xtime")
    (tmp_path / "zero.yml").write_text(
        f'flows:\n  z: {{home: {{type: sql, connection: "{mysql_url}", table: {zero}}},'
        " store: lake/z}\n"
        f'  h: {{home: {{type: sql, connection: "{mysql_url}", table: {hours}}},'
        " store: lake/h}\n"
        f'  q: {{home: {{type: sql, connection: "{postgres_url}",'
        ' query: "SELECT 5::bit(4) AS flags"}, store: lake/q}\n'
    )
    with database(mysql_url, zero, hours) as my:
        my.run("SET SESSION sql_mode = ''")
        my.run(f"CREATE TABLE {zero} (id int, d date)")
        my.run(f"INSERT INTO {zero} VALUES (1, '2026-01-02'), (2, '0000-00-00')")
        my.run(f"CREATE TABLE {hours} (id int, t time)")
        my.run(f"INSERT INTO {hours} VALUES (1, '838:59:59')")
        result = run_cli("run", "zero.yml", cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in out
    assert "column 'd'" in out and "'0000-00-00'" in out and "NULLIF" in out, out
    assert "column 'flags'" in out and '"flags"::text' in out, out
    assert not list(tmp_path.glob("lake/[zq]/*.parquet"))  # nothing partial published
    # MariaDB's TIME is a duration of up to 838 hours: it arrives exactly, as a duration
    (t,) = pq.read_table(tmp_path / "lake" / "h").column("t").to_pylist()
    assert t == dt.timedelta(hours=838, minutes=59, seconds=59)


def test_postgres_infinity_is_refused_naming_column_and_value(
    tmp_path: Path, postgres_url: str
) -> None:
    """'infinity' has no timestamp or date outside PostgreSQL: it used to arrive as
    290279-12-22 BC (5877612 BC for a date), exit 0."""
    import duckdb

    table = unique("xinf")
    mapped = (
        f"SELECT id, CASE WHEN isfinite(ts) THEN ts END AS ts,"
        f" CASE WHEN isfinite(d) THEN d END AS d FROM {table}"
    )
    (tmp_path / "inf.yml").write_text(
        f'flows:\n  ts: {{home: {{type: sql, connection: "{postgres_url}",'
        f' query: "SELECT id, ts FROM {table}"}}, store: lake/ts}}\n'
        f'  tz: {{home: {{type: sql, connection: "{postgres_url}",'
        f' query: "SELECT id, tz FROM {table}"}}, store: lake/tz}}\n'
        f'  d: {{home: {{type: sql, connection: "{postgres_url}",'
        f' query: "SELECT id, d FROM {table}"}}, store: lake/d}}\n'
        f'  mapped: {{home: {{type: sql, connection: "{postgres_url}",'
        f' query: "{mapped}"}}, store: lake/mapped}}\n'
    )
    with database(postgres_url, table) as pg:
        pg.run(f"CREATE TABLE {table} (id int, ts timestamp, tz timestamptz, d date)")
        pg.run(
            f"INSERT INTO {table} VALUES (1, '2020-01-01', '2020-01-01', '2020-01-01'),"
            " (2, 'infinity', '-infinity', '-infinity'), (3, NULL, NULL, 'infinity')"
        )
        expected = {"ts": "'infinity'", "tz": "'-infinity'", "d": "'infinity' and '-infinity'"}
        for flow, value in expected.items():
            result = run_cli("run", "inf.yml", "--flow", flow, cwd=tmp_path)
            out = result.stdout + result.stderr
            assert result.returncode != 0 and "Traceback" not in out, out
            assert f"column '{flow}' holds {value}" in out and "isfinite" in out, out
            assert not list(tmp_path.glob(f"lake/{flow}/*.parquet"))  # nothing written
        # the documented mapping (a query) moves the rest exactly
        result = run_cli("run", "inf.yml", "--flow", "mapped", cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
    got = duckdb.sql(
        f"SELECT id, ts::text, d::text FROM '{tmp_path}/lake/mapped/*.parquet' ORDER BY id"
    ).fetchall()
    assert got == [(1, "2020-01-01 00:00:00", "2020-01-01"), (2, None, None), (3, None, None)]
