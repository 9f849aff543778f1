"""The Open Mirroring store end to end: a PostgreSQL table into a landing zone (local disk and
Azurite) with the real CLI; an independent replayer (tests/landing_replay.py) applies the
files as Fabric's replicator does and must reproduce the source exactly after a full load,
after inserts, updates and deletes at the source, and after a SIGKILL followed by a rerun."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow.fs as pafs
import pytest

from tests.checks import tree_digest
from tests.conftest import kill_run_when, run_cli
from tests.helpers import write_flows
from tests.landing_replay import check_names, replay, replay_files
from tests.sqldb import Db, unique

COLUMNS = ["id", "v", "deleted"]


class Source:
    """A PostgreSQL table the tests change between runs."""

    def __init__(self, url: str, rows: int = 50) -> None:
        self.url = url
        self.db = Db(url)
        self.table = unique("om")
        self.db.run(
            f"CREATE TABLE {self.table} (id int PRIMARY KEY, v text, deleted boolean NOT NULL "
            "DEFAULT false, updated_at timestamptz NOT NULL DEFAULT clock_timestamp())"
        )
        self.insert(1, rows)

    def insert(self, first: int, last: int) -> None:
        self.db.run(
            f"INSERT INTO {self.table} (id, v) SELECT i, 'v' || i FROM "
            "generate_series(%s::int, %s::int) i",
            (first, last),
        )

    def change(self, hard_deletes: bool = True) -> None:
        """Inserts, updates and (unless an incremental read could not see them) deletes at
        the source."""
        top = self.db.run(f"SELECT max(id) FROM {self.table}")[0][0]
        self.insert(top + 1, top + 10)
        self.db.run(
            f"UPDATE {self.table} SET v = v || '-new', updated_at = clock_timestamp() "
            "WHERE id % 7 = 0"
        )
        if hard_deletes:
            self.db.run(f"DELETE FROM {self.table} WHERE id % 5 = 0")

    def soft_delete(self) -> None:
        self.db.run(
            f"UPDATE {self.table} SET deleted = true, updated_at = clock_timestamp() "
            "WHERE id % 3 = 0"
        )

    def rows(self, live_only: bool = False) -> set[tuple]:
        where = " WHERE NOT deleted" if live_only else ""
        return set(self.db.run(f"SELECT id, v, deleted FROM {self.table}{where}"))

    def close(self) -> None:
        self.db.drop(self.table)
        self.db.close()


@pytest.fixture
def source(postgres_url: str) -> Iterator[Source]:
    src = Source(postgres_url)
    yield src
    src.close()


def flows(source: Source, store: str, options: str = "", home: str = "") -> str:
    return (
        "flows:\n"
        "  erp:\n"
        f"    home: {{type: sql, connection: '{source.url}', table: {source.table},"
        f" batch_size: 20{home}}}\n"
        f"    store: {store}\n" + (f"    options: {options}\n" if options else "")
    )


def run(project: Path) -> None:
    done = run_cli("run", "flows.yml", cwd=project, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


def markers(table_dir: Path) -> list[list[int]]:
    """The marker values of each data file, in sequence order ([] for a file without)."""
    out = []
    with duckdb.connect() as con:
        for name in check_names([p.name for p in table_dir.iterdir() if p.is_file()]):
            rel = con.sql(f"select * from read_parquet('{table_dir / name}')")
            if "__rowMarker__" in rel.columns:
                assert rel.columns[-1] == "__rowMarker__"
                out.append(sorted({r[-1] for r in rel.fetchall()}))
            else:
                out.append([])
    return out


def test_snapshot_flow_mirrors_inserts_updates_and_deletes(tmp_path: Path, source: Source):
    lz = tmp_path / "LandingZone"
    store = "{type: open_mirroring, path: LandingZone, table: dbo.orders, key: [id], " + (
        "mode: snapshot, max_rows_per_file: 30}"
    )
    project = write_flows(tmp_path, flows(source, store)).parent
    run(project)
    table = lz / "dbo.schema" / "orders"
    key, rows = replay(table, COLUMNS)
    assert key == ["id"]
    assert json.loads((table / "_metadata.json").read_text()) == {"keyColumns": ["id"]}
    metadata = (table / "_metadata.json").stat()
    assert rows == source.rows()
    assert markers(table) == [[4], [4]]  # 50 rows, 30 a file: two files of upserts
    events = json.loads((lz / "_partnerEvents.json").read_text())
    assert events["partnerName"] == "hygge" and "sourceType" in events["sourceInfo"]

    source.change()
    run(project)
    _, rows = replay(table, COLUMNS)
    assert rows == source.rows()
    assert markers(table)[-1] == [2]  # the last file deletes the keys that disappeared
    # nothing of hygge's visible to the replicator but the table folder's hidden area
    visible = sorted(p.name for p in table.iterdir())
    assert visible == [*(f"{i:020d}.parquet" for i in range(1, 6)), "_hygge", "_metadata.json"]

    run(project)  # no change at the source: upserts again, no delete
    _, rows = replay(table, COLUMNS)
    assert rows == source.rows()
    assert markers(table)[-1] == [4]
    # _metadata.json was written once: never rewritten by the later runs
    after = (table / "_metadata.json").stat()
    assert (after.st_ino, after.st_mtime_ns) == (metadata.st_ino, metadata.st_mtime_ns)


def test_incremental_flow_with_soft_deletes(tmp_path: Path, source: Source):
    store = "{type: open_mirroring, path: LandingZone, table: orders, key: id, " + (
        "soft_delete: deleted}"
    )
    body = flows(source, store, "{incremental: true}", home=", cursor: updated_at")
    project = write_flows(tmp_path, body).parent
    table = tmp_path / "LandingZone" / "orders"
    run(project)
    _, rows = replay(table, COLUMNS)
    assert rows == source.rows(live_only=True)

    source.change(hard_deletes=False)  # a cursor cannot see a row that is gone
    source.soft_delete()
    run(project)
    _, rows = replay(table, COLUMNS)
    assert rows == source.rows(live_only=True)
    assert 2 in markers(table)[-1] and 4 in markers(table)[-1]
    state = list((table / "_hygge" / "state").iterdir())
    assert len(state) == 1  # the cursor is kept with the data


def test_replace_resets_the_table_as_documented(tmp_path: Path, source: Source):
    store = "{type: open_mirroring, path: LandingZone, table: orders, key: [id]}"
    project = write_flows(tmp_path, flows(source, store)).parent
    table = tmp_path / "LandingZone" / "orders"
    run(project)
    assert markers(table) == [[]]  # an initial load: no marker column, read as inserts
    source.change()
    run(project)
    # the folder was deleted and created again: the sequence starts at 1 again
    assert [p.name for p in table.iterdir() if p.suffix == ".parquet"] == [f"{1:020d}.parquet"]
    _, rows = replay(table, COLUMNS)
    assert rows == source.rows()


def test_sigkill_mid_run_then_rerun(tmp_path: Path, postgres_url: str):
    source = Source(postgres_url, rows=60_000)
    try:
        store = "{type: open_mirroring, path: LandingZone, table: orders, key: [id], " + (
            "mode: snapshot, max_rows_per_file: 5000}"
        )
        project = write_flows(tmp_path, flows(source, store).replace("20}", "2000}")).parent
        lz = tmp_path / "LandingZone"
        table = lz / "orders"
        run(project)
        before = tree_digest(table)
        source.change()
        staging = lz / "_hygge" / "orders"

        def staged_some() -> bool:
            return staging.exists() and any(
                len(list(d.glob("part-*"))) >= 2 for d in staging.glob("staging-*")
            )

        kill_run_when(project, staged_some, timeout=300)
        assert tree_digest(table) == before  # nothing published, no partial file visible
        run(project)
        _, rows = replay(table, COLUMNS)
        assert rows == source.rows()
        assert not list(staging.glob("staging-*"))  # the dead run's staging is gone
    finally:
        source.close()


def test_a_commit_killed_midway_is_finished_by_the_next_run(tmp_path: Path, source: Source):
    """The journal names every file's final number: the next run completes it, so there is
    no gap and no number twice (the renames of the dead commit are replayed by hand here,
    stopping after the first, as a SIGKILL there would leave them)."""
    from hygge.stores import _landing as lz
    from hygge.stores.open_mirroring import OpenMirroringStore

    store = "{type: open_mirroring, path: LandingZone, table: orders, key: [id], " + (
        "mode: snapshot, max_rows_per_file: 20}"
    )
    project = write_flows(tmp_path, flows(source, store)).parent
    run(project)
    source.change()
    # a run that dies inside its commit: the journal written, one file of three renamed
    original = lz.apply_journal
    calls = {"n": 0}

    def dies_after_first_move(tree, journal):  # the real journal, cut short
        plan = tree.read_json(journal)
        if plan is None:
            return original(tree, journal)
        src, dst = plan["moves"][0]
        tree.move(src, dst)
        calls["n"] += 1
        raise Killed

    lz.apply_journal = dies_after_first_move
    try:
        import asyncio

        import polars as pl

        s = OpenMirroringStore(
            "erp",
            path=str(tmp_path / "LandingZone"),
            table="orders",
            key=["id"],
            mode="snapshot",
            max_rows_per_file=20,
        )
        df = pl.DataFrame(
            sorted(source.rows()), schema=["id", "v", "deleted"], orient="row"
        ).with_columns(pl.col("id").cast(pl.Int32))
        with pytest.raises(Killed):
            asyncio.run(_write_and_commit(s, df))
    finally:
        lz.apply_journal = original
    assert calls["n"] == 1
    table = tmp_path / "LandingZone" / "orders"
    assert (tmp_path / "LandingZone" / "_hygge" / "orders" / "commit.json").exists()
    run(project)  # finishes the journal first, then its own run
    names = check_names([p.name for p in table.iterdir() if p.is_file()])
    assert len(names) >= 5
    _, rows = replay(table, COLUMNS)
    assert rows == source.rows()


class Killed(BaseException):
    """The process dying at that point (nothing after it runs, not even abort)."""


async def _write_and_commit(store, df) -> None:
    await store.open()
    await store.write(df)
    await store.commit()


def test_landing_zone_on_azurite(tmp_path: Path, source: Source, emulators, cloud_env):
    emu = emulators["az"]
    env = cloud_env(emu)
    url = f"{emu.new_bucket()}/db/Files/LandingZone"
    bucket = url.split("://", 1)[1].split("/", 1)[0]
    store = f"{{type: open_mirroring, path: '{url}', table: orders, key: [id], mode: snapshot}}"
    project = write_flows(tmp_path, flows(source, store)).parent

    def remote_rows() -> set[tuple]:
        fs = emu.filesystem()
        base = f"{bucket}/db/Files/LandingZone/orders"
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=False))
        names = check_names([i.base_name for i in infos if i.type == pafs.FileType.File])
        local = tmp_path / "download"
        local.mkdir(exist_ok=True)
        for n in names:
            with fs.open_input_stream(f"{base}/{n}") as f:
                (local / n).write_bytes(f.read())
        with fs.open_input_stream(f"{base}/_metadata.json") as f:
            assert json.loads(f.read()) == {"keyColumns": ["id"]}
        return set(replay_files([local / n for n in names], ["id"], COLUMNS).values())

    done = run_cli("run", "flows.yml", cwd=project, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert remote_rows() == source.rows()
    source.change()
    done = run_cli("run", "flows.yml", cwd=project, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert remote_rows() == source.rows()


def test_two_runs_into_one_landing_zone_table_at_once_on_azurite(
    tmp_path: Path, emulators, cloud_env
):
    """Two `hygge run`s into one landing-zone table at once: the second is refused (exit 3)
    while the first holds the lock object, which sits in the landing zone's `_hygge/` (the
    replicator ignores it; on OneLake only the landing zone is writable); the first loads
    every row once and releases it."""
    import os
    import subprocess
    import sys
    import time

    from hygge.exit_codes import LOCKED
    from tests.conftest import ROOT
    from tests.objectstore import objects

    emu = emulators["az"]
    env = {**cloud_env(emu), "HYGGE_PLUGINS": "tests.distributed_plugins"}
    bucket = emu.new_bucket()
    lz_url = f"{bucket}/db/Files/LandingZone"
    project = write_flows(
        tmp_path,
        "flows:\n  erp:\n"
        "    home: {type: slow, rows: 600, batch_size: 100, delay: 1.0}\n"
        f"    store: {{type: open_mirroring, path: '{lz_url}', table: orders, key: [id],"
        " mode: append}\n",
    ).parent
    first = subprocess.Popen(
        [sys.executable, "-m", "hygge", "run", "flows.yml"],
        cwd=project,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lock = f"{lz_url}/_hygge/.orders.hygge-lock.erp"
    deadline = time.monotonic() + 180
    while lock not in objects(emu, f"{bucket}/db"):
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    second = run_cli("run", "flows.yml", cwd=project, env=env, timeout=300)
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert second.returncode == LOCKED and "already running" in second.stderr, second.stderr
    left = objects(emu, f"{bucket}/db")
    assert all(o.startswith(f"{lz_url}/") for o in left), left  # nothing outside the zone
    assert not any(".hygge-lock." in o for o in left), left  # released
    fs = emu.filesystem()
    base = f"{bucket.split('://', 1)[1]}/db/Files/LandingZone/orders"
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=False))
    names = check_names([i.base_name for i in infos if i.type == pafs.FileType.File])
    local = tmp_path / "download"
    local.mkdir()
    for n in names:
        with fs.open_input_stream(f"{base}/{n}") as f:
            (local / n).write_bytes(f.read())
    with duckdb.connect() as con:
        files = [str(local / n) for n in names]
        rows, distinct = con.execute(
            "SELECT count(*), count(DISTINCT id) FROM read_parquet(?)", [files]
        ).fetchone()
    assert (rows, distinct) == (600, 600)  # once each: the refused run wrote nothing


def test_entities_each_table_in_its_folder(tmp_path: Path, postgres_url: str):
    db = Db(postgres_url)
    schema = unique("oms")
    db.run(f"CREATE SCHEMA {schema}")
    try:
        for t in ("customers", "orders"):
            db.run(f"CREATE TABLE {schema}.{t} (id int PRIMARY KEY, v text)")
            db.run(f"INSERT INTO {schema}.{t} SELECT i, '{t}' || i FROM generate_series(1, 9) i")
        body = f"""
flows:
  erp:
    home: {{type: sql, connection: "{postgres_url}", tables: ["{schema}.*"]}}
    store: {{type: open_mirroring, path: LandingZone, table: "{{entity}}", key: [id],
             mode: snapshot}}
"""
        project = write_flows(tmp_path, body).parent
        run(project)
        for t in ("customers", "orders"):
            folder = next((tmp_path / "LandingZone").rglob(f"{t}/_metadata.json")).parent
            _, rows = replay(folder, ["id", "v"])
            assert rows == set(db.run(f"SELECT id, v FROM {schema}.{t}"))
    finally:
        db.run(f"DROP SCHEMA {schema} CASCADE")
        db.close()


# -- bad input: clear errors at validation, nothing written ---------------------------------


@pytest.mark.parametrize(
    ("store", "expected"),
    [
        ("{type: open_mirroring, path: LandingZone, table: orders}", "needs `key`"),
        ("{type: open_mirroring, path: LandingZone, table: orders, key: [nope]}", "nope"),
        ("{type: open_mirroring, path: LandingZone, table: 'a/b', key: [id]}", "'/'"),
        ("{type: open_mirroring, path: LandingZone, table: _x, key: [id]}", "starts with '_'"),
        (
            "{type: open_mirroring, path: 'onelake://ws/db/Files', table: t, key: [id]}",
            "not a mirrored database's landing zone",
        ),
        ("{type: open_mirroring, path: LandingZone/orders, table: t, key: [id]}", "table folder"),
        ("{type: open_mirroring, path: lake, table: t, key: [id]}", "holds data files"),
        (
            "{type: open_mirroring, path: LandingZone, table: orders, key: [id, v]}",
            "cannot change",
        ),
    ],
)
def test_bad_input_refused_at_validation(tmp_path: Path, source: Source, store: str, expected: str):
    existing = tmp_path / "LandingZone" / "orders"
    existing.mkdir(parents=True)
    (existing / "_metadata.json").write_text('{"keyColumns": ["id"]}')
    (tmp_path / "lake").mkdir()
    (tmp_path / "lake" / "part-0.parquet").write_bytes(b"PAR1")
    before = tree_digest(tmp_path)
    project = write_flows(tmp_path, flows(source, store)).parent
    before = tree_digest(tmp_path)
    for command in ("validate", "run"):
        done = run_cli(command, "flows.yml", cwd=project, timeout=300)
        assert done.returncode != 0, done.stdout
        out = done.stdout + done.stderr
        assert expected in out, out
        # where, and which flow: "flows.yml:N: flow 'erp'" (validate), "erp (flows.yml:N)" (run)
        assert "flow 'erp'" in out or "erp (flows.yml:" in out, out
        assert "flows.yml:" in out, out
        assert "Traceback" not in out
        assert tree_digest(tmp_path) == before  # nothing written


def test_snapshot_deletes_bucket_by_bucket(tmp_path: Path, monkeypatch):
    """Delete detection with many buckets (the path a big table takes), a two-column key
    and a key with a null part, through the Python API: one `write` is one commit."""
    import asyncio

    import polars as pl

    from hygge.stores import open_mirroring

    monkeypatch.setattr(open_mirroring, "KEYS_PER_BUCKET", 7)  # ~30 buckets for 200 keys

    def frame(ids: range, tag: str) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "a": [i // 10 for i in ids],
                "b": [None if i == 5 else f"k{i % 10}" for i in ids],
                "v": [f"{tag}{i}" for i in ids],
            }
        )

    def store() -> open_mirroring.OpenMirroringStore:
        return open_mirroring.OpenMirroringStore(
            "t",
            path=str(tmp_path / "LandingZone"),
            table="pairs",
            key=["a", "b"],
            mode="snapshot",
            max_rows_per_file=64,
        )

    first, second = frame(range(200), "x"), frame(range(37, 260, 2), "y")
    asyncio.run(store().write(first))
    asyncio.run(store().write(second))
    table = tmp_path / "LandingZone" / "pairs"
    key, rows = replay(table, ["a", "b", "v"])
    assert key == ["a", "b"]
    assert rows == set(second.iter_rows())
    assert not (tmp_path / "LandingZone" / "_hygge").exists()  # staging tidied away


def test_two_flows_into_one_table_are_refused(tmp_path: Path, source: Source):
    store = "{type: open_mirroring, path: LandingZone, table: orders, key: [id], mode: append}"
    body = flows(source, store)
    body += body.split("flows:\n", 1)[1].replace("  erp:", "  erp2:")
    project = write_flows(tmp_path, body).parent
    done = run_cli("validate", "flows.yml", cwd=project, timeout=300)
    assert done.returncode != 0
    assert "erp2" in done.stdout + done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "LandingZone").exists()


def test_an_incremental_flow_cannot_snapshot(tmp_path: Path, source: Source):
    """An incremental read sees only what changed: as a snapshot it would delete the rest.
    Refused where flows.yml is read (validate and run alike), naming the flow and the line
    of `mode:`, before anything is written."""
    store = (
        "{type: open_mirroring, path: LandingZone, table: orders, key: [id],\n"
        "             mode: snapshot}"
    )
    body = flows(source, store, "{incremental: true}", home=", cursor: updated_at")
    project = write_flows(tmp_path, body).parent
    line = body.splitlines().index("             mode: snapshot}") + 1
    for command in ("validate", "run"):
        done = run_cli(command, "flows.yml", cwd=project, timeout=300)
        out = done.stdout + done.stderr
        assert done.returncode != 0, out
        assert "would delete every other row" in out, out
        assert f"flows.yml:{line}" in out and "erp" in out, out
        assert "Traceback" not in out
        assert not (tmp_path / "LandingZone").exists()


def test_partitioned_flow_commits_every_part_in_one_sequence(tmp_path: Path, source: Source):
    store = "{type: open_mirroring, path: LandingZone, table: orders, key: [id], " + (
        "mode: snapshot, max_rows_per_file: 10}"
    )
    body = flows(source, store, "{partitions: 3}", home=", partition_on: id")
    project = write_flows(tmp_path, body).parent
    table = tmp_path / "LandingZone" / "orders"
    run(project)
    _, rows = replay(table, COLUMNS)
    assert rows == source.rows()
    source.change()
    run(project)
    _, rows = replay(table, COLUMNS)  # names checked: one continuous sequence
    assert rows == source.rows()
    assert markers(table)[-1] == [2]
    assert not (tmp_path / "LandingZone" / "_hygge").exists()  # the parts are cleaned up


def test_numbers_continue_after_the_files_the_replicator_moved(tmp_path: Path, source: Source):
    """Fabric's replicator moves processed files to `_ProcessedFiles` / `_FilesReadyToDelete`
    and leaves the last one in place: the next file continues the sequence after the highest
    number anywhere, never reusing one."""
    store = "{type: open_mirroring, path: LandingZone, table: orders, key: [id], mode: append}"
    project = write_flows(tmp_path, flows(source, store)).parent
    table = tmp_path / "LandingZone" / "orders"
    run(project)  # 50 rows: one file a run (below max_rows_per_file)
    first = sorted(p.name for p in table.glob("*.parquet"))
    assert first == [f"{1:020d}.parquet"]
    processed = table / "_ProcessedFiles"
    processed.mkdir()
    run(project)
    run(project)
    names = sorted(p.name for p in table.glob("*.parquet"))
    assert names == [f"{i:020d}.parquet" for i in (1, 2, 3)]
    for name in names[:2]:  # processed: moved away, the last one left in place
        (table / name).rename(processed / name)
    (table / "_FilesReadyToDelete").mkdir()
    (table / names[2]).rename(table / "_FilesReadyToDelete" / names[2])  # even the last
    run(project)
    assert sorted(p.name for p in table.glob("*.parquet")) == [f"{4:020d}.parquet"]


def test_a_second_run_of_the_flow_is_refused_while_one_holds_the_lock(
    tmp_path: Path, source: Source
):
    """Two runs of one flow into one table are serialised by the run lock (a real flock
    held here, the CLI in another process): the second is refused and writes nothing."""
    import asyncio

    from hygge.stores.open_mirroring import OpenMirroringStore

    store = "{type: open_mirroring, path: LandingZone, table: orders, key: [id], mode: append}"
    project = write_flows(tmp_path, flows(source, store)).parent
    run(project)
    before = tree_digest(tmp_path / "LandingZone")
    lock = OpenMirroringStore(
        "erp", path=str(tmp_path / "LandingZone"), table="orders", key=["id"]
    ).lock("erp")
    asyncio.run(lock.acquire())
    try:
        done = run_cli("run", "flows.yml", cwd=project, timeout=300)
        out = done.stdout + done.stderr
        assert done.returncode != 0, out
        assert "already running" in out and "Traceback" not in out, out
        assert tree_digest(tmp_path / "LandingZone") == before
    finally:
        lock.release()
    run(project)  # released: the next run goes through
    assert len(list((tmp_path / "LandingZone" / "orders").glob("*.parquet"))) == 2


def test_a_full_load_with_soft_deletes_marks_inserts_and_deletes(tmp_path: Path):
    """`replace` with `soft_delete`: the reset, then inserts (0) and deletes (2) in one file,
    `__rowMarker__` last; the replayer keeps the live rows only."""
    import asyncio

    import polars as pl

    from hygge.stores.open_mirroring import OpenMirroringStore

    df = pl.DataFrame({"id": [1, 2, 3, 4], "v": ["a", "b", "c", "d"], "gone": [0, None, 1, None]})
    store = OpenMirroringStore(
        "t", path=str(tmp_path / "LandingZone"), table="items", key=["id"], soft_delete="gone"
    )
    asyncio.run(store.write(df))
    table = tmp_path / "LandingZone" / "items"
    assert markers(table) == [[0, 2]]
    _, rows = replay(table, ["id", "v"])
    assert rows == {(2, "b"), (4, "d")}


async def _write_batches(store, frames) -> None:
    await store.open()
    for df in frames:
        await store.write(df)
    await store.commit()


def test_two_writers_full_loads_replay_exactly(tmp_path: Path):
    """`replace` and `snapshot` encode files on two writers (rows of the two interleave
    across files, fine when every key comes once): a continuous sequence, every file
    complete, the replayer rebuilding the table, and a snapshot's deletes after them."""
    import asyncio

    import polars as pl

    from hygge.stores.open_mirroring import OpenMirroringStore

    def batches(ids: range, tag: str) -> list[pl.DataFrame]:
        frame = pl.DataFrame({"id": list(ids), "v": [f"{tag}{i}" for i in ids]})
        return [frame.slice(i, 30) for i in range(0, frame.height, 30)]

    def store(mode: str) -> OpenMirroringStore:
        return OpenMirroringStore(
            "t",
            path=str(tmp_path / "LandingZone"),
            table="items",
            key=["id"],
            mode=mode,
            max_rows_per_file=50,
        )

    table = tmp_path / "LandingZone" / "items"
    asyncio.run(_write_batches(store("replace"), batches(range(600), "a")))
    written = check_names([p.name for p in table.iterdir() if p.is_file()])
    assert len(written) > 12  # two writers' files: more than 600 / 50
    assert replay(table, ["id", "v"])[1] == {(i, f"a{i}") for i in range(600)}
    second = batches(range(100, 700, 2), "b")
    asyncio.run(_write_batches(store("snapshot"), second))
    assert replay(table, ["id", "v"])[1] == {(i, f"b{i}") for i in range(100, 700, 2)}


def test_an_append_keeps_the_read_order_of_a_key_written_twice(tmp_path: Path):
    """An append may carry one key twice (a change log): its upserts land in read order, so
    the later one wins, across files (one writer: two would interleave the batches)."""
    import asyncio

    import polars as pl

    from hygge.stores.open_mirroring import OpenMirroringStore

    frames = [
        pl.DataFrame({"id": list(range(20 * b, 20 * b + 20)), "v": ["x"] * 20}) for b in range(6)
    ]
    frames[3] = frames[3].with_columns(
        pl.when(pl.col("id") == 61).then(pl.lit("old")).otherwise(pl.col("v")).alias("v")
    )
    frames[4] = pl.concat([frames[4], pl.DataFrame({"id": [61], "v": ["new"]})])
    store = OpenMirroringStore(
        "t",
        path=str(tmp_path / "LandingZone"),
        table="log",
        key=["id"],
        mode="append",
        max_rows_per_file=50,
        writers=2,
    )
    asyncio.run(_write_batches(store, frames))
    table = tmp_path / "LandingZone" / "log"
    rows = dict(replay(table, ["id", "v"])[1])
    assert rows[61] == "new"
    assert len(rows) == 120


def test_a_commit_step_run_again_after_its_parts_were_removed_adds_nothing(tmp_path: Path):
    """The commit step of a partitioned flow, run again after its publish landed and its
    parts were removed (its worker killed before recording the step): the landing zone's
    record of the last parts run says it landed; no file is numbered again."""
    import asyncio

    import polars as pl

    from hygge.stores.open_mirroring import OpenMirroringStore

    zone = tmp_path / "LandingZone"

    def store() -> OpenMirroringStore:
        return OpenMirroringStore("lz", path=str(zone), table="orders", key=["id"], mode="append")

    async def stage(part: str, start: int) -> dict:
        s = store()
        await s.open_part(part)
        await s.write(pl.DataFrame({"id": range(start, start + 100), "v": ["x"] * 100}))
        return await s.seal_part(part)

    async def scenario() -> None:
        parts = [await stage("run1.p0000", 0), await stage("run1.p0001", 100)]
        first = store()
        assert not await first.parts_committed(parts)
        assert await first.parts_rows(parts) == 200
        await first.commit_parts(parts)
        await first.abort_parts(parts)
        again = store()
        assert await again.parts_committed(parts)
        await again.commit_parts(parts)

    asyncio.run(scenario())
    files = sorted(p.name for p in (zone / "orders").glob("*.parquet"))
    assert files == [f"{i:020d}.parquet" for i in (1, 2)], files  # a file per part, once
    got = pl.concat([pl.read_parquet(zone / "orders" / f) for f in files])
    assert sorted(got["id"].to_list()) == list(range(200))
