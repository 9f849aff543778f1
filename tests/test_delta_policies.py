"""Delta store: read back by DuckDB's delta extension, schema policies, two concurrent
writers, state reset, and a run killed mid-write."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable

from hygge.storage.credentials import delta_storage_options, resolve
from hygge.storage.location import Location
from tests import delta_reader
from tests.conftest import ROOT, kill_run_when, run_cli


def drop(folder: Path, name: str, ids: range, **extra: list) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"id": list(ids), "v": [f"v{i}" for i in ids], **extra}).write_parquet(
        folder / name
    )


def run(project: Path, *args: str, env: dict[str, str] | None = None):
    return run_cli("run", "flows.yml", *args, cwd=project, env=env)


def test_duckdb_reads_the_table_at_each_version(tmp_path):
    drop(tmp_path / "in", "a.parquet", range(0, 5_000))
    (tmp_path / "flows.yml").write_text(
        "flows:\n  f:\n    home: in\n    store: {type: delta, path: lake/t, mode: append}\n"
    )
    assert run(tmp_path).returncode == 0
    drop(tmp_path / "in", "b.parquet", range(5_000, 7_000))
    assert run(tmp_path).returncode == 0
    table = tmp_path / "lake" / "t"
    source = delta_reader.query(
        f"select count(*), sum(hash(t)) from (select id, v from "
        f"read_parquet('{tmp_path}/in/*.parquet')) t"
    )[0]
    first = delta_reader.query(
        f"select count(*), sum(hash(t)) from (select id, v from "
        f"read_parquet('{tmp_path}/in/a.parquet')) t"
    )[0]
    assert DeltaTable(str(table)).version() == 1
    # version 1 = a (run 1) + a and b (run 2); checksums are sums, so they add up
    rows, checksum = delta_reader.fingerprint(table, "id, v")
    assert rows == first[0] + source[0]
    assert checksum % 2**64 == (int(first[1]) + int(source[1])) % 2**64
    v0 = DeltaTable(str(table))
    v0.load_as_version(0)
    assert v0.to_pyarrow_table().num_rows == 5_000


def test_schema_evolve_adds_columns_and_freeze_refuses(tmp_path):
    drop(tmp_path / "in", "a.parquet", range(0, 100))
    (tmp_path / "flows.yml").write_text(
        "flows:\n"
        "  evolving:\n    home: in\n    store: {type: delta, path: lake/e, mode: append}\n"
        "  frozen:\n    home: in\n"
        "    store: {type: delta, path: lake/f, mode: append, schema_policy: freeze}\n"
    )
    assert run(tmp_path).returncode == 0
    (tmp_path / "in" / "a.parquet").unlink()
    drop(tmp_path / "in", "b.parquet", range(100, 150), extra=[1.5] * 50)
    done = run(tmp_path)
    assert done.returncode != 0
    assert "new column 'extra'" in done.stdout + done.stderr
    assert "schema_policy: freeze" in done.stdout + done.stderr
    evolved = pl.from_arrow(DeltaTable(str(tmp_path / "lake" / "e")).to_pyarrow_table())
    assert evolved.columns == ["id", "v", "extra"] and evolved.height == 150
    assert evolved["extra"].null_count() == 100
    frozen = DeltaTable(str(tmp_path / "lake" / "f"))
    assert frozen.version() == 0 and frozen.to_pyarrow_table().num_rows == 100  # untouched


def test_state_reset_reloads_everything(tmp_path):
    drop(tmp_path / "in", "a.parquet", range(0, 300))
    (tmp_path / "flows.yml").write_text(
        "flows:\n  inc:\n    home: in\n"
        "    store: {type: delta, path: lake/t, mode: append}\n"
        "    options: {incremental: true}\n"
    )
    assert run(tmp_path).returncode == 0
    assert run(tmp_path).returncode == 0  # nothing new: no rows added
    table = DeltaTable(str(tmp_path / "lake" / "t"))
    assert table.to_pyarrow_table().num_rows == 300
    shown = run_cli("state", "flows.yml", cwd=tmp_path)
    assert "1 file(s) loaded" in shown.stdout, shown.stdout + shown.stderr
    reset = run_cli("state", "flows.yml", "--reset", "inc", cwd=tmp_path)
    assert "state reset" in reset.stdout, reset.stdout + reset.stderr
    assert run(tmp_path).returncode == 0
    assert DeltaTable(str(tmp_path / "lake" / "t")).to_pyarrow_table().num_rows == 600


@pytest.mark.parametrize("scheme", ["local", "s3"])
def test_two_writers_at_once_both_commit(scheme, emulators, tmp_path):
    """Two `hygge run` processes append to one table at the same moment: Delta's
    optimistic concurrency control (S3: conditional writes) keeps both commits."""
    emu = emulators["s3"] if scheme == "s3" else None
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(emu.env if emu else {})}
    uri = f"{emu.new_bucket()}/lake/t" if emu else str(tmp_path / "lake" / "t")
    procs = []
    for n in range(2):
        project = tmp_path / f"p{n}"
        drop(project / "in", "a.parquet", range(n * 10_000, (n + 1) * 10_000))
        (project / "flows.yml").write_text(
            # two flows: a second run of the *same* flow is refused by the run lock instead
            f"flows:\n  f{n}:\n    home: in\n"
            f"    store: {{type: delta, path: '{uri}', mode: append}}\n"
        )
    for n in range(2):
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "hygge", "run", "flows.yml"],
                cwd=tmp_path / f"p{n}",
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
    outputs = [p.communicate(timeout=180)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    options = delta_storage_options(Location.parse(uri), resolve({}, env)) if emu else None
    table = DeltaTable(uri, storage_options=options)
    assert table.version() == 1  # two commits: versions 0 and 1
    ids = pl.from_arrow(table.to_pyarrow_table())["id"]
    assert ids.len() == 20_000 and ids.n_unique() == 20_000


def test_sigkill_mid_write_leaves_the_table_at_its_version(tmp_path):
    drop(tmp_path / "in", "a.parquet", range(0, 1_000))
    (tmp_path / "flows.yml").write_text(
        "flows:\n  f:\n    home: in\n"
        "    store: {type: delta, path: lake/t, mode: replace}\n"
        "    options: {batch_size: 1000}\n"
    )
    assert run(tmp_path).returncode == 0
    for i in range(1, 40):
        drop(tmp_path / "in", f"b{i:02d}.parquet", range(i * 100_000, i * 100_000 + 50_000))
    folder = tmp_path / "lake" / "t"
    committed = {Path(u).name for u in DeltaTable(str(folder)).file_uris()}

    def writing() -> bool:  # a data file the log does not list yet, with data in it
        return any(f.name not in committed and f.stat().st_size for f in folder.glob("*.parquet"))

    kill_run_when(tmp_path, writing)
    table = DeltaTable(str(tmp_path / "lake" / "t"))
    # the killed run's file is in the folder but not in the log: no reader sees it
    assert table.version() == 0 and table.to_pyarrow_table().num_rows == 1_000
    assert len(list(folder.glob("*.parquet"))) > len(committed)
    assert run(tmp_path).returncode == 0
    table = DeltaTable(str(tmp_path / "lake" / "t"))
    assert table.version() == 1
    assert table.to_pyarrow_table().num_rows == 1_000 + 39 * 50_000


def test_replace_with_no_rows_empties_the_table(tmp_path):
    drop(tmp_path / "in", "a.parquet", range(0, 100))
    (tmp_path / "flows.yml").write_text(
        "flows:\n  f:\n    home: in/a.parquet\n    store: {type: delta, path: lake/t}\n"
    )
    assert run(tmp_path).returncode == 0
    drop(tmp_path / "in", "a.parquet", range(0))
    done = run(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    table = DeltaTable(str(tmp_path / "lake" / "t"))
    assert table.version() == 1 and table.to_pyarrow_table().num_rows == 0
