"""Entities discovered from a database's catalog: a PostgreSQL schema of 52 tables of mixed
types -> parquet -> MariaDB in one run, exact per table; tables added and dropped between
runs; incremental entities with a cursor each; a SIGKILL mid-run, then a rerun."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import kill_run_when, run_cli, staging_has_data
from tests.entity_support import (
    fill,
    fingerprint,
    mysql_database,
    parquet_rows,
    pg_schema,
)

TABLES = 52


def write(project: Path, text: str) -> Path:
    project.mkdir(parents=True, exist_ok=True)
    (project / "flows.yml").write_text(text)
    return project


def test_a_schema_of_52_tables_moves_to_parquet_then_mariadb_exactly(
    tmp_path: Path, postgres_url: str, mysql_url: str
) -> None:
    with pg_schema(postgres_url) as (pg, schema), mysql_database(mysql_url) as (my, my_url):
        for i in range(TABLES):
            fill(pg, schema, f"t{i:02d}", i, 40 + 7 * i)
        fill(pg, schema, "tmp_scratch", 0, 5)  # excluded by pattern
        pg.run(f"CREATE VIEW {schema}.v_t00 AS SELECT * FROM {schema}.t00")  # views: on request
        project = write(
            tmp_path,
            f"""
flows:
  crm:
    home: {{type: sql, connection: "${{ENT_PG}}", tables: ["{schema}.*"],
            exclude: ["{schema}.tmp_*"], batch_size: 25}}
    store: {{type: parquet, path: "lake/{{entity}}"}}
  wh:
    home: {{type: parquet, path: "lake/{{entity}}"}}
    store: {{type: sql, connection: "${{ENT_MY}}", table: "{{entity}}"}}
    depends_on: [crm]
""",
        )
        env = {"ENT_PG": postgres_url, "ENT_MY": my_url}
        names = [f"t{i:02d}" for i in range(TABLES)]

        checked = run_cli("validate", "flows.yml", cwd=project, env=env)
        assert checked.returncode == 0, checked.stderr
        assert f"crm: {TABLES} table(s) matching {schema}.* except {schema}.tmp_*" in checked.stdout
        assert f"crm.t07  table {schema}.t07: " in checked.stdout
        assert f"wh: {TABLES} entities written by flow 'crm'" in checked.stdout
        assert "tmp_scratch" not in checked.stdout and "v_t00" not in checked.stdout
        assert not (project / "lake").exists()  # validate moves nothing

        one = run_cli("run", "flows.yml", "--flow", "crm.t03", cwd=project, env=env)
        assert one.returncode == 0, one.stderr
        assert sorted(p.name for p in (project / "lake").iterdir()) == ["_hygge", "t03"]

        done = run_cli("run", "flows.yml", "--concurrency", "4", cwd=project, env=env, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        for name in names:
            assert f"crm.{name}" in done.stdout and f"wh.{name}" in done.stdout
            rows, _ = fingerprint(pg, name, schema)
            assert parquet_rows(project / "lake" / name) == (rows, rows), name
            assert fingerprint(my, name) == fingerprint(pg, name, schema), name
        tables = {r[0] for r in my.run("SHOW TABLES")}
        assert tables == {*names, "_hygge_state"}  # no staging left, no excluded table


def test_a_table_added_is_picked_up_and_a_dropped_one_is_reported(
    tmp_path: Path, postgres_url: str
) -> None:
    with pg_schema(postgres_url) as (pg, schema):
        fill(pg, schema, "orders", 0, 30)
        fill(pg, schema, "items", 1, 20)
        project = write(
            tmp_path,
            f"""
flows:
  crm:
    home: {{type: sql, connection: "{postgres_url}", tables: ["{schema}.*"]}}
    store: lake/crm/{{entity}}
""",
        )
        first = run_cli("run", "flows.yml", cwd=project)
        assert first.returncode == 0, first.stderr
        assert "warning" not in first.stdout

        fill(pg, schema, "refunds", 2, 12)
        second = run_cli("run", "flows.yml", cwd=project)
        assert second.returncode == 0, second.stderr
        assert "crm.refunds" in second.stdout
        assert parquet_rows(project / "lake/crm/refunds") == (12, 12)

        pg.run(f"DROP TABLE {schema}.items")
        planned = run_cli("run", "flows.yml", "--dry-run", cwd=project)
        assert planned.returncode == 0, planned.stderr
        assert "note: crm: entity 'items' was in the last run" in planned.stdout
        third = run_cli("run", "flows.yml", cwd=project)
        assert third.returncode == 0, third.stderr  # reported, not a failure
        assert "warning: crm: entity 'items' was in the last run" in third.stdout
        assert "crm.items" not in third.stdout.split("warning:")[0]
        assert parquet_rows(project / "lake/crm/items") == (20, 20)  # its data is left as is


def test_incremental_entities_each_follow_their_own_cursor(
    tmp_path: Path, postgres_url: str
) -> None:
    with pg_schema(postgres_url) as (pg, schema):
        fill(pg, schema, "orders", 0, 50)  # cursor: updated_at (the definition's default)
        pg.run(f"CREATE TABLE {schema}.events (seq int, what text)")
        pg.run(f"INSERT INTO {schema}.events SELECT i, 'e' || i FROM generate_series(1, 40) i")
        fill(pg, schema, "lookup", 2, 10)  # no cursor column at all
        body = f"""
flows:
  crm:
    home: {{type: sql, connection: "{postgres_url}", tables: ["{schema}.*"],
            cursor: updated_at{{missing}}}}
    store: lake/{{entity}}
    entities:
      events: {{cursor: seq}}
    options: {{incremental: true}}
"""
        project = write(tmp_path, body.replace("{missing}", ""))
        refused = run_cli("validate", "flows.yml", cwd=project)
        assert refused.returncode == 2  # flows.yml is wrong for what was discovered
        assert f"table(s) {schema}.lookup have no column 'updated_at'" in refused.stderr
        assert "missing_cursor: full" in refused.stderr and "Traceback" not in refused.stderr

        write(tmp_path, body.replace("{missing}", ", missing_cursor: full"))
        listed = run_cli("validate", "flows.yml", cwd=project)
        assert listed.returncode == 0, listed.stderr
        assert "(incremental on seq)" in listed.stdout
        assert "crm.lookup" in listed.stdout and "loads in full every run" in listed.stdout

        assert run_cli("run", "flows.yml", cwd=project).returncode == 0
        pg.run(f"INSERT INTO {schema}.events SELECT i, 'e' || i FROM generate_series(41, 45) i")
        fill(pg, schema, "orders", 0, 5, start=1001)  # no NULL cursor
        fill(pg, schema, "lookup", 2, 3, start=500)
        again = run_cli("run", "flows.yml", cwd=project)
        assert again.returncode == 0, again.stderr
        assert parquet_rows(project / "lake/events", "seq") == (45, 45)
        assert parquet_rows(project / "lake/orders") == (55, 55)
        assert parquet_rows(project / "lake/lookup") == (13, 13)  # replaced, in full
        state = run_cli("state", "flows.yml", cwd=project)
        assert "crm.events" in state.stdout and "seq = 45" in state.stdout


def test_a_run_killed_midway_then_rerun_leaves_every_entity_exact(
    tmp_path: Path, postgres_url: str
) -> None:
    with pg_schema(postgres_url) as (pg, schema):
        names = [f"big{i}" for i in range(6)]
        for name in names:
            fill(pg, schema, name, 0, 60_000)
        project = write(
            tmp_path,
            f"""
flows:
  crm:
    home: {{type: sql, connection: "{postgres_url}", tables: ["{schema}.big*"],
            cursor: updated_at, batch_size: 2000}}
    store: {{type: parquet, path: "lake/{{entity}}", max_rows_per_file: 4000}}
    options: {{incremental: true}}
""",
        )
        kill_run_when(project, lambda: staging_has_data(project / "lake"), timeout=120)
        rerun = run_cli("run", "flows.yml", cwd=project, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
        for name in names:
            assert parquet_rows(project / "lake" / name) == (60_000, 60_000), name
        assert not [p for p in (project / "lake").iterdir() if "staging" in p.name]


def test_mariadb_tables_are_discovered_too(tmp_path: Path, mysql_url: str) -> None:
    with mysql_database(mysql_url) as (my, url):
        for name in ("alpha", "beta", "skip_me"):
            my.run(f"CREATE TABLE {name} (id int PRIMARY KEY, v varchar(20))")
            my.run(f"INSERT INTO {name} VALUES (1, 'a'), (2, 'b'), (3, NULL)")
        my.run("CREATE VIEW v_alpha AS SELECT * FROM alpha")
        project = write(
            tmp_path,
            f"""
flows:
  shop:
    home: {{type: sql, connection: "{url}", tables: ["*"], exclude: [skip_*],
            include_views: true}}
    store: lake/{{entity}}
""",
        )
        done = run_cli("run", "flows.yml", cwd=project)
        assert done.returncode == 0, done.stderr
        for name in ("alpha", "beta", "v_alpha"):
            assert parquet_rows(project / "lake" / name) == (3, 3)
        assert not (project / "lake/skip_me").exists()


def test_names_become_safe_paths(tmp_path: Path, postgres_url: str) -> None:
    with pg_schema(postgres_url) as (pg, schema):
        for name in ("_audit", "v1.2-final"):
            pg.run(f'CREATE TABLE {schema}."{name}" (id int)')
            pg.run(f'INSERT INTO {schema}."{name}" VALUES (1), (2)')
        project = write(
            tmp_path,
            f"""
flows:
  odd:
    home: {{type: sql, connection: "{postgres_url}", tables: ["{schema}.*"]}}
    store: lake/{{entity}}
""",
        )
        done = run_cli("run", "flows.yml", cwd=project)
        assert done.returncode == 0, done.stderr
        assert "odd._audit" in done.stdout  # the flow keeps the name, the path escapes it
        assert sorted(p.name for p in (project / "lake").iterdir()) == sorted(
            ["%5Faudit", "v1.2-final", "_hygge"]
        )
        assert parquet_rows(project / "lake/%5Faudit") == (2, 2)
        for bad, why in (("../escape", "path separator"), (".hidden", "may hold only")):
            pg.run(f'CREATE TABLE {schema}."{bad}" (id int)')
            refused = run_cli("run", "flows.yml", cwd=project)
            assert refused.returncode == 2  # refused while reading flows.yml: nothing moved
            assert f"entity '{bad}'" in refused.stderr and why in refused.stderr
            pg.run(f'DROP TABLE {schema}."{bad}"')
        assert not (tmp_path / "escape").exists()
