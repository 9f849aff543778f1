"""File homes and stores on object storage (S3, Azure Blob, GCS emulators as real servers),
through the real CLI; outputs read back independently (separate client + DuckDB)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tests.checks import fingerprint
from tests.conftest import run_cli
from tests.objectstore import SCHEMES, download, objects, upload


def sample(tmp: Path, start: int = 0, rows: int = 3_000) -> pl.DataFrame:
    return pl.DataFrame(
        {"id": range(start, start + rows), "name": [f"n{i}" for i in range(start, start + rows)]}
    )


def write_inputs(emu, bucket: str, tmp: Path) -> tuple[int, int]:
    """Three parquet, csv and ndjson drops of the same rows; returns their fingerprint."""
    local = tmp / "in"
    local.mkdir()
    for i in range(3):
        df = sample(tmp, i * 1_000, 1_000)
        df.write_parquet(local / f"p{i}.parquet")
        df.write_csv(local / f"c{i}.csv")
        df.write_ndjson(local / f"j{i}.ndjson")
        upload(emu, local / f"p{i}.parquet", f"{bucket}/raw/2026-0{i + 1}/p{i}.parquet")
        upload(emu, local / f"c{i}.csv", f"{bucket}/csv/c{i}.csv")
        upload(emu, local / f"j{i}.ndjson", f"{bucket}/json/j{i}.ndjson")
    return fingerprint(local / "*.parquet")


def run(project: Path, env: dict[str, str], *args: str):
    done = run_cli("run", "flows.yml", *args, cwd=project, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_file_home_and_store_on_each_scheme(scheme, emulators, tmp_path):
    emu = emulators[scheme]
    bucket = emu.new_bucket()
    expected = write_inputs(emu, bucket, tmp_path)
    (tmp_path / "flows.yml").write_text(
        f"""
flows:
  glob_to_parquet:
    home: {bucket}/raw/2026-*/*.parquet
    store: {bucket}/lake/from_glob
  csv_prefix_to_csv:
    home: {{type: csv, path: "{bucket}/csv/"}}
    store: {{type: csv, path: "{bucket}/lake/from_csv"}}
  ndjson_prefix_to_parquet:
    home: {{type: ndjson, path: "{bucket}/json"}}
    store: {{type: parquet, path: "{bucket}/lake/from_json", max_rows_per_file: 1000}}
  one_object_to_local:
    home: {bucket}/raw/2026-01/p0.parquet
    store: local/p0
"""
    )
    run(tmp_path, emu.env)
    for name in ("from_glob", "from_csv", "from_json"):
        got = download(emu, f"{bucket}/lake/{name}", tmp_path / "out" / name)
        suffix = "csv" if name == "from_csv" else "parquet"
        assert fingerprint(f"{got}/*.{suffix}", "id, name") == expected, name
    assert len(objects(emu, f"{bucket}/lake/from_json")) == 3  # rolled by rows
    assert fingerprint(tmp_path / "local" / "p0")[0] == 1_000
    # nothing left behind: no staging, no journal
    leftovers = [o for o in objects(emu, f"{bucket}/lake") if "staging" in o or "journal" in o]
    assert leftovers == []


@pytest.mark.parametrize("scheme", SCHEMES)
def test_replace_and_append_and_incremental(scheme, emulators, tmp_path):
    emu = emulators[scheme]
    bucket = emu.new_bucket()
    local = tmp_path / "in"
    local.mkdir()
    sample(tmp_path, 0, 500).write_parquet(local / "a.parquet")
    upload(emu, local / "a.parquet", f"{bucket}/drops/a.parquet")
    (tmp_path / "flows.yml").write_text(
        f"""
flows:
  full:
    home: {{type: parquet, path: "{bucket}/drops"}}
    store: {bucket}/lake/full
  added:
    home: {{type: parquet, path: "{bucket}/drops"}}
    store: {{path: "{bucket}/lake/added", mode: append}}
  fresh:
    home: {{type: parquet, path: "{bucket}/drops"}}
    store: {bucket}/lake/fresh
    options: {{incremental: true}}
"""
    )
    run(tmp_path, emu.env)
    sample(tmp_path, 500, 250).write_parquet(local / "b.parquet")
    upload(emu, local / "b.parquet", f"{bucket}/drops/b.parquet")
    run(tmp_path, emu.env)
    run(tmp_path, emu.env)  # nothing new for the incremental flow

    def rows(name: str) -> tuple[int, int]:
        return fingerprint(f"{download(emu, f'{bucket}/lake/{name}', tmp_path / name)}/*.parquet")

    both = fingerprint(local / "*.parquet")
    assert rows("full") == both  # replaced each run: only the last run's rows
    assert rows("added")[0] == 500 + 750 + 750  # appended three times
    assert rows("fresh") == both  # each file exactly once
    state = run_cli("state", "flows.yml", "--flow", "fresh", cwd=tmp_path, env=emu.env)
    assert state.returncode == 0, state.stderr
    assert "2 file(s) loaded" in state.stdout


def test_abfss_urls_name_the_account(emulators, tmp_path):
    """ADLS Gen2 style URLs (`abfss://container@account.dfs.core.windows.net/...`) for file
    and Delta stores, served by Azurite's Blob endpoint (it has no DFS endpoint)."""
    emu = emulators["az"]
    container = emu.new_bucket().split("://", 1)[1]
    base = f"abfss://{container}@devstoreaccount1.dfs.core.windows.net"
    local = tmp_path / "in"
    local.mkdir()
    sample(tmp_path, 0, 2_000).write_parquet(local / "a.parquet")
    (tmp_path / "flows.yml").write_text(
        f"""
flows:
  files:
    home: in
    store: {base}/lake/files
  table:
    home: in
    store: {{type: delta, path: "{base}/lake/table"}}
"""
    )
    env = {k: v for k, v in emu.env.items() if k != "AZURE_STORAGE_ACCOUNT_NAME"}
    run(tmp_path, env)
    got = download(emu, f"az://{container}/lake/files", tmp_path / "out")
    assert fingerprint(f"{got}/*.parquet") == fingerprint(local / "a.parquet")
    assert any("/lake/table/_delta_log/" in o for o in objects(emu, f"az://{container}/lake"))
