"""Partitioned flows in `hygge run`: SQL ranges (PostgreSQL, MariaDB) and file splits, read
concurrently and committed once; exact results read back independently (DuckDB, polars)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from hygge import Coordinator, HomeError, TransientError
from hygge.config import parse
from hygge.contract import Home, HomeSettings, SplittableHome, Store, StoreSettings
from hygge.errors import ConfigError
from hygge.partitions import Range, explicit_ranges, ranges_problem, split_range
from tests.checks import fingerprint
from tests.sqldb import Db, unique

# -- planning (pure) ------------------------------------------------------------------------


def _covers_once(ranges: list[Range], values: list[Any]) -> bool:
    """Every value (None included) falls into exactly one range."""
    for v in values:
        hits = 0
        for r in ranges:
            if v is None:
                hits += r.nulls
            else:
                hits += (r.low is None or v >= r.low) and (r.high is None or v < r.high)
        if hits != 1:
            return False
    return True


@pytest.mark.parametrize(
    ("low", "high", "probe"),
    [
        (1, 1000, [-5, 1, 2, 499, 500, 999, 1000, 5000, None]),
        (dt.date(2024, 1, 1), dt.date(2024, 3, 1), [dt.date(2023, 1, 1), dt.date(2024, 2, 9)]),
        (
            dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
            dt.datetime(2024, 1, 2, tzinfo=dt.UTC),
            [dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC), dt.datetime(2030, 1, 1, tzinfo=dt.UTC)],
        ),
    ],
)
def test_split_range_covers_every_value_exactly_once(low: Any, high: Any, probe: list) -> None:
    kind = "int" if isinstance(low, int) else "date" if type(low) is dt.date else "timestamptz"
    ranges = split_range(low, high, 7, kind)
    assert len(ranges) == 7
    assert sum(r.nulls for r in ranges) == 1
    assert _covers_once(ranges, [low, high, *probe])


def test_split_range_with_fewer_values_than_partitions_and_empty_tables() -> None:
    assert len(split_range(5, 7, 8, "int")) == 3  # three distinct values: three partitions
    assert split_range(None, None, 8, "int") == [Range(nulls=True)]  # empty: one, all rows


def test_explicit_ranges_are_checked_and_opened_at_both_ends() -> None:
    assert ranges_problem([[0, 10], [10, 20]]) is None
    assert "overlap" in str(ranges_problem([[0, 10], [5, 20]]))
    assert "gap" in str(ranges_problem([[0, 10], [11, 20]]))
    assert "empty" in str(ranges_problem([[10, 10]]))
    ranges = explicit_ranges([[0, 10], [10, 20]], int)
    assert ranges == [Range(None, 10, True), Range(10, None, False)]


# -- SQL homes ------------------------------------------------------------------------------

N = 3000


def _fill(db: Db, table: str, kind: str) -> None:
    """N rows with an int id, a date and a timestamp column, NULLs in every partition column,
    skewed (a third of the rows share one value)."""
    mysql = db.dialect == "mysql"
    ts_type = "datetime(6)" if mysql else "timestamptz"
    db.run(f"CREATE TABLE {table} (id bigint, d date, ts {ts_type}, v varchar(40))")
    rows = []
    base = dt.datetime(2024, 1, 1)
    for i in range(N):
        skew = i % 3 == 0
        rid = None if i % 97 == 0 else (7 if skew else i * 11)
        day = None if i % 89 == 0 else (dt.date(2024, 1, 1) + dt.timedelta(days=0 if skew else i))
        stamp = None if i % 83 == 0 else base + dt.timedelta(seconds=0 if skew else i * 37.5)
        if stamp is not None and not mysql:
            stamp = stamp.replace(tzinfo=dt.UTC)
        rows.append((rid, day, stamp, f"v{i}"))
    cur = db.conn.cursor()
    cur.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s, %s)", rows)
    cur.close()


def _db_fingerprint(db: Db, table: str) -> tuple[int, list[tuple[Any, ...]]]:
    rows = db.run(f"SELECT v, id FROM {table}")
    return len(rows), sorted(rows)


def _out_fingerprint(path: Path) -> tuple[int, list[tuple[Any, ...]]]:
    rows = duckdb.sql(f"SELECT v, id FROM read_parquet('{path}/*.parquet')").fetchall()
    return len(rows), sorted(rows)


@pytest.fixture(params=["postgres", "mysql"])
def db(request: pytest.FixtureRequest) -> Iterator[Db]:
    url = request.getfixturevalue(f"{request.param}_url")
    database = Db(url)
    yield database
    database.close()


@pytest.mark.parametrize("column", ["id", "d", "ts"])
def test_sql_partitions_give_the_exact_table(db: Db, tmp_path: Path, column: str) -> None:
    table = unique("part")
    _fill(db, table, column)
    try:
        flows = tmp_path / "flows.yml"
        flows.write_text(
            "flows:\n  big:\n"
            f"    home: {{type: sql, connection: '{db.url}', table: {table}, "
            f"partition_on: {column}, batch_size: 400}}\n"
            "    store: lake/big\n"
            "    options: {partitions: 5}\n"
        )
        result = Coordinator(flows).run()
        assert result.ok, result.failed
        report = result.results["big"]
        assert report.rows == N and report.parts_total == 5 and report.parts_done == 5
        assert _out_fingerprint(tmp_path / "lake" / "big") == _db_fingerprint(db, table)
        assert not [p for p in (tmp_path / "lake").iterdir() if p.name.startswith(".")]
    finally:
        db.drop(table)


def test_query_home_with_explicit_ranges_and_an_empty_range(
    postgres_url: str, tmp_path: Path
) -> None:
    db = Db(postgres_url)
    table = unique("part")
    _fill(db, table, "id")
    try:
        flows = tmp_path / "flows.yml"
        flows.write_text(
            "flows:\n  q:\n"
            f"    home: {{type: sql, connection: '{postgres_url}', "
            f"query: 'SELECT id, v FROM {table} WHERE v <> ''v1''', partition_on: id}}\n"
            "    store: lake/q\n"
            # [5000, 6000) is empty; rows above 9000 and NULLs land in the outer ranges
            "    options: {ranges: [[0, 100], [100, 5000], [5000, 6000], [6000, 9000]]}\n"
        )
        result = Coordinator(flows).run()
        assert result.ok, result.failed
        expected = sorted(db.run(f"SELECT v, id FROM {table} WHERE v <> 'v1'"))
        assert _out_fingerprint(tmp_path / "lake" / "q") == (len(expected), expected)
        assert result.results["q"].parts_total == 4
    finally:
        db.drop(table)
        db.close()


def test_empty_table_makes_one_empty_partition(postgres_url: str, tmp_path: Path) -> None:
    db = Db(postgres_url)
    table = unique("part")
    db.run(f"CREATE TABLE {table} (id int, v text)")
    try:
        flows = tmp_path / "flows.yml"
        flows.write_text(
            "flows:\n  e:\n"
            f"    home: {{type: sql, connection: '{postgres_url}', table: {table}, "
            "partition_on: id}\n"
            "    store: lake/e\n"
            "    options: {partitions: 4}\n"
        )
        result = Coordinator(flows).run()
        assert result.ok and result.results["e"].rows == 0
        assert (tmp_path / "lake" / "e").is_dir()
    finally:
        db.drop(table)
        db.close()


def test_partitioned_incremental_flow_commits_one_state(postgres_url: str, tmp_path: Path) -> None:
    db = Db(postgres_url)
    table = unique("inc")
    db.run(f"CREATE TABLE {table} (id int, v text, updated_at timestamptz)")
    at = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)

    def insert(ids: range, when: dt.datetime, v: str = "a") -> None:
        db.run(
            f"INSERT INTO {table} SELECT i, %s || i, %s::timestamptz + i * interval '1 s' "
            "FROM generate_series(%s::int, %s::int) i",
            (v, when, ids.start, ids.stop - 1),
        )

    flows = tmp_path / "flows.yml"
    flows.write_text(
        "flows:\n  inc:\n"
        f"    home: {{type: sql, connection: '{postgres_url}', table: {table}, "
        "cursor: updated_at, lag: 1h, partition_on: id}\n"
        "    store: {path: lake/inc, max_rows_per_file: 200}\n"
        "    options: {partitions: 3, incremental: true}\n"
    )
    try:
        insert(range(1, 1001), at)
        first = Coordinator(flows).run()
        assert first.ok and first.results["inc"].rows == 1000
        insert(range(1001, 1501), at + dt.timedelta(hours=3))  # new rows
        # a late row inside the lag window: loaded once
        db.run(f"INSERT INTO {table} VALUES (5000, 'late', %s)", (at + dt.timedelta(hours=2.9),))
        second = Coordinator(flows).run()
        assert second.ok, second.failed
        assert second.results["inc"].rows == 501  # nothing re-read twice, nothing missed
        third = Coordinator(flows).run()
        assert third.ok and third.results["inc"].rows == 0
        out = pl.read_parquet(tmp_path / "lake" / "inc" / "*.parquet")
        assert out.height == 1501 and out["id"].n_unique() == 1501
        state = Coordinator(flows).config.flows["inc"].store.build()
        saved = __import__("asyncio").run(state.read_state("inc"))
        assert saved["rows"] == 0 and saved["state"]["mark"].startswith("2024-05-01T03:")
    finally:
        db.drop(table)
        db.close()


@pytest.mark.parametrize(
    ("column", "problem"),
    [("nope", "is not in table"), ("v", "cannot be split into ranges")],
)
def test_partition_on_missing_or_text_column_fails_before_writing(
    postgres_url: str, tmp_path: Path, cli, column: str, problem: str
) -> None:
    db = Db(postgres_url)
    table = unique("part")
    db.run(f"CREATE TABLE {table} (id int, v text)")
    try:
        flows = tmp_path / "flows.yml"
        flows.write_text(
            "flows:\n  bad:\n"
            f"    home: {{type: sql, connection: '{postgres_url}', table: {table}, "
            f"partition_on: {column}}}\n"
            "    store: lake/bad\n"
            "    options: {partitions: 2}\n"
        )
        checked = cli("validate", str(flows))
        assert checked.returncode != 0
        assert problem in checked.stdout + checked.stderr
        assert "partition_on" in checked.stdout + checked.stderr
        assert "Traceback" not in checked.stdout + checked.stderr
        result = Coordinator(flows).run()
        assert not result.ok and problem in str(result.results["bad"].error)
        assert not (tmp_path / "lake").exists() or not any((tmp_path / "lake").iterdir())
    finally:
        db.drop(table)
        db.close()


@pytest.mark.parametrize("mode", ["replace", "append"])
def test_sql_to_sql_parts_publish_in_one_transaction(db: Db, tmp_path: Path, mode: str) -> None:
    table, target = unique("part"), unique("dest")
    _fill(db, table, "id")
    try:
        flows = tmp_path / "flows.yml"
        flows.write_text(
            "flows:\n  big:\n"
            f"    home: {{type: sql, connection: '{db.url}', table: {table}, "
            "partition_on: id, batch_size: 500}\n"
            f"    store: {{type: sql, connection: '{db.url}', table: {target}, mode: {mode}}}\n"
            "    options: {partitions: 4}\n"
        )
        for _ in range(2):
            result = Coordinator(flows).run()
            assert result.ok, result.failed
        expected = sorted(db.run(f"SELECT v, id FROM {table}"))
        if mode == "append":
            expected = sorted(expected * 2)
        assert sorted(db.run(f"SELECT v, id FROM {target}")) == expected
        assert not [t for t in db.staging_tables() if table in t or target in t]
    finally:
        db.drop(table, target)


@pytest.mark.parametrize("mode", ["replace", "append"])
def test_a_dead_attempts_rows_in_the_shared_parts_table_are_never_published(
    postgres_url: str, mode: str
) -> None:
    """PostgreSQL parts load one shared table, each row tagged with its attempt. An attempt
    that loaded (and committed) rows but never sealed (a worker killed after its COPY, its
    part re-run) is counted out of the row check and deleted by the commit: exact. The
    target has the part's columns only (the tag column is dropped in the publish)."""
    import asyncio

    from hygge.stores.sql import ATTEMPT, SQLStore

    db = Db(postgres_url)
    target = unique("dest")
    key = unique("run")

    def frame(start: int) -> pl.DataFrame:
        return pl.DataFrame({"id": range(start, start + 1_000), "v": ["x"] * 1_000})

    def store() -> SQLStore:
        return SQLStore("t", connection=postgres_url, table=target, mode=mode)

    async def stage(part: str, start: int, seal: bool) -> dict[str, Any] | None:
        s = store()
        await s.open_part(part)
        await s.write(frame(start))
        if not seal:  # loaded and committed, then "killed": no seal, no abort
            await s.staged_rows()
            return None
        return await s.seal_part(part)

    async def scenario() -> None:
        if mode == "append":  # an existing target: the parts insert straight into it
            db.run(f"CREATE TABLE {target} (id bigint, v text)")
            db.run(f"INSERT INTO {target} VALUES (-1, 'old')")
        p0 = await stage(f"{key}.p0000", 0, seal=True)
        await stage(f"{key}.p0001", 5_000, seal=False)  # the dead attempt of part 1
        p1 = await stage(f"{key}.p0001", 1_000, seal=True)
        assert p0 is not None and p1 is not None and p0["table"] == p1["table"]
        committer = store()
        assert await committer.parts_rows([p0, p1]) == 2_000  # the dead attempt's not counted
        await committer.commit_parts([p0, p1])
        await committer.abort_parts([p0, p1])

    try:
        asyncio.run(scenario())
        ids = [r[0] for r in db.run(f"SELECT id FROM {target} ORDER BY id")]
        assert ids == ([-1] if mode == "append" else []) + list(range(2_000))
        columns = db.run(
            f"SELECT column_name FROM information_schema.columns WHERE table_name = '{target}'"
        )
        assert sorted(c[0] for c in columns) == ["id", "v"], columns
        assert ATTEMPT not in {c[0] for c in columns}
        assert not [t for t in db.staging_tables() if target in t]
    finally:
        db.drop(target)
        db.close()


@pytest.mark.parametrize("mode", ["replace", "append", "merge"])
def test_a_commit_step_run_again_after_its_publish_landed_publishes_nothing_more(
    db: Db, mode: str
) -> None:
    """The commit step of a distributed partitioned flow is run again when its worker dies
    after the publish landed but before the step was recorded as done. The publish writes
    a mark of the flow run in `_hygge_state` in its own transaction; the step run again
    finds it, counts nothing and publishes nothing more (an append would load every row
    twice; PostgreSQL's replace would find its parts table renamed away). Marks of the same
    target older than a week are dropped by the next commit."""
    import asyncio

    from hygge.sql import state_table
    from hygge.sql.state_table import MARK_DAYS, STATE_TABLE, mark_key
    from hygge.stores.sql import SQLStore

    target, key = unique("dest"), unique("run")
    stale = mark_key(target, "parts-a-run-of-last-month")

    def store() -> SQLStore:
        extra = {"key": ["id"]} if mode == "merge" else {}
        return SQLStore("t", connection=db.url, table=target, mode=mode, **extra)

    async def stage(part: str, start: int) -> dict[str, Any]:
        s = store()
        await s.open_part(part)
        await s.write(pl.DataFrame({"id": range(start, start + 1_000), "v": ["x"] * 1_000}))
        return await s.seal_part(part)

    async def commit_step(parts: list[dict[str, Any]]) -> int | None:
        """As PartitionedFlow's commit: landed already? else count; then publish (which is
        idempotent by itself too: called either way here)."""
        committer = store()
        landed = await committer.parts_committed(parts)
        rows = None if landed else await committer.parts_rows(parts)
        await committer.commit_parts(parts)
        return rows

    async def scenario() -> None:
        primary = " PRIMARY KEY" if mode == "merge" else ""
        db.run(f"CREATE TABLE {target} (id bigint{primary}, v varchar(10))")
        db.run(f"INSERT INTO {target} VALUES (-1, 'old')")
        store()._with_session("create", lambda s: state_table.ensure_table(s, None))
        old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=MARK_DAYS, hours=1)).isoformat()
        db.run(
            f"INSERT INTO {STATE_TABLE} (flow, definition, state, committed_at) "
            f"VALUES ('{stale}', 'null', '{{}}', '{old}')"
        )
        parts = [await stage(f"{key}.p0000", 0), await stage(f"{key}.p0001", 1_000)]
        assert await commit_step(parts) == 2_000
        assert await commit_step(parts) is None  # the step run again: the mark is found
        await store().abort_parts(parts)  # the step's clean-up, then once more after it
        assert await commit_step(parts) is None

    try:
        asyncio.run(scenario())
        ids = [r[0] for r in db.run(f"SELECT id FROM {target} ORDER BY id")]
        assert ids == ([] if mode == "replace" else [-1]) + list(range(2_000))
        marks = [r[0] for r in db.run(f"SELECT flow FROM {STATE_TABLE}") if target in r[0]]
        assert marks == [mark_key(target, f"parts-{key}")]  # the stale mark expired
        assert not [t for t in db.staging_tables() if target in t]
    finally:
        db.run(f"DELETE FROM {STATE_TABLE} WHERE flow LIKE '{target}/%'")
        db.drop(target)


@pytest.mark.parametrize("mode", ["replace", "append"])
def test_a_file_commit_step_run_again_after_its_parts_were_removed_succeeds(
    tmp_path: Path, mode: str
) -> None:
    """A parquet dataset's commit step run again after its publish landed and its parts
    were removed (the worker killed just before recording the step): the run's commit mark
    says it landed, so nothing is counted (the parts' files are gone) or published again."""
    import asyncio

    from hygge.stores.parquet import ParquetStore

    lake, key = tmp_path / "lake", unique("run")

    def store() -> ParquetStore:
        return ParquetStore("lake", path=str(lake), mode=mode)

    async def stage(part: str, start: int) -> dict[str, Any]:
        s = store()
        await s.open_part(part)
        await s.write(pl.DataFrame({"id": range(start, start + 1_000)}))
        return await s.seal_part(part)

    async def scenario() -> None:
        parts = [await stage(f"{key}.p0000", 0), await stage(f"{key}.p0001", 1_000)]
        first = store()
        assert not await first.parts_committed(parts)
        assert await first.parts_rows(parts) == 2_000
        await first.commit_parts(parts)
        await first.abort_parts(parts)  # the step's clean-up; then the step runs again
        again = store()
        assert await again.parts_committed(parts)
        await again.commit_parts(parts)

    asyncio.run(scenario())
    got = duckdb.sql(f"SELECT count(*), sum(id) FROM read_parquet('{lake}/*.parquet')").fetchall()[
        0
    ]
    assert got == (2_000, sum(range(2_000)))


def test_a_failing_part_into_sql_leaves_no_table(postgres_url: str, tmp_path: Path) -> None:
    db = Db(postgres_url)
    target = unique("dest")
    try:
        flows = tmp_path / "flows.yml"
        flows.write_text(
            "flows:\n  pieces:\n"
            f"    home: {{type: test_pieces, log: {tmp_path / 'log'}, fail_part: 3}}\n"
            f"    store: {{type: sql, connection: '{postgres_url}', table: {target}}}\n"
            "    options: {partitions: 4}\n"
        )
        result = Coordinator(flows).run()
        assert not result.ok and "piece 3 is broken" in str(result.results["pieces"].error)
        assert not db.exists(target)
        assert not [t for t in db.staging_tables() if target in t]
    finally:
        db.drop(target)
        db.close()


# -- file homes -----------------------------------------------------------------------------


def _parquet(path: Path, start: int, rows: int, row_group: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = pa.array(range(start, start + rows), pa.int64())
    pq.write_table(
        pa.table({"id": ids, "v": pc.cast(ids, pa.string())}),
        path,
        row_group_size=row_group,
    )


def test_one_big_parquet_file_splits_by_row_groups(tmp_path: Path) -> None:
    _parquet(tmp_path / "in" / "big.parquet", 0, 10_007, 1000)
    flows = tmp_path / "flows.yml"
    flows.write_text(
        "flows:\n  big:\n    home: in/big.parquet\n    store: lake/big\n"
        "    options: {partitions: 4}\n"
    )
    result = Coordinator(flows).run()
    assert result.ok and result.results["big"].parts_total == 4
    assert fingerprint(tmp_path / "lake" / "big") == fingerprint(tmp_path / "in" / "big.parquet")
    assert len(list((tmp_path / "lake" / "big").glob("*.parquet"))) == 4


def test_files_split_into_csv_dataset_and_incremental_files(tmp_path: Path) -> None:
    for i in range(6):
        _parquet(tmp_path / "in" / f"f{i}.parquet", i * 100, 100, 50)
    flows = tmp_path / "flows.yml"
    flows.write_text(
        "flows:\n  files:\n    home: in\n    store: {type: csv, path: lake/files}\n"
        "    options: {partitions: auto, incremental: true}\n"
    )
    first = Coordinator(flows).run()
    assert first.ok and first.results["files"].rows == 600
    _parquet(tmp_path / "in" / "f6.parquet", 600, 100, 50)
    second = Coordinator(flows).run()
    assert second.ok and second.results["files"].rows == 100  # only the new file
    typed = "cast(id AS bigint) AS id, cast(v AS varchar) AS v"  # CSV has no types
    assert fingerprint(tmp_path / "lake" / "files", typed) == fingerprint(tmp_path / "in", typed)


# -- failures of one part -------------------------------------------------------------------


class PieceSettings(HomeSettings):
    parts: int = 4
    fail_part: int | None = None  # this part fails for good
    flaky_part: int | None = None  # this part fails once with a transient error
    log: str = ""


class PiecesHome(SplittableHome, Home[PieceSettings]):
    """A home of `parts` pieces of 1000 rows; records every read of a piece in `log`."""

    type_name = "test_pieces"
    piece: int | None = None

    async def plan_parts(self, count: Any, ranges: Any = None) -> list[dict[str, Any]]:
        return [{"piece": i} for i in range(self.settings.parts)]

    def part(self, descriptor: dict[str, Any]) -> PiecesHome:
        home = PiecesHome(self.name, self.settings)
        home.piece = descriptor["piece"]
        return home

    async def read_batches(self) -> AsyncIterator[pl.DataFrame]:
        s, piece = self.settings, self.piece
        assert piece is not None
        log = Path(s.log)
        reads = log.read_text().split() if log.exists() else []
        with log.open("a") as out:
            out.write(f"{piece}\n")
        yield pl.DataFrame({"id": range(piece * 1000, piece * 1000 + 500)})
        if piece == s.fail_part:
            raise HomeError(f"piece {piece} is broken")
        if piece == s.flaky_part and str(piece) not in reads:
            raise TransientError(f"piece {piece} hiccuped")
        yield pl.DataFrame({"id": range(piece * 1000 + 500, piece * 1000 + 1000)})


def _pieces_flow(tmp_path: Path, **settings: Any) -> Path:
    flows = tmp_path / "flows.yml"
    extra = "".join(f", {k}: {v}" for k, v in settings.items())
    flows.write_text(
        "flows:\n  pieces:\n"
        f"    home: {{type: test_pieces, log: {tmp_path / 'log'}{extra}}}\n"
        "    store: lake/pieces\n"
        "    options: {partitions: 4, retries: 2, retry_delay: 0}\n"
    )
    return flows


def test_a_transient_failure_retries_only_its_part(tmp_path: Path) -> None:
    result = Coordinator(_pieces_flow(tmp_path, flaky_part=2)).run()
    assert result.ok and result.results["pieces"].rows == 4000
    assert sorted((tmp_path / "log").read_text().split()) == ["0", "1", "2", "2", "3"]
    assert fingerprint(tmp_path / "lake" / "pieces") == (
        4000,
        duckdb.sql("select sum(hash(t)) from (select range as id from range(4000)) t").fetchall()[
            0
        ][0],
    )


def test_a_permanent_failure_publishes_nothing_and_cleans_every_part(tmp_path: Path) -> None:
    (tmp_path / "lake" / "pieces").mkdir(parents=True)
    _parquet(tmp_path / "lake" / "pieces" / "old.parquet", 0, 10, 10)
    before = fingerprint(tmp_path / "lake" / "pieces")
    result = Coordinator(_pieces_flow(tmp_path, fail_part=1)).run()
    assert not result.ok and "piece 1 is broken" in str(result.results["pieces"].error)
    assert fingerprint(tmp_path / "lake" / "pieces") == before
    assert sorted(os.listdir(tmp_path / "lake")) == ["pieces"]  # no staging left


# -- bad input at validation ----------------------------------------------------------------

PG = "postgresql://u@h/db"


@pytest.mark.parametrize(
    ("flow", "says"),
    [
        (
            "{home: {type: sql, connection: '" + PG + "', table: t, partition_on: id}, "
            "store: out, options: {partitions: 0}}",
            "partitions must be a whole number of 1 or more, or `auto`",
        ),
        (
            "{home: {type: sql, connection: '" + PG + "', table: t, partition_on: id}, "
            "store: out, options: {partitions: eight}}",
            "not 'eight'",
        ),
        (
            "{home: {type: sql, connection: '" + PG + "', table: t, partition_on: id}, "
            "store: out, options: {ranges: [[0, 10], [5, 20]]}}",
            "ranges 1 and 2 overlap",
        ),
        (
            "{home: {type: sql, connection: '" + PG + "', table: t, partition_on: id}, "
            "store: out, options: {ranges: [[0, 10], [12, 20]]}}",
            "leave a gap between 10 and 12",
        ),
        (
            "{home: {type: sql, connection: '" + PG + "', table: t}, "
            "store: out, options: {partitions: 4}}",
            "has no partition_on",
        ),
        (
            "{home: {type: sql, connection: '" + PG + "', table: t, partition_on: id}, store: out}",
            "partition_on is set but the flow has no `partitions:`",
        ),
        (
            "{home: in.parquet, store: out, options: {ranges: [[0, 10], [10, 20]]}}",
            "splits by files",
        ),
        (
            "{home: in.parquet, store: {type: delta, path: d, mode: merge, key: id}, "
            "options: {partitions: 2}}",
            "takes parts in mode replace or append only",
        ),
    ],
)
def test_bad_partition_settings_are_config_errors(flow: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(f"flows:\n  big: {flow}\n", "flows.yml")
    message = str(caught.value)
    assert says in message and "big" in message, message


def test_a_store_that_cannot_take_parts_is_refused_naming_those_that_can() -> None:
    class SingleStore(Store[StoreSettings]):
        type_name = "test_single"

    with pytest.raises(ConfigError) as caught:
        parse(
            "flows:\n  s: {home: in.parquet, store: {type: test_single}, "
            "options: {partitions: 2}}\n",
            "flows.yml",
        )
    message = str(caught.value)
    assert "store type 'test_single' cannot take parts staged by several processes" in message
    able = message.split("(", 1)[1].split(")", 1)[0].split(", ")
    assert {"csv", "delta", "open_mirroring", "parquet", "sql"} <= set(able), message
    assert "'s'" in message, message


def test_a_home_that_cannot_split_is_refused_naming_the_splitting_homes() -> None:
    class WholeHome(Home[HomeSettings]):
        type_name = "test_whole"

    with pytest.raises(ConfigError) as caught:
        parse(
            "flows:\n  w: {home: {type: test_whole}, store: out, options: {partitions: 2}}\n",
            "flows.yml",
        )
    message = str(caught.value)
    assert "home type 'test_whole' cannot split into partitions" in message
    assert "parquet" in message and "sql" in message


def test_parts_of_a_run_whose_commit_never_came_are_swept_after_a_week(tmp_path: Path) -> None:
    _parquet(tmp_path / "in.parquet", 0, 100, 10)
    lake = tmp_path / "lake"
    abandoned = lake / ".big.hygge-parts-0123456789ab" / "p0000-x"
    recent = lake / ".big.hygge-parts-ba9876543210" / "p0000-y"
    for folder in (abandoned, recent):
        folder.mkdir(parents=True)
        (folder / "part-1.parquet").write_bytes(b"x")
    week_ago = __import__("time").time() - 8 * 24 * 3600
    for p in (abandoned, abandoned / "part-1.parquet", abandoned.parent):
        os.utime(p, (week_ago, week_ago))
    flows = tmp_path / "flows.yml"
    flows.write_text("flows:\n  big:\n    home: in.parquet\n    store: lake/big\n")
    assert Coordinator(flows).run().ok
    assert not abandoned.parent.exists() and recent.exists()
