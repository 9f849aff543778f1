"""Every user mistake: one clear message naming the place and the fix, no traceback, a
non-zero exit, and a destination exactly as it was."""

from __future__ import annotations

import os
import time
from pathlib import Path

import polars as pl
import pytest

from tests.checks import fingerprint, tree_digest
from tests.conftest import ROOT, kill_run_while_staging, run_cli

USERS = ROOT / "samples" / "data" / "users.parquet"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder with a committed destination `out/` whose bytes the tests compare."""
    (tmp_path / "flows.yml").write_text(f"flows: {{seed: {{home: {USERS}, store: out}}}}")
    assert run_cli("run", "flows.yml", cwd=tmp_path).returncode == 0
    return tmp_path


def run_bad(project: Path, flows_yml: str, *extra: str, env: dict[str, str] | None = None):
    (project / "flows.yml").write_text(flows_yml)
    before = tree_digest(project / "out")
    done = run_cli("run", "flows.yml", *extra, cwd=project, env=env)
    assert done.returncode != 0
    assert "Traceback" not in done.stdout + done.stderr
    assert tree_digest(project / "out") == before, "the destination changed"
    assert [p.name for p in project.iterdir() if "hygge-staging" in p.name] == []
    return done.stderr


def test_malformed_yaml(project: Path):
    err = run_bad(project, f"flows:\n  f:\n    home: {USERS}\n   store: out\n")
    assert "flows.yml:4" in err and "not valid YAML" in err


def test_yaml_alias_bomb_is_refused_quickly(project: Path):
    """Nine levels of nine aliases would expand to 387 million nodes: refused in bounded
    time and memory, naming the file and the line, by validate (which run and enqueue share)."""
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    (project / "flows.yml").write_text(
        "\n".join(levels) + f"\nflows:\n  f: {{home: {USERS}, store: out, retries: *a9}}\n"
    )
    started = time.monotonic()
    done = run_cli("validate", "flows.yml", cwd=project, timeout=30)
    assert time.monotonic() - started < 10  # a couple of seconds on a loaded machine
    assert done.returncode != 0
    assert "flows.yml:" in done.stderr and "too many YAML aliases" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_unknown_type(project: Path):
    err = run_bad(
        project, f"flows:\n  f:\n    home: {{type: parqet, path: {USERS}}}\n    store: out\n"
    )
    assert "flows.yml:3" in err and "did you mean 'parquet'" in err


def test_missing_required_key(project: Path):
    err = run_bad(project, "flows:\n  f:\n    home: {type: parquet}\n    store: out\n")
    assert "missing required key 'path'" in err and "flow 'f'" in err


def test_unknown_key(project: Path):
    err = run_bad(
        project, f"flows:\n  f:\n    home: {USERS}\n    store: {{path: out, compresion: lz4}}\n"
    )
    assert "unknown key 'compresion'" in err and "did you mean 'compression'" in err


def test_undefined_variable(project: Path):
    env = {k: v for k, v in os.environ.items() if k != "NOPE_DIR"}
    err = run_bad(
        project, "flows:\n  f:\n    home: ${NOPE_DIR}/u.parquet\n    store: out\n", env=env
    )
    assert "flows.yml:3" in err and "NOPE_DIR is not set" in err


def test_flow_naming_a_home_that_does_not_exist(project: Path):
    err = run_bad(
        project, f"homes: {{users: {{path: {USERS}}}}}\nflows:\n  f: {{home: user, store: out}}\n"
    )
    assert "no home named 'user'" in err and "did you mean 'users'" in err


def test_missing_input_file(project: Path):
    err = run_bad(project, "flows: {f: {home: nothere.parquet, store: out}}")
    # once, led by the flow and where it is defined (not "flow 'f': flow 'f': ...")
    assert err.startswith("f (flows.yml:1): input not found") and "nothere.parquet" in err


def test_unreadable_input_file(project: Path):
    folder = project / "locked.parquet"
    folder.mkdir()  # a folder where a file was expected (root can read any file's bytes)
    err = run_bad(project, "flows: {f: {home: locked.parquet, store: out}}")
    assert "locked.parquet" in err and "holds no" in err


def test_corrupt_parquet(project: Path):
    (project / "bad.parquet").write_bytes(b"PAR1 this is not really parquet" * 10)
    err = run_bad(project, "flows: {f: {home: bad.parquet, store: out}}")
    assert "cannot read" in err and "bad.parquet" in err and "valid, complete parquet" in err


def test_truncated_parquet(project: Path):
    data = USERS.read_bytes()
    (project / "cut.parquet").write_bytes(data[: len(data) // 2])
    err = run_bad(project, "flows: {f: {home: cut.parquet, store: out}}")
    assert "cut.parquet" in err


def test_conflicting_schemas_in_one_folder(project: Path):
    (project / "mixed").mkdir()
    pl.DataFrame({"id": [1], "name": ["a"]}).write_parquet(project / "mixed" / "a.parquet")
    pl.DataFrame({"id": ["x"], "name": ["b"]}).write_parquet(project / "mixed" / "b.parquet")
    err = run_bad(project, "flows: {f: {home: mixed, store: out}}")
    assert "b.parquet does not have the same columns as" in err
    assert "'id' is" in err


def test_unwritable_store_path(project: Path):
    (project / "a_file").write_text("x")
    err = run_bad(project, f"flows: {{f: {{home: {USERS}, store: a_file/out}}}}")
    assert "a_file" in err and ("not writable" in err or "cannot" in err)


def test_store_path_is_a_file(project: Path):
    (project / "target").write_text("x")
    err = run_bad(project, f"flows: {{f: {{home: {USERS}, store: target}}}}")
    assert "is a file" in err


def test_depends_on_cycle(project: Path):
    err = run_bad(
        project,
        f"flows:\n  a: {{home: {USERS}, store: out, depends_on: b}}\n"
        f"  b: {{home: {USERS}, store: out2, depends_on: a}}\n",
    )
    assert "cycle" in err and "a -> b -> a" in err


def test_validate_reports_missing_input_without_moving(project: Path):
    (project / "flows.yml").write_text("flows: {f: {home: nothere.parquet, store: out}}")
    before = tree_digest(project / "out")
    done = run_cli("validate", "flows.yml", cwd=project)
    assert done.returncode == 1 and "input not found" in done.stderr
    assert tree_digest(project / "out") == before


def test_killed_run_leaves_the_destination_as_it_was(tmp_path: Path):
    """SIGKILL mid-flow: the old dataset stays whole; the rerun publishes the new one."""
    big = tmp_path / "big.parquet"
    n = 3_000_000
    pl.DataFrame({"id": range(n), "v": [1.5] * n}).write_parquet(big, row_group_size=50_000)
    (tmp_path / "flows.yml").write_text(
        f"flows: {{f: {{home: {{path: {big}, batch_size: 50000}}, store: {{path: out, "
        "max_rows_per_file: 100000}}}"
    )
    (tmp_path / "seed.yml").write_text(f"flows: {{s: {{home: {USERS}, store: out}}}}")
    assert run_cli("run", "seed.yml", cwd=tmp_path).returncode == 0
    before = tree_digest(tmp_path / "out")
    kill_run_while_staging(tmp_path, tmp_path)
    assert tree_digest(tmp_path / "out") == before
    assert fingerprint(tmp_path / "out") == fingerprint(USERS)
    done = run_cli("run", "flows.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert fingerprint(tmp_path / "out") == fingerprint(big)


def test_a_killed_runs_staging_is_swept_by_the_next_run(tmp_path: Path):
    big = tmp_path / "big.parquet"
    pl.DataFrame({"id": range(2_000_000)}).write_parquet(big, row_group_size=20_000)
    (tmp_path / "flows.yml").write_text(
        f"flows: {{f: {{home: {{path: {big}, batch_size: 20000}}, store: out}}}}"
    )
    kill_run_while_staging(tmp_path, tmp_path)
    leftovers = [p.name for p in tmp_path.iterdir() if "hygge-staging" in p.name]
    assert leftovers, "the killed run should have left its staging folder"
    assert run_cli("run", "flows.yml", cwd=tmp_path).returncode == 0
    assert [p.name for p in tmp_path.iterdir() if "hygge-staging" in p.name] == []
    assert fingerprint(tmp_path / "out") == fingerprint(big)


def test_a_live_runs_staging_is_not_swept(tmp_path: Path):
    from hygge.stores._staging import StagingLock, staging_path, sweep_dead

    target = tmp_path / "out"
    live = staging_path(target, "live")
    lock = StagingLock(live)
    lock.acquire()
    live.mkdir()
    dead = staging_path(target, "dead")
    dead.mkdir()
    assert sweep_dead(target) == [dead]
    assert live.is_dir()
    lock.release()


@pytest.mark.parametrize("block_size", [None, 4096])
def test_csv_quote_never_closed_names_file_and_line(project: Path, block_size: int | None):
    """An open quote near the end swallowed the rest of the file into one text value (exit
    0, a numeric column turned to text); in an earlier block it was pyarrow's 'out of sync'."""
    rows = ["id,name,amount", *(f"{i},n{i},{i}" for i in range(1, 2000))]
    rows[1500] = '1500,x,"55'  # line 1,501
    (project / "open.csv").write_text("\n".join(rows) + "\n")
    extra = f", block_size: {block_size}" if block_size else ""
    err = run_bad(
        project, f"flows: {{f: {{home: {{type: csv, path: open.csv{extra}}}, store: out}}}}"
    )
    assert f"{project / 'open.csv'}, line 1,501: a quoted field is never closed" in err, err


def test_csv_field_larger_than_the_block_names_the_setting(project: Path):
    big = "x" * 300_000
    (project / "wide.csv").write_text(f"id,v\n1,a\n2,{big}\n3,c\n")
    flows = "flows: {{f: {{home: {{type: csv, path: wide.csv, block_size: {}}}, store: {}}}}}"
    err = run_bad(project, flows.format(65536, "out"))
    assert "wide.csv" in err and "`block_size`" in err and "65,536" in err, err
    # raising it as the message says moves the row, exactly
    (project / "flows.yml").write_text(flows.format(1 << 20, "wide_out"))
    assert run_cli("run", "flows.yml", cwd=project).returncode == 0
    got = pl.read_parquet(project / "wide_out" / "*.parquet").sort("id")
    assert got["v"].to_list() == ["a", big, "c"]
