"""Incremental loads from PostgreSQL by cursor: into parquet, PostgreSQL and MariaDB, with and
without a key; the destination is compared with the expected rows after every run."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from hygge import Coordinator
from hygge.sql import state_table as sql_state
from tests.conftest import kill_run_when, run_cli, staging_has_data
from tests.sqldb import Db, unique

UTC = dt.UTC
BASE = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
Row = tuple[int, str, str]  # id, v, updated_at as UTC text


def ts(value: dt.datetime | str) -> str:
    if isinstance(value, str):  # SQLite keeps timestamps as text
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%d %H:%M:%S")


class Source:
    """A PostgreSQL table that changes between runs, and the rows each run must deliver."""

    def __init__(self, url: str) -> None:
        self.db = Db(url)
        self.table = unique("src")
        self.db.run(
            f"CREATE TABLE {self.table} (id int PRIMARY KEY, v text, updated_at timestamptz)"
        )
        self.versions: set[Row] = set()  # every row version a run saw (append semantics)

    def insert(self, ids: range, at: dt.datetime, v: str = "a") -> None:
        self.db.run(
            f"INSERT INTO {self.table} SELECT i, %s || i, %s::timestamptz + i * interval '1 s' "
            "FROM generate_series(%s::int, %s::int) i",
            (v, at, ids.start, ids.stop - 1),
        )

    def update(self, ids: range, at: dt.datetime, v: str) -> None:
        self.db.run(
            f"UPDATE {self.table} SET v = %s || id, updated_at = %s WHERE id >= %s AND id < %s",
            (v, at, ids.start, ids.stop),
        )

    def max_ts(self) -> dt.datetime:
        return self.db.run(f"SELECT max(updated_at) FROM {self.table}")[0][0]

    def snapshot(self) -> set[Row]:
        rows = self.db.run(f"SELECT id, v, updated_at FROM {self.table}")
        return {(i, v, ts(u)) for i, v, u in rows}

    def after_run(self) -> None:
        self.versions |= self.snapshot()

    def close(self) -> None:
        self.db.drop(self.table)
        self.db.close()


@pytest.fixture
def source(postgres_url: str) -> Iterator[Source]:
    src = Source(postgres_url)
    yield src
    src.close()


def read_dest(kind: str, where: str, url: str | None) -> list[Row]:
    """The destination's rows (duplicates kept), read independently of hygge."""
    if kind == "parquet":
        df = pl.read_parquet(f"{where}/*.parquet")
        out = [(i, v, ts(u)) for i, v, u in df.select("id", "v", "updated_at").iter_rows()]
    else:
        db = Db(url)  # type: ignore[arg-type]
        try:
            rows = db.run(f"SELECT id, v, updated_at FROM {where}")
        finally:
            db.close()
        out = [(i, v, ts(u)) for i, v, u in rows]
    return sorted(out)


class Target:
    def __init__(self, kind: str, tmp: Path, pg: str, my: str, key: bool) -> None:
        self.kind, self.key, self.tmp = kind, key, tmp
        self.schema = unique("hy")
        self.url = {"postgres": pg, "mysql": my}.get(kind)
        if kind == "sqlite":
            self.url = f"sqlite:///{tmp / 'target.db'}"
        elif self.url:
            db = Db(self.url)
            db.run(
                f"CREATE SCHEMA {self.schema}"
                if kind == "postgres"
                else f"CREATE DATABASE {self.schema}"
            )
            db.close()

    def store_yaml(self) -> str:
        if self.kind == "parquet":
            return "{path: lake/out, max_rows_per_file: 300}"
        key = ", mode: merge, key: [id]" if self.key else ""
        if self.kind == "sqlite":
            return f"{{type: sql, connection: '{self.url}', table: out{key}}}"
        return f"{{type: sql, connection: '{self.url}', schema: {self.schema}, table: out{key}}}"

    def rows(self) -> list[Row]:
        if self.kind == "parquet":
            return read_dest("parquet", str(self.tmp / "lake" / "out"), None)
        if self.kind == "sqlite":
            return read_dest("sqlite", '"out"', self.url)
        q = '"' if self.kind == "postgres" else "`"
        return read_dest(self.kind, f"{q}{self.schema}{q}.{q}out{q}", self.url)

    def drop(self) -> None:
        if self.url and self.kind != "sqlite":
            db = Db(self.url)
            db.run(
                f"DROP SCHEMA {self.schema} CASCADE"
                if self.kind == "postgres"
                else f"DROP DATABASE {self.schema}"
            )
            db.close()


def flows_yaml(source: Source, pg: str, store: str, extra: str = "") -> str:
    return (
        "flows:\n"
        "  inc:\n"
        f"    home: {{type: sql, connection: '{pg}', table: {source.table}, cursor: updated_at,"
        f" lag: 10m, batch_size: 100{extra}}}\n"
        f"    store: {store}\n"
        "    options: {incremental: true}\n"
    )


def run_ok(project: Path, *args: str, cli: bool = False) -> None:
    """Run the flows as `hygge run` does: in this process (fast), or through the real CLI."""
    if cli:
        done = run_cli("run", "flows.yml", *args, cwd=project)
        assert done.returncode == 0, done.stderr + done.stdout
        return
    result = Coordinator(project / "flows.yml", full_refresh="--full-refresh" in args).run()
    assert result.ok, {n: r.error for n, r in result.results.items()}


def expected(source: Source, key: bool) -> list[Row]:
    return sorted(source.snapshot() if key else source.versions)


@pytest.mark.parametrize(
    "kind,key",
    [
        ("parquet", False),
        ("postgres", False),
        ("postgres", True),
        ("mysql", False),
        ("mysql", True),
        ("sqlite", False),
    ],
)
def test_changes_between_runs_arrive_exactly_once(
    tmp_path: Path, source: Source, postgres_url: str, mysql_url: str, kind: str, key: bool
):
    target = Target(kind, tmp_path, postgres_url, mysql_url, key)
    try:
        (tmp_path / "flows.yml").write_text(flows_yaml(source, postgres_url, target.store_yaml()))
        source.insert(range(1, 501), BASE)  # 1..500, one second apart
        run_ok(tmp_path, cli=True)
        source.after_run()
        assert target.rows() == expected(source, key)

        # new rows, updates bumping old rows, and late rows inside the 10 minute lag window
        top = source.max_ts()
        source.insert(range(501, 551), top + dt.timedelta(minutes=1))
        source.update(range(10, 20), top + dt.timedelta(minutes=2), "u")
        source.insert(range(900, 905), top - dt.timedelta(minutes=3), "late")
        run_ok(tmp_path)
        source.after_run()
        assert target.rows() == expected(source, key)

        run_ok(tmp_path)  # nothing changed: the boundary window is not loaded again
        assert target.rows() == expected(source, key)

        top = source.max_ts()
        source.insert(range(950, 953), top - dt.timedelta(seconds=30), "late2")
        source.update(range(500, 501), top, "same-ts")  # an update landing at the mark itself
        run_ok(tmp_path)
        source.after_run()
        assert target.rows() == expected(source, key)

        shown = run_cli("state", "flows.yml", cwd=tmp_path)
        assert shown.returncode == 0 and "updated_at =" in shown.stdout, shown.stderr

        # --full-refresh replaces the destination with the source as it is now (and its state)
        source.update(range(1, 5), source.max_ts() + dt.timedelta(minutes=1), "r")
        run_ok(tmp_path, "--full-refresh", cli=True)
        source.versions = source.snapshot()
        assert target.rows() == sorted(source.snapshot())
        source.insert(range(2000, 2003), source.max_ts() + dt.timedelta(seconds=1), "after")
        run_ok(tmp_path)
        source.after_run()
        assert target.rows() == expected(source, key)

        reset = run_cli("state", "flows.yml", "--reset", "inc", cwd=tmp_path)
        assert reset.returncode == 0 and "state reset" in reset.stdout, reset.stderr
        assert "nothing loaded yet" in run_cli("state", "flows.yml", cwd=tmp_path).stdout
    finally:
        target.drop()


def test_state_commits_in_the_data_transaction(
    tmp_path: Path, source: Source, postgres_url: str, mysql_url: str, monkeypatch
):
    """A failure inside the publish transaction leaves both data and state as they were."""
    for n, kind in enumerate(("postgres", "mysql")):
        project = tmp_path / kind
        project.mkdir()
        target = Target(kind, project, postgres_url, mysql_url, key=False)
        try:
            (project / "flows.yml").write_text(
                flows_yaml(source, postgres_url, target.store_yaml())
            )
            if not source.versions:
                source.insert(range(1, 301), BASE)
                source.after_run()
            assert Coordinator(project / "flows.yml").run().ok
            assert target.rows() == sorted(source.versions)
            before = Coordinator(project / "flows.yml").config.flows["inc"].store.build()
            saved = _state(before)

            real = sql_state.publish_steps
            monkeypatch.setattr(
                sql_state,
                "publish_steps",
                lambda *a, real=real: [*real(*a), "SELECT * FROM hygge_no_such_table_x"],
            )
            top = source.max_ts()
            source.insert(range(1000 + 100 * n, 1010 + 100 * n), top + dt.timedelta(1))
            result = Coordinator(project / "flows.yml").run()
            assert not result.ok
            assert target.rows() == sorted(source.versions)  # no new rows ...
            assert _state(before) == saved  # ... and the old state
            monkeypatch.setattr(sql_state, "publish_steps", real)

            result = Coordinator(project / "flows.yml").run()
            assert result.ok and result.results["inc"].rows == 10
            source.after_run()
            assert target.rows() == sorted(source.versions)
        finally:
            target.drop()


def _state(store) -> dict | None:
    import asyncio

    return asyncio.run(store.read_state("inc"))


@pytest.mark.parametrize("kind", ["parquet", "postgres", "mysql"])
def test_killed_mid_flow_then_rerun_is_exact(
    tmp_path: Path, source: Source, postgres_url: str, mysql_url: str, kind: str
):
    """SIGKILL a `hygge run` while it stages (and once right at the start): nothing is lost,
    nothing is duplicated by the rerun."""
    target = Target(kind, tmp_path, postgres_url, mysql_url, key=False)
    try:
        (tmp_path / "flows.yml").write_text(
            flows_yaml(source, postgres_url, target.store_yaml()).replace(
                "batch_size: 100", "batch_size: 1000"
            )
        )
        source.insert(range(1, 1001), BASE)
        run_ok(tmp_path)
        source.after_run()
        top = source.max_ts()
        source.insert(range(10_000, 210_000), top + dt.timedelta(minutes=1), "big")
        source.update(range(1, 50), top + dt.timedelta(minutes=2), "u")
        for wait_for_staging in (False, True):
            started = time.monotonic()
            kill_run_when(
                tmp_path,
                (lambda: _staging_exists(target))
                if wait_for_staging
                else (lambda t0=started: time.monotonic() - t0 > 1.0),  # mid-read or earlier
            )
            assert target.rows() == sorted(source.versions)  # nothing half-published
        run_ok(tmp_path)
        source.after_run()
        assert target.rows() == sorted(source.versions)
    finally:
        target.drop()


def _staging_exists(target: Target) -> bool:
    if target.kind == "parquet":
        return staging_has_data(target.tmp / "lake")
    db = Db(target.url)  # type: ignore[arg-type]
    try:  # created (and committed) when the first batch arrives
        if target.kind == "mysql":
            return bool(db.run(f"SHOW TABLES FROM {target.schema} LIKE '\\_hygge\\_stage%%'"))
        return bool(
            db.run(
                "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename LIKE "
                "'\\_hygge\\_stage%%'",
                (target.schema,),
            )
        )
    finally:
        db.close()


# -- bad input, NULL cursors, queries, `initial` ---------------------------------------------


@pytest.fixture
def odd_source(postgres_url: str) -> Iterator[tuple[Db, str]]:
    db = Db(postgres_url)
    table = unique("odd")
    db.run(
        f"CREATE TABLE {table} (id int, doc jsonb, flag bool, raw bytea, day date, "
        "updated_at timestamp)"
    )
    db.run(
        f"INSERT INTO {table} SELECT i, '{{}}', true, '\\x00', DATE '2024-01-01' + i, "
        "TIMESTAMP '2024-01-01' + i * interval '1 h' FROM generate_series(1, 20) i"
    )
    yield db, table
    db.drop(table)
    db.close()


def _odd_flow(project: Path, pg: str, table: str, home_extra: str) -> None:
    (project / "flows.yml").write_text(
        "flows:\n"
        "  inc:\n"
        f"    home: {{type: sql, connection: '{pg}', table: {table}{home_extra}}}\n"
        "    store: {path: lake/out}\n"
        "    options: {incremental: true}\n"
    )


@pytest.mark.parametrize(
    "home_extra,message",
    [
        (", cursor: nope", "cursor column 'nope' is not in table"),
        (", cursor: doc", "cursor column 'doc' of table"),
        (", cursor: flag", "cursor column 'flag' of table"),
        (", cursor: raw", "cursor column 'raw' of table"),
        (", cursor: id, lag: 10m", "lag '10m' is a duration but cursor column 'id' is an integer"),
        (", cursor: updated_at, lag: 5", "lag 5 is a number but cursor column 'updated_at'"),
        (", cursor: day, lag: 2h", "lag '2h' is not whole days but cursor column 'day' is a date"),
        (", cursor: updated_at, initial: yesterday", "initial 'yesterday' is not a timestamp"),
    ],
)
def test_bad_cursor_settings_are_clear_errors(
    tmp_path: Path, odd_source: tuple[Db, str], postgres_url: str, home_extra: str, message: str
):
    _odd_flow(tmp_path, postgres_url, odd_source[1], home_extra)
    for command in ("validate", "run"):
        done = run_cli(command, "flows.yml", cwd=tmp_path)
        assert done.returncode == 1, done.stdout
        assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "lake" / "out").exists()  # destination untouched


def test_cursor_missing_from_a_query_is_a_clear_error(
    tmp_path: Path, odd_source: tuple[Db, str], postgres_url: str
):
    (tmp_path / "flows.yml").write_text(
        "flows:\n  inc:\n"
        f"    home: {{type: sql, connection: '{postgres_url}', "
        f"query: 'SELECT id FROM {odd_source[1]}', cursor: updated_at}}\n"
        "    store: {path: lake/out}\n    options: {incremental: true}\n"
    )
    done = run_cli("run", "flows.yml", cwd=tmp_path)
    assert done.returncode == 1 and "cursor column 'updated_at' cannot be read" in done.stderr
    assert "Traceback" not in done.stderr


def test_malformed_lag_is_a_config_error(tmp_path: Path, postgres_url: str):
    _odd_flow(tmp_path, postgres_url, "t", ", cursor: updated_at, lag: 10 minutes")
    done = run_cli("validate", "flows.yml", cwd=tmp_path)
    assert done.returncode == 2 and "is not a duration like 30s, 10m" in done.stderr


def test_changed_cursor_is_refused_with_a_hint(
    tmp_path: Path, odd_source: tuple[Db, str], postgres_url: str
):
    _odd_flow(tmp_path, postgres_url, odd_source[1], ", cursor: updated_at")
    run_ok(tmp_path)
    _odd_flow(tmp_path, postgres_url, odd_source[1], ", cursor: id")
    done = run_cli("run", "flows.yml", cwd=tmp_path)
    assert done.returncode == 1 and "different definition" in done.stderr
    assert "--full-refresh" in done.stderr and "Traceback" not in done.stderr
    assert pl.read_parquet(tmp_path / "lake" / "out" / "*.parquet").height == 20  # untouched
    run_ok(tmp_path, "--full-refresh")  # the suggested way out works
    assert pl.read_parquet(tmp_path / "lake" / "out" / "*.parquet").height == 20
    run_ok(tmp_path)


def _ids(project: Path) -> list[int]:
    return sorted(pl.read_parquet(project / "lake" / "out" / "*.parquet")["id"].to_list())


def test_null_cursor_rows_load_on_full_runs_only(
    tmp_path: Path, odd_source: tuple[Db, str], postgres_url: str
):
    """A NULL cursor cannot say whether a row is new: the first (or a --full-refresh) run
    loads it, incremental runs skip it until it gets a cursor value."""
    db, table = odd_source
    db.run(f"INSERT INTO {table} (id, updated_at) VALUES (100, NULL)")
    _odd_flow(tmp_path, postgres_url, table, ", cursor: updated_at")
    run_ok(tmp_path)
    assert _ids(tmp_path) == [*range(1, 21), 100]
    db.run(f"INSERT INTO {table} (id, updated_at) VALUES (101, NULL), (21, '2024-02-01')")
    run_ok(tmp_path)
    assert _ids(tmp_path) == [*range(1, 22), 100]  # 21 came, the NULL row 101 did not
    db.run(f"UPDATE {table} SET updated_at = '2024-03-01' WHERE id = 101")
    run_ok(tmp_path)
    assert _ids(tmp_path) == [*range(1, 22), 100, 101]  # once it has a cursor value
    db.run(f"INSERT INTO {table} (id, updated_at) VALUES (102, NULL)")
    run_ok(tmp_path, "--full-refresh")
    assert _ids(tmp_path) == [*range(1, 22), 100, 101, 102]


def test_query_home_with_initial_and_integer_cursor(
    tmp_path: Path, odd_source: tuple[Db, str], postgres_url: str
):
    db, table = odd_source
    (tmp_path / "flows.yml").write_text(
        "flows:\n  inc:\n"
        f"    home: {{type: sql, connection: '{postgres_url}', "
        f"query: 'SELECT id, day FROM {table} WHERE id <> 7', cursor: id, lag: 2, initial: 5}}\n"
        "    store: {path: lake/out}\n    options: {incremental: true}\n"
    )
    run_ok(tmp_path)
    assert _ids(tmp_path) == [i for i in range(5, 21) if i != 7]
    db.run(f"INSERT INTO {table} (id) VALUES (19), (30)")  # 19 repeats inside the lag: loaded
    run_ok(tmp_path)
    run_ok(tmp_path)
    assert _ids(tmp_path) == sorted([i for i in range(5, 21) if i != 7] + [19, 30])


def test_mysql_source_with_a_datetime_cursor(tmp_path: Path, mysql_url: str):
    db = Db(mysql_url)
    table = unique("mysrc")
    db.run(f"CREATE TABLE {table} (id int PRIMARY KEY, at datetime NULL)")
    try:
        db.run(f"INSERT INTO {table} VALUES (1, '2024-01-01 10:00:00'), (2, '2024-01-01 11:00:00')")
        (tmp_path / "flows.yml").write_text(
            "flows:\n  inc:\n"
            f"    home: {{type: sql, connection: '{mysql_url}', table: {table}, cursor: at, "
            "lag: 30m}\n"
            "    store: {path: lake/out}\n    options: {incremental: true}\n"
        )
        run_ok(tmp_path)
        db.run(
            f"INSERT INTO {table} VALUES (3, '2024-01-01 10:45:00'), (4, '2024-01-01 09:00:00'), "
            "(5, '2024-01-01 12:00:00')"
        )
        run_ok(tmp_path)
        run_ok(tmp_path)
        # 3 committed late inside the 30 minute lag: loaded; 4 is older than the lag: missed
        assert _ids(tmp_path) == [1, 2, 3, 5]
    finally:
        db.drop(table)
        db.close()


def test_mysql_says_when_an_incremental_query_loses_its_order_by(tmp_path: Path, mysql_url: str):
    """MariaDB ignores the ORDER BY of the derived table hygge wraps an incremental query in
    (to add `cursor >= mark`): the run says so rather than losing the order silently; the
    first run (no mark, nothing wrapped) and an ORDER BY inside a subquery are not warned."""
    db = Db(mysql_url)
    table = unique("myorder")
    db.run(f"CREATE TABLE {table} (id int PRIMARY KEY)")
    try:
        db.run(f"INSERT INTO {table} VALUES (1), (2), (3)")
        flows = (
            "flows:\n"
            "  ordered:\n"
            f"    home: {{type: sql, connection: '{mysql_url}', "
            f"query: 'SELECT id FROM {table} ORDER BY id DESC', cursor: id}}\n"
            "    store: {path: lake/ordered}\n    options: {incremental: true}\n"
            "  inner:\n"
            f"    home: {{type: sql, connection: '{mysql_url}', query: 'SELECT id FROM "
            f"{table} WHERE id IN (SELECT id FROM {table} ORDER BY id)', cursor: id}}\n"
            "    store: {path: lake/inner}\n    options: {incremental: true}\n"
        )
        (tmp_path / "flows.yml").write_text(flows)
        first = run_cli("run", "flows.yml", cwd=tmp_path)
        assert first.returncode == 0, first.stderr + first.stdout
        assert "ORDER BY is not kept" not in first.stderr + first.stdout
        db.run(f"INSERT INTO {table} VALUES (4), (5)")
        second = run_cli("run", "flows.yml", cwd=tmp_path)
        assert second.returncode == 0, second.stderr + second.stdout
        said = second.stderr + second.stdout
        assert "home 'ordered': the query's ORDER BY is not kept" in said, said
        assert "incremental bound" in said
        assert "home 'inner'" not in said
        landed = pl.read_parquet(tmp_path / "lake" / "ordered" / "*.parquet")["id"]
        assert sorted(landed.to_list()) == [1, 2, 3, 4, 5]  # every row, once
    finally:
        db.drop(table)
        db.close()


def test_mysql_says_once_when_a_partitioned_query_loses_its_order_by(
    tmp_path: Path, mysql_url: str
):
    """A partitioned query is wrapped once per part: the lost ORDER BY is said once (by the
    first part), not once per part, and every row still lands once."""
    db = Db(mysql_url)
    table = unique("mypartorder")
    db.run(f"CREATE TABLE {table} (id int PRIMARY KEY)")
    try:
        db.run(f"INSERT INTO {table} VALUES " + ", ".join(f"({i})" for i in range(1, 61)))
        (tmp_path / "flows.yml").write_text(
            "flows:\n"
            "  ordered:\n"
            f"    home: {{type: sql, connection: '{mysql_url}', "
            f"query: 'SELECT id FROM {table} ORDER BY id DESC', partition_on: id}}\n"
            "    store: {path: lake/ordered}\n    options: {partitions: 3}\n"
        )
        done = run_cli("run", "flows.yml", cwd=tmp_path)
        said = done.stderr + done.stdout
        assert done.returncode == 0, said
        assert said.count("the query's ORDER BY is not kept") == 1, said
        assert "partition bound" in said
        landed = pl.read_parquet(tmp_path / "lake" / "ordered" / "*.parquet")["id"]
        assert sorted(landed.to_list()) == list(range(1, 61))  # every row, once
    finally:
        db.drop(table)
        db.close()


def test_incremental_sql_home_needs_a_cursor(
    tmp_path: Path, odd_source: tuple[Db, str], postgres_url: str
):
    _odd_flow(tmp_path, postgres_url, odd_source[1], "")
    done = run_cli("run", "flows.yml", cwd=tmp_path)
    assert done.returncode == 1 and "needs `cursor: COLUMN`" in done.stderr, done.stderr
    assert not (tmp_path / "lake" / "out").exists()
    _odd_flow(tmp_path, postgres_url, odd_source[1], ", lag: 10m")
    done = run_cli("validate", "flows.yml", cwd=tmp_path)
    assert done.returncode == 2 and "`lag` and `initial` need `cursor: COLUMN`" in done.stderr


def test_same_flow_name_into_two_tables_of_one_schema_keeps_two_states(
    tmp_path: Path, source: Source, postgres_url: str
):
    """Two flows.yml files reuse the flow name `inc` for two tables of one schema: each table
    keeps its own mark, so the second file's first run loads everything, not nothing."""
    target = Target("postgres", tmp_path, postgres_url, "", key=False)
    try:
        source.insert(range(1, 201), BASE)
        source.after_run()
        for table in ("out", "out_b"):
            project = tmp_path / table
            project.mkdir()
            store = target.store_yaml().replace("table: out", f"table: {table}")
            (project / "flows.yml").write_text(flows_yaml(source, postgres_url, store))
            result = Coordinator(project / "flows.yml").run()
            assert result.ok and result.results["inc"].rows == 200, result.results
        q = f'"{target.schema}"'
        assert read_dest("postgres", f'{q}."out_b"', postgres_url) == sorted(source.versions)
        assert read_dest("postgres", f'{q}."out"', postgres_url) == sorted(source.versions)
    finally:
        target.drop()
