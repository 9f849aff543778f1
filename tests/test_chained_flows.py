"""Chained flows: a flow whose home is what an earlier flow of the same file writes (absent
before the run) is typed by that flow's store; validate, --dry-run and run all accept it."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from hygge import config
from tests.checks import fingerprint
from tests.conftest import run_cli
from tests.sqldb import database, unique

ROWS = 20_000


def _issue_file(table: str) -> str:
    """The chain of the issue: PostgreSQL -> lake/t (shorthand) -> MariaDB."""
    return f"""
flows:
  pg_to_lake:   {{home: {{type: sql, table: {table}}}, store: lake/t}}
  lake_to_mysql:
    home: lake/t
    store: {{type: sql, connection: "${{MY_URL}}", table: {table}}}
    options: {{depends_on: [pg_to_lake]}}
"""


def test_postgres_to_parquet_to_mariadb(tmp_path: Path, postgres_url: str, mysql_url: str) -> None:
    table = unique("chain")
    (tmp_path / "flows.yml").write_text(_issue_file(table))
    env = {"DATABASE_URL": postgres_url, "MY_URL": mysql_url}
    with database(postgres_url, table) as pg, database(mysql_url, table) as my:
        pg.run(
            f"CREATE TABLE {table} AS SELECT g::bigint AS id, 'name ' || g AS name,"
            " (g * 1.25)::numeric(12, 2) AS amount,"
            " timestamp '2026-01-01' + g * interval '1 minute' AS at"
            f" FROM generate_series(1, {ROWS}) g"
        )
        assert not (tmp_path / "lake").exists()
        for command in (["validate"], ["run", "--dry-run"]):
            checked = run_cli(*command, "flows.yml", cwd=tmp_path, env=env)
            assert checked.returncode == 0, checked.stdout + checked.stderr
        assert not (tmp_path / "lake").exists() and not my.exists(table)  # nothing moved

        result = run_cli("run", "flows.yml", cwd=tmp_path, env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        query = f"SELECT id, name, amount, at FROM {table} ORDER BY id"
        source, arrived = pg.run(query), my.run(query)
        assert len(arrived) == ROWS and arrived == source  # every value, in both databases


def test_parquet_chain_into_csv(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    frame = pl.DataFrame({"id": range(5_000), "word": [f"w{i % 97}" for i in range(5_000)]})
    frame.write_parquet(data / "words.parquet")
    (tmp_path / "flows.yml").write_text(
        """
flows:
  to_csv:
    home: lake/second
    store: {type: csv, path: out/words}
    options: {depends_on: [second]}
  first:  {home: data/words.parquet, store: lake/first}
  second:
    home: lake/first
    store: lake/second
    options: {depends_on: first}
"""
    )
    for command in (["validate"], ["run", "--dry-run"]):
        checked = run_cli(*command, "flows.yml", cwd=tmp_path)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    # The queue form carries the inferred type: a worker parses one flow, not the whole file.
    raw = config.load(tmp_path / "flows.yml", resolve=False).flows["second"].raw
    assert raw["home"] == {"type": "parquet", "path": "lake/first"}
    spec = config.parse_flow("second", raw, base_dir=tmp_path, env={})
    assert spec.home.type_name == "parquet"
    result = run_cli("run", "flows.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    expected = fingerprint(data / "words.parquet")
    assert fingerprint(tmp_path / "lake" / "second") == expected
    assert list((tmp_path / "out" / "words").glob("*.csv"))
    assert fingerprint(tmp_path / "out" / "words", "id::bigint AS id, word") == fingerprint(
        data / "words.parquet", "id::bigint AS id, word"
    )


def test_a_chain_without_depends_on_is_refused(tmp_path: Path) -> None:
    (tmp_path / "flows.yml").write_text(
        """
flows:
  first:  {home: data/words.parquet, store: lake/first}
  second: {home: lake/first/part-1.parquet, store: lake/second}
"""
    )
    result = run_cli("validate", "flows.yml", cwd=tmp_path)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "flows.yml" in message and "second" in message, message
    assert "reads what flow 'first' writes" in message and "depends_on: first" in message
    assert "Traceback" not in message


def test_validate_checks_a_chained_homes_columns_against_its_upstream(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    pl.DataFrame({"id": [1, 2], "word": ["a", "b"]}).write_parquet(data / "words.parquet")
    body = """
flows:
  first: {home: data/words.parquet, store: lake/first}
  second:
    home: {path: lake/first, columns: [id, %s]}
    store: lake/second
    options: {depends_on: first}
"""
    (tmp_path / "flows.yml").write_text(body % "word")
    good = run_cli("validate", "flows.yml", cwd=tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    (tmp_path / "flows.yml").write_text(body % "wrod")
    bad = run_cli("validate", "flows.yml", cwd=tmp_path)
    out = bad.stdout + bad.stderr
    assert bad.returncode == 1 and "second" in out and "wrod" in out and "'first'" in out, out
    assert "columns flow 'first' writes: id, word" in out and "Traceback" not in out
    assert not (tmp_path / "lake").exists()
