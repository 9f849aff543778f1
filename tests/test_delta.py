"""Delta Lake store: one flow = one Delta commit, on a local path and on object storage.

Read back with deltalake at the expected version, and independently with DuckDB over the
parquet files the Delta log lists (DuckDB's delta extension needs a download, which this
machine cannot do)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest
from deltalake import DeltaTable

from hygge.storage.credentials import delta_storage_options, resolve
from hygge.storage.location import Location, is_object_url
from tests.conftest import run_cli


def drop(folder: Path, name: str, ids: range, tag: str = "a") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"id": list(ids), "v": [f"{tag}{i}" for i in ids]}).write_parquet(folder / name)


def table(uri: str, env: dict[str, str]) -> DeltaTable:
    options = (
        delta_storage_options(Location.parse(uri), resolve({}, env)) if is_object_url(uri) else None
    )
    return DeltaTable(uri, storage_options=options)


def duckdb_rows(dt: DeltaTable, tmp: Path, emu=None) -> tuple[int, int]:
    """Row count and checksum of the table's current files, read by DuckDB."""
    uris = dt.file_uris()
    if emu is not None:
        local = tmp / "dl"
        files = []
        fs = emu.filesystem()
        local.mkdir(parents=True, exist_ok=True)
        for u in uris:
            target = local / u.rsplit("/", 1)[1]
            with fs.open_input_stream(u.split("://", 1)[1]) as f:
                target.write_bytes(f.read())
            files.append(str(target))
        uris = files
    listing = ", ".join(f"'{u}'" for u in uris)
    q = f"select count(*), coalesce(sum(hash(id, v)), 0) from read_parquet([{listing}])"
    rows, checksum = duckdb.sql(q).fetchall()[0]
    return int(rows), int(checksum)


def expected(ids, tag="a") -> tuple[int, int]:
    q = (
        f"select count(*), coalesce(sum(hash(i, '{tag}' || i)), 0) "
        f"from range({ids.start}, {ids.stop}) t(i)"
    )
    rows, checksum = duckdb.sql(q).fetchall()[0]
    return int(rows), int(checksum)


def run(project: Path, env: dict[str, str]) -> None:
    done = run_cli("run", "flows.yml", cwd=project, env=env)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("scheme", ["local", "s3", "az"])
def test_replace_append_merge_and_incremental(scheme, emulators, tmp_path):
    emu = None if scheme == "local" else emulators[scheme]
    env = emu.env if emu else {}
    base = str(tmp_path / "lake") if emu is None else f"{emu.new_bucket()}/lake"
    incoming = tmp_path / "incoming"
    drop(incoming, "a.parquet", range(0, 1_000))
    drop(tmp_path / "changes", "c.parquet", range(0, 1_000))
    (tmp_path / "flows.yml").write_text(
        f"""
flows:
  full:
    home: incoming
    store: {{type: delta, path: "{base}/full"}}
  added:
    home: incoming
    store: {{type: delta, path: "{base}/added", mode: append}}
  upsert:
    home: changes
    store: {{type: delta, path: "{base}/upsert", mode: merge, key: id}}
  fresh:
    home: incoming
    store: {{type: delta, path: "{base}/fresh", mode: append}}
    options: {{incremental: true}}
"""
    )
    run(tmp_path, env)
    # second drop: ids 500..1499 again (overlapping) with new values
    drop(incoming, "b.parquet", range(500, 1_500), tag="b")
    drop(tmp_path / "changes", "c.parquet", range(500, 1_500), tag="b")
    run(tmp_path, env)

    full = table(f"{base}/full", env)
    assert full.version() == 1  # one commit per run
    assert full.to_pyarrow_table().num_rows == 2_000
    assert table(f"{base}/added", env).to_pyarrow_table().num_rows == 1_000 + 2_000
    upsert = table(f"{base}/upsert", env)
    got = pl.from_arrow(upsert.to_pyarrow_table()).sort("id")
    assert got.height == 1_500 and got["id"].n_unique() == 1_500
    assert set(got.filter(pl.col("id") >= 500)["v"].str.slice(0, 1)) == {"b"}  # updated
    assert set(got.filter(pl.col("id") < 500)["v"].str.slice(0, 1)) == {"a"}  # kept
    fresh = table(f"{base}/fresh", env)
    assert fresh.version() == 1 and fresh.transaction_version("hygge:fresh") == 2
    a_then_b = (expected(range(0, 1_000))[0] + 1_000, None)
    assert duckdb_rows(fresh, tmp_path, emu)[0] == a_then_b[0]  # each file exactly once
    # the first version, by deltalake time travel
    first = table(f"{base}/full", env)
    first.load_as_version(0)
    assert first.to_pyarrow_table().num_rows == 1_000
    assert duckdb_rows(first, tmp_path / "v0", emu) == expected(range(0, 1_000))


@pytest.mark.parametrize(
    ("second", "expected_text"),
    [
        ({"id": [4, 5], "v": ["x", "y"]}, "(id=4) 2 times"),  # id 4 in both batches
        ({"id": [None, 5], "v": ["x", "y"]}, "1 row(s) have a NULL merge key (id)"),
    ],
)
def test_merge_refuses_duplicate_and_null_keys(tmp_path: Path, second, expected_text) -> None:
    """They were stored (exit 0) as they came: two rows for id 4, a row with a NULL id."""
    drop(tmp_path / "src", "a.parquet", range(1, 5))  # ids 1..4, the first batch
    lake = tmp_path / "lake"
    (tmp_path / "flows.yml").write_text(
        f"flows:\n  m:\n    home: {tmp_path / 'src'}\n"
        f"    store: {{type: delta, path: {lake}, mode: merge, key: [id]}}\n"
    )
    run(tmp_path, {})  # the first run creates the table: ids 1..4
    before = DeltaTable(str(lake)).version()
    pl.DataFrame(second, schema={"id": pl.Int64, "v": pl.String}).write_parquet(
        tmp_path / "src" / "b.parquet"
    )
    done = run_cli("run", "flows.yml", cwd=tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in out, out
    assert expected_text in out and "merge" in out, out
    dt = DeltaTable(str(lake))
    assert dt.version() == before  # nothing committed
    assert duckdb_rows(dt, tmp_path) == expected(range(1, 5))
    # a first run (no table yet) is checked the same way
    fresh = tmp_path / "fresh"
    (tmp_path / "flows.yml").write_text(
        f"flows:\n  m:\n    home: {tmp_path / 'src'}\n"
        f"    store: {{type: delta, path: {fresh}, mode: merge, key: id}}\n"
    )
    done = run_cli("run", "flows.yml", cwd=tmp_path)
    assert done.returncode != 0 and expected_text in done.stderr, done.stderr
    assert not (fresh / "_delta_log").exists()


def test_partition_by_refuses_an_empty_string_it_would_store_as_null(tmp_path: Path) -> None:
    """'' in a partition column read back as NULL (exit 0): refused, naming the column."""
    src = tmp_path / "src"
    src.mkdir()
    pl.DataFrame({"id": [1, 2, 3], "p": ["a", "", None]}).write_parquet(src / "a.parquet")
    lake = tmp_path / "lake"
    (tmp_path / "flows.yml").write_text(
        f"flows:\n  d:\n    home: {src}\n"
        f"    store: {{type: delta, path: {lake}, partition_by: [p]}}\n"
    )
    done = run_cli("run", "flows.yml", cwd=tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in out, out
    assert "partition_by column 'p' holds ''" in out, out
    assert not (lake / "_delta_log").exists()
    # without the empty string, NULL and 'a' arrive as they are
    pl.DataFrame({"id": [1, 3], "p": ["a", None]}).write_parquet(src / "a.parquet")
    run(tmp_path, {})
    got = sorted(DeltaTable(str(lake)).to_pyarrow_table().to_pylist(), key=lambda r: r["id"])
    assert got == [{"id": 1, "p": "a"}, {"id": 3, "p": None}]


@pytest.mark.parametrize("mode", ["append", "merge"])
def test_a_commit_that_landed_but_went_unheard_is_a_success_once(
    emulators, tmp_path: Path, mode: str
) -> None:
    """The PUT of the next log version reaches S3 and its answer is lost: the client tries
    again, finds the version taken (by itself) and delta-rs reported a failed "concurrent
    transaction" although the rows were committed. One commit, reported as done."""
    from urllib.parse import urlparse

    from tests.tcpproxy import TcpProxy

    emu = emulators["s3"]
    up = urlparse(emu.endpoint)
    proxy = TcpProxy(up.hostname or "127.0.0.1", up.port or 80)
    env = {**emu.env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}"}
    uri = f"{emu.new_bucket()}/lake/t"
    key = ", key: id" if mode == "merge" else ""
    (tmp_path / "flows.yml").write_text(
        f"flows:\n  t:\n    home: {tmp_path / 'in'}\n"
        f"    store: {{type: delta, path: '{uri}', mode: {mode}{key}}}\n"
        "    options: {retries: 0}\n"
    )
    try:
        drop(tmp_path / "in", "a.parquet", range(0, 1_000))
        run(tmp_path, env)  # version 0
        drop(tmp_path / "in", "a.parquet", range(1_000, 2_000), tag="b")
        dropped = proxy.drop_answer_to(b"PUT ", b"_delta_log/00000000000000000001.json")
        done = run_cli("run", "flows.yml", cwd=tmp_path, env=env)
        assert dropped.is_set(), "the commit's answer was never dropped"
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        proxy.close()
    dt = table(uri, emu.env)
    assert dt.version() == 1  # one commit, not two
    rows = pl.from_arrow(dt.to_pyarrow_table()).sort("id")
    assert rows.height == 2_000 and rows["id"].n_unique() == 2_000


def test_an_append_under_a_commit_key_lands_once(tmp_path: Path) -> None:
    """A worker's run of an append flow carries a commit key: the same run delivered again
    after its commit landed (the worker killed before recording the flow as done) finds the
    run's transaction in the log and adds nothing; another run's key appends."""
    from hygge import Flow, ParquetHome
    from hygge.stores.delta import DeltaStore

    drop(tmp_path / "in", "a.parquet", range(0, 1_000))
    uri = str(tmp_path / "lake" / "t")

    def append(key: str) -> None:
        store = DeltaStore("t", path=uri, mode="append")
        store.commit_key = key
        result = Flow(ParquetHome("in", path=str(tmp_path / "in")), store).run()
        assert result.ok and result.rows == 1_000, result

    append("run1.t")
    append("run1.t")  # the same run, delivered again
    assert DeltaTable(uri).version() == 0
    assert DeltaTable(uri).to_pyarrow_table().num_rows == 1_000
    append("run2.t")
    ids = pl.from_arrow(DeltaTable(uri).to_pyarrow_table())["id"]
    assert ids.len() == 2_000 and ids.n_unique() == 1_000
