"""Incremental file loads: only new files move, and the state commits with the data."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import polars as pl
import pytest

from hygge import ConfigError, Coordinator, Flow, FlowError, ParquetStore
from hygge.stores._local_dataset import LocalDataset
from tests.checks import fingerprint
from tests.conftest import kill_run_while_staging, run_cli


class SimulatedCrash(BaseException):
    """Stands for the process dying: nothing after it runs, not even clean-up."""


def dying_apply(self: LocalDataset, journal: str) -> None:
    """Publish the first file a journal lists, then die (the process is gone)."""
    plan = json.loads(Path(journal).read_text())
    src, dst = plan["moves"][0]
    if os.path.exists(src):
        os.replace(src, dst)
    raise SimulatedCrash("died in the middle of the commit")


FLOWS = """
flows:
  drops:
    home: {type: parquet, path: incoming}
    store: {path: lake/drops, max_rows_per_file: 500}
    options: {incremental: true}
"""


def drop(folder: Path, name: str, start: int, rows: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"id": range(start, start + rows), "v": ["x"] * rows}).write_parquet(folder / name)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "flows.yml").write_text(FLOWS)
    drop(tmp_path / "incoming", "a.parquet", 0, 1_000)
    return tmp_path


def run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = run_cli("run", "flows.yml", *args, cwd=project)
    assert done.returncode == 0, done.stderr
    return done


def test_only_new_files_move_and_nothing_duplicates(project: Path):
    run(project)
    assert fingerprint(project / "lake" / "drops") == fingerprint(project / "incoming")
    drop(project / "incoming", "b.parquet", 1_000, 700)
    done = run(project)
    assert "700" in done.stdout  # this run moved only the new file
    assert fingerprint(project / "lake" / "drops") == fingerprint(project / "incoming")
    run(project)  # nothing new: nothing moves, nothing duplicates
    assert fingerprint(project / "lake" / "drops") == fingerprint(project / "incoming")


def test_state_is_readable_and_resettable(project: Path):
    run(project)
    shown = run_cli("state", "flows.yml", cwd=project)
    assert shown.returncode == 0 and "drops" in shown.stdout and "1 file(s) loaded" in shown.stdout
    reset = run_cli("state", "flows.yml", "--reset", "drops", cwd=project)
    assert reset.returncode == 0 and "state reset" in reset.stdout
    assert "nothing loaded yet" in run_cli("state", "flows.yml", cwd=project).stdout


def test_full_refresh_replaces_everything_once(project: Path):
    run(project)
    (project / "incoming" / "a.parquet").unlink()
    drop(project / "incoming", "c.parquet", 5_000, 300)
    run(project, "--full-refresh")
    assert fingerprint(project / "lake" / "drops") == fingerprint(project / "incoming")
    drop(project / "incoming", "d.parquet", 9_000, 10)
    run(project)
    assert fingerprint(project / "lake" / "drops") == fingerprint(project / "incoming")


def test_changed_definition_is_refused_with_a_hint(project: Path):
    run(project)
    (project / "other").mkdir()
    (project / "flows.yml").write_text(FLOWS.replace("path: incoming", "path: other"))
    drop(project / "other", "z.parquet", 0, 5)
    done = run_cli("run", "flows.yml", cwd=project)
    assert done.returncode == 1 and "different definition" in done.stderr
    assert "--full-refresh" in done.stderr and "Traceback" not in done.stderr


def test_crash_during_commit_is_completed_by_the_next_run(project: Path, monkeypatch):
    """Die after the journal is written and one file moved: the rerun finishes the commit
    (data and state together) and then loads only what is new."""
    drop(project / "incoming", "b.parquet", 1_000, 1_200)  # 3+ files at 500 rows per file
    monkeypatch.setattr(LocalDataset, "apply_journal", dying_apply)
    with pytest.raises(BaseException) as crash:  # it arrives inside a TaskGroup
        Coordinator(project / "flows.yml").run()
    assert (
        crash.group_contains(SimulatedCrash)
        if isinstance(crash.value, BaseExceptionGroup)
        else isinstance(crash.value, SimulatedCrash)
    )
    monkeypatch.undo()
    assert len(list((project / "lake" / "drops").glob("*.parquet"))) == 1  # half-published
    drop(project / "incoming", "c.parquet", 10_000, 50)
    result = Coordinator(project / "flows.yml").run()
    # The rerun published the 2,200 rows of the interrupted commit and the 50 new ones.
    report = result.results["drops"]
    assert result.ok and report.rows == 2_200 + 50, report
    assert "2,200 of the rows: an interrupted commit completed" in report.message
    assert fingerprint(project / "lake" / "drops") == fingerprint(project / "incoming")


def test_kill_mid_write_then_rerun_is_exact(tmp_path: Path):
    n = 2_000_000
    (tmp_path / "incoming").mkdir()
    pl.DataFrame({"id": range(n), "v": ["y"] * n}).write_parquet(
        tmp_path / "incoming" / "big.parquet", row_group_size=20_000
    )
    drop(tmp_path / "incoming", "small.parquet", n, 10)
    (tmp_path / "flows.yml").write_text(
        FLOWS.replace("path: incoming}", "path: incoming, batch_size: 20000}")
    )
    lake = tmp_path / "lake"
    kill_run_while_staging(tmp_path, lake)
    assert not list((lake / "drops").glob("*.parquet")) if (lake / "drops").exists() else True
    run(tmp_path)
    assert fingerprint(lake / "drops") == fingerprint(tmp_path / "incoming")


def test_incremental_needs_a_home_that_can_resume(tmp_path: Path):
    (tmp_path / "flows.yml").write_text(
        "flows: {f: {home: {type: test_slow_home}, store: out, incremental: true}}"
    )
    from tests.test_coordinator import SlowHome  # registers test_slow_home

    with pytest.raises(ConfigError, match="cannot load incrementally"):  # refused when loaded
        Coordinator(tmp_path / "flows.yml")
    flow = Flow(SlowHome("s"), ParquetStore("o", path=str(tmp_path / "o")), incremental=True)
    with pytest.raises(FlowError, match="cannot load incrementally"):  # and by the Python API
        flow.run()
    assert not (tmp_path / "o").exists()


def test_incremental_with_explicit_replace_is_a_config_error(tmp_path: Path):
    (tmp_path / "flows.yml").write_text(
        "flows: {f: {home: in.parquet, store: {path: out, mode: replace}, incremental: true}}"
    )
    done = run_cli("validate", "flows.yml", cwd=tmp_path)
    assert done.returncode == 2 and "cannot replace its store" in done.stderr
