"""Partitioned flows into object storage, in `hygge run`: PostgreSQL -> S3 parquet (replace,
append), -> Delta on S3, S3 parquet -> S3 parquet; each part stages under the dataset's hidden
prefix and one commit publishes them all. Read back with DuckDB / deltalake: exact by count
and content; a run killed mid-commit, then run again: exact, published once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from deltalake import DeltaTable

from hygge import Coordinator
from hygge.storage.credentials import delta_storage_options, resolve
from hygge.storage.location import Location
from tests.conftest import kill_run_when, run_cli
from tests.objectstore import Emulator, download, objects, open_uploads, upload
from tests.sqldb import Db, unique

pytestmark = pytest.mark.slow
N = 20_000


@pytest.fixture
def source(postgres_url: str) -> Iterator[tuple[Db, str]]:
    db = Db(postgres_url)
    table = unique("objparts")
    db.run(
        f"CREATE TABLE {table} AS SELECT i AS id, 'v' || i AS v, "
        f"(i * 0.5)::float8 AS x FROM generate_series(1, {N}) i"
    )
    yield db, table
    db.drop(table)
    db.close()


def rows_of_db(db: Db, table: str) -> list[tuple[Any, ...]]:
    return sorted(db.run(f"SELECT id, v, x FROM {table}"))


def rows_of_parquet(emu: Emulator, url: str, dest: Path) -> list[tuple[Any, ...]]:
    got = download(emu, url, dest)
    return sorted(duckdb.sql(f"SELECT id, v, x FROM read_parquet('{got}/*.parquet')").fetchall())


def delta(emu: Emulator, uri: str) -> DeltaTable:
    return DeltaTable(
        uri, storage_options=delta_storage_options(Location.parse(uri), resolve({}, emu.env))
    )


def flows(project: Path, db: Db, table: str, store: str, parts: int = 4) -> Path:
    path = project / "flows.yml"
    path.write_text(
        "flows:\n  big:\n"
        f"    home: {{type: sql, connection: '{db.url}', table: {table}, partition_on: id, "
        "batch_size: 1500}\n"
        f"    store: {store}\n"
        f"    options: {{partitions: {parts}}}\n"
    )
    return path


def no_leftovers(emu: Emulator, prefix: str) -> None:
    left = [o for o in objects(emu, prefix) if ".hygge-" in o or "/_hygge/journal/" in o]
    assert left == [], left
    if emu.scheme in ("s3", "az"):  # every staged upload or block list completed (published)
        assert open_uploads(emu, prefix) == []  # or aborted (Azure: only dead attempts stay)


@pytest.mark.parametrize("mode", ["replace", "append"])
def test_postgres_to_s3_parquet_in_parts(
    mode: str, source, emulators, cloud_env, tmp_path: Path
) -> None:
    db, table = source
    emu = emulators["s3"]
    cloud_env(emu)
    bucket = emu.new_bucket()
    url = f"{bucket}/lake/big"
    path = flows(tmp_path, db, table, f"{{path: '{url}', mode: {mode}, max_rows_per_file: 2000}}")
    for run in (1, 2):
        result = Coordinator(path).run()
        assert result.ok, result.failed
        report = result.results["big"]
        assert report.rows == N and report.parts_done == report.parts_total == 4
        expected = rows_of_db(db, table) * (run if mode == "append" else 1)
        assert rows_of_parquet(emu, url, tmp_path / f"out{run}") == sorted(expected)
        no_leftovers(emu, f"{bucket}/lake")


def test_postgres_to_delta_on_s3_in_parts_is_one_commit(
    source, emulators, cloud_env, tmp_path: Path
) -> None:
    db, table = source
    emu = emulators["s3"]
    cloud_env(emu)
    bucket = emu.new_bucket()
    uri = f"{bucket}/lake/big"
    path = flows(tmp_path, db, table, f"{{type: delta, path: '{uri}', mode: append}}", parts=5)
    for run in (1, 2):
        result = Coordinator(path).run()
        assert result.ok, result.failed
        t = delta(emu, uri)
        assert t.version() == run - 1  # every part in ONE commit per run
        got = sorted(
            t.to_pyarrow_table().select(["id", "v", "x"]).to_pylist(), key=lambda r: r["id"]
        )
        want = sorted(
            [{"id": i, "v": v, "x": x} for i, v, x in rows_of_db(db, table)] * run,
            key=lambda r: r["id"],
        )
        assert got == want
    # Nothing but listed files in the table's folder: the parts wrote no stray data.
    listed = {f.rsplit("/", 1)[-1] for f in delta(emu, uri).file_uris()}
    data = {o.rsplit("/", 1)[-1] for o in objects(emu, uri) if "/_delta_log/" not in o}
    assert data == listed


@pytest.mark.parametrize("cloud", ["s3", "az"])
def test_object_store_parquet_home_to_parquet_in_parts(
    cloud, emulators, cloud_env, tmp_path: Path
) -> None:
    """Parts staged on S3 as open uploads, on Azure as uncommitted blocks, committed once."""
    emu = emulators[cloud]
    cloud_env(emu)
    bucket = emu.new_bucket()
    local = tmp_path / "raw"
    local.mkdir()
    for i in range(6):
        ids = range(i * 3_000, (i + 1) * 3_000)
        pl.DataFrame(
            {"id": list(ids), "v": [f"v{j}" for j in ids], "x": [j * 0.5 for j in ids]}
        ).write_parquet(local / f"d{i}.parquet")
        upload(emu, local / f"d{i}.parquet", f"{bucket}/raw/d{i}.parquet")
    (tmp_path / "flows.yml").write_text(
        f"flows:\n  big:\n    home: {bucket}/raw/*.parquet\n"
        f"    store: {{path: '{bucket}/lake/big', max_rows_per_file: 2500}}\n"
        "    options: {partitions: 3}\n"
    )
    result = Coordinator(tmp_path / "flows.yml").run()
    assert result.ok, result.failed
    assert result.results["big"].parts_total == 3
    want = sorted(duckdb.sql(f"SELECT id, v, x FROM read_parquet('{local}/*.parquet')").fetchall())
    assert rows_of_parquet(emu, f"{bucket}/lake/big", tmp_path / "out") == want
    no_leftovers(emu, f"{bucket}/lake")


def test_killed_mid_commit_then_rerun_is_exact(
    source, emulators, cloud_env, tmp_path: Path, monkeypatch
) -> None:
    """SIGKILL once the parts' commit journal exists: the dataset is completed by the rerun
    (which rolls the journal forward before its own commit), published once, nothing left."""
    db, table = source
    emu = emulators["s3"]
    cloud_env(emu)
    monkeypatch.setenv("HYGGE_OBJECT_LOCK_SECONDS", "1")  # the killed run's lock expires soon
    bucket = emu.new_bucket()
    url = f"{bucket}/lake/big"
    flows(tmp_path, db, table, f"{{path: '{url}', max_rows_per_file: 200}}")

    def journal_written() -> bool:
        return any("/_hygge/journal/" in o for o in objects(emu, url))

    kill_run_when(tmp_path, journal_written, timeout=300)
    assert journal_written(), "the kill came after the commit finished: nothing tested"
    done = run_cli("run", "flows.yml", "--wait-for-lock", cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    assert rows_of_parquet(emu, url, tmp_path / "out") == rows_of_db(db, table)
    assert not journal_written()
    # The killed run's parts are left (no process was there to remove them); they are
    # invisible to readers, and swept once abandoned (test_partitions covers the sweep).
    assert not [o for o in objects(emu, f"{bucket}/lake") if "hygge-staging" in o]


def test_postgres_to_local_delta_in_parts(source, tmp_path: Path) -> None:
    """Local Delta too: each part's files unlisted until the one commit; a replace run
    replaces in one more commit."""
    db, table = source
    uri = tmp_path / "lake" / "big"
    for run, mode in ((1, "append"), (2, "replace")):
        path = flows(tmp_path, db, table, f"{{type: delta, path: '{uri}', mode: {mode}}}", parts=3)
        result = Coordinator(path).run()
        assert result.ok, result.failed
        t = DeltaTable(str(uri))
        assert t.version() == run - 1
        got = sorted(
            tuple(r.values()) for r in t.to_pyarrow_table().select(["id", "v", "x"]).to_pylist()
        )
        assert got == rows_of_db(db, table)


def test_the_partitioned_sample_into_s3(emulators, cloud_env, tmp_path: Path) -> None:
    """samples/partitioned.yml as the compose stack runs it (its lake on S3): exact."""
    emu = emulators["s3"]
    env = cloud_env(emu)
    lake = f"{emu.new_bucket()}/samples"
    root = Path(__file__).resolve().parent.parent
    done = run_cli(
        "run", str(root / "samples" / "partitioned.yml"), env={**env, "HYGGE_SAMPLES_LAKE": lake}
    )
    assert done.returncode == 0, done.stderr
    source = f"read_csv_auto('{root / 'samples' / 'data' / 'orders.csv'}')"
    want = sorted(duckdb.sql(f"FROM {source}").fetchall())
    got = download(emu, f"{lake}/orders_in_parts", tmp_path / "parts")
    assert sorted(duckdb.sql(f"FROM read_parquet('{got}/*.parquet')").fetchall()) == want
    table = delta(emu, f"{lake}/orders_delta")
    rows = table.to_pyarrow_table()
    assert table.version() == 0 and rows.num_rows == len(want)
    assert sorted(duckdb.sql("FROM rows").fetchall()) == want
