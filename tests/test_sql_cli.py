"""SQL flows from flows.yml through the real `hygge` command, both ways."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from tests.conftest import run_cli
from tests.sqldb import database, unique

FLOWS = """
homes:
  source:
    type: sql
    connection: ${{PG_URL}}
    options: {{table: "{src}", batch_size: 2}}
flows:
  out:
    home: source
    store: {{type: parquet, path: lake}}
  back:
    home: {{type: parquet, path: lake}}
    store: {{connection: "${{MY_URL}}", table: "{dst}", mode: merge, key: [id]}}
    options: {{depends_on: out}}
  query:
    home:
      type: sql
      connection: "${{MY_URL}}"
      query: "SELECT id, name FROM `{dst}` WHERE id > 1"
    store: {{type: sql, connection: "${{PG_URL}}", table: "{copy}", schema: public}}
    options: {{depends_on: back}}
"""


def test_postgres_to_parquet_to_mariadb_to_postgres_from_yaml(
    postgres_url: str, mysql_url: str, tmp_path: Path
):
    src, dst, copy = unique("cli_src"), unique("cli_dst"), unique("cli_copy")
    with database(postgres_url, src, copy) as pg, database(mysql_url, dst) as my:
        pg.run(f"CREATE TABLE {src} (id bigint, name text, at timestamptz)")
        pg.run(
            f"INSERT INTO {src} VALUES (1, 'a', '2024-01-01 10:00:00.123456+00'), "
            "(2, 'b', NULL), (3, NULL, '1999-12-31 23:59:59+02')"
        )
        flows = tmp_path / "flows.yml"
        flows.write_text(FLOWS.format(src=src, dst=dst, copy=copy))
        env = {"PG_URL": postgres_url, "MY_URL": mysql_url}

        done = run_cli("run", str(flows), env=env)
        assert done.returncode == 0, done.stderr + done.stdout

        lake = pq.read_table(tmp_path / "lake").sort_by("id")
        assert lake.column("name").to_pylist() == ["a", "b", None]
        assert my.rows(dst) == [
            (1, "a", __import__("datetime").datetime(2024, 1, 1, 10, 0, 0, 123456)),
            (2, "b", None),
            (3, None, __import__("datetime").datetime(1999, 12, 31, 21, 59, 59)),
        ]
        assert pg.rows(copy) == [(2, "b"), (3, None)]
        # a second run merges the same rows again: nothing is duplicated
        again = run_cli("run", str(flows), "--flow", "back", env=env)
        assert again.returncode == 0, again.stderr
        assert len(my.rows(dst)) == 3


def test_cli_errors_are_clear_and_hide_the_password(mysql_url: str, tmp_path: Path):
    table = unique("cli_bad")
    flows = tmp_path / "flows.yml"
    bad_url = mysql_url.replace("root@", "root:Hunter2Secret@")
    flows.write_text(
        "flows:\n"
        "  f:\n"
        "    home: {type: parquet, path: in.parquet}\n"
        f"    store: {{type: sql, connection: '{bad_url}', table: {table}}}\n"
        "    options: {retries: 0}\n"
    )
    import pyarrow as pa

    pq.write_table(pa.table({"id": [1]}), tmp_path / "in.parquet")
    done = run_cli("run", str(flows))
    assert done.returncode == 1
    output = done.stdout + done.stderr
    assert "Hunter2Secret" not in output
    assert "Access denied" in output and "root:***@" in output
    assert "Traceback" not in output

    flows.write_text(
        "flows:\n"
        "  f:\n"
        "    home: {type: parquet, path: in.parquet}\n"
        f"    store: {{type: sql, connection: '{mysql_url}', table: {table}, mode: merge}}\n"
    )
    done = run_cli("validate", str(flows))
    assert done.returncode == 2  # flows.yml is wrong
    assert "flows.yml:4" in done.stderr and "mode: merge needs `key" in done.stderr
