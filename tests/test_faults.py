"""Faults and hostile input under real `hygge run` processes: a home failing mid-file, two
runs of one flow at once, flows sharing a destination, hostile flow names, a full disk."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import polars as pl
import pytest

from tests.checks import tree_digest
from tests.conftest import run_cli


def seeded(project: Path, flows_yml: str) -> str:
    """Commit a destination `out/` first; returns its digest (to prove a failure left it)."""
    pl.DataFrame({"id": [1, 2, 3]}).write_parquet(project / "seed.parquet")
    (project / "flows.yml").write_text("flows: {seed: {home: seed.parquet, store: out}}")
    assert run_cli("run", "flows.yml", cwd=project).returncode == 0
    (project / "flows.yml").write_text(flows_yml)
    return tree_digest(project / "out")


def assert_failed_cleanly(project: Path, before: str) -> str:
    """`hygge run` exits 1 (not a crash), without a traceback, leaving `out/` as it was."""
    done = run_cli("run", "flows.yml", cwd=project, timeout=300)
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr
    assert tree_digest(project / "out") == before, "the destination changed"
    assert [p.name for p in project.iterdir() if "hygge-staging" in p.name] == []
    return done.stderr


# -- a home that fails mid-file: no crash, the file and its line, nothing published ------------
def test_ragged_csv_row_near_the_end_of_a_million_rows(tmp_path: Path):
    """The bad row lies past the first 16 MB block, so the store is writing when it fails:
    this crashed with a segmentation fault when abort() closed the writer mid-write."""
    with (tmp_path / "big.csv").open("w") as f:
        f.write("id,name,score\n")
        f.writelines(
            f"{i},name-{i:08d},{i * 0.5}\n" if i != 990_000 else f"{i},ragged\n"
            for i in range(1, 1_000_001)
        )
    before = seeded(tmp_path, "flows: {f: {home: big.csv, store: out}}")
    err = assert_failed_cleanly(tmp_path, before)
    assert f"{tmp_path / 'big.csv'}, line 990,001" in err, err  # the header is line 1
    assert "Expected 3 columns, got 2" in err


def test_bad_ndjson_line_names_the_line_of_the_file(tmp_path: Path):
    """pyarrow counts the bad row inside its current block; the user needs the file's line."""
    line = json.dumps({"id": 0, "text": "x" * 80, "score": 0.5})
    with (tmp_path / "events.ndjson").open("w") as f:
        for i in range(1, 300_001):
            f.write('{"id": 250001, "text": oops}\n' if i == 250_001 else line + "\n")
    assert (tmp_path / "events.ndjson").stat().st_size > 2 * (16 << 20) // 2  # past a block
    before = seeded(tmp_path, "flows: {f: {home: events.ndjson, store: out}}")
    err = assert_failed_cleanly(tmp_path, before)
    assert f"{tmp_path / 'events.ndjson'}, line 250,001" in err, err


# -- hostile flow names never become paths ------------------------------------------------------
@pytest.mark.parametrize("name", ["../../../victim", ".hidden", "a/b", "-x", "x..y"])
def test_flow_names_that_could_become_paths_are_refused(tmp_path: Path, name: str):
    pl.DataFrame({"id": [1]}).write_parquet(tmp_path / "in.parquet")
    (tmp_path / "flows.yml").write_text(
        f'flows:\n  "{name}":\n    home: in.parquet\n    store: lake/x\n'
    )
    for command in ("validate", "run"):
        done = run_cli(command, "flows.yml", cwd=tmp_path)
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert "flows.yml:2" in done.stderr and "a flow name may hold only" in done.stderr
    assert not (tmp_path / "lake").exists()


def test_a_path_like_flow_name_stays_inside_the_store(tmp_path: Path):
    """The Python API skips flows.yml: the state file name is escaped where it is made."""
    from hygge import Flow, ParquetHome, ParquetStore

    (tmp_path / "in").mkdir()
    pl.DataFrame({"id": [1, 2]}).write_parquet(tmp_path / "in" / "a.parquet")
    store = tmp_path / "lake"
    hostile = "../../../victim"  # from lake/_hygge/state/: the file beside the store
    victim = tmp_path / "victim.json"
    victim.write_text("precious")

    def flow() -> Flow:
        home = ParquetHome("in", path=str(tmp_path / "in"))
        return Flow(home, ParquetStore("lake", path=str(store)), name=hostile, incremental=True)

    assert flow().run().rows == 2
    assert victim.read_text() == "precious"
    [state] = (store / "_hygge" / "state").iterdir()
    assert "/" not in state.name and not state.name.startswith(".")
    assert json.loads(state.read_text())["rows"] == 2
    assert flow().run().rows == 0  # the state is found again under its escaped name
    assert asyncio.run(ParquetStore("lake", path=str(store)).reset_state(hostile)) is True
    assert victim.read_text() == "precious" and not state.exists()
