"""Faults and hostile input under real `hygge run` processes: a home failing mid-file, two
runs of one flow at once, flows sharing a destination, hostile flow names, a full disk."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests import services
from tests.checks import fingerprint, tree_digest
from tests.conftest import ROOT, run_cli, staging_has_data
from tests.distributed_support import Cluster, claim_db, flush, parse_enqueue
from tests.helpers import wait_for, write_flows
from tests.sqldb import database, unique


def seeded(project: Path, flows_yml: str) -> str:
    """Commit a destination `out/` first; returns its digest (to prove a failure left it)."""
    pl.DataFrame({"id": [1, 2, 3]}).write_parquet(project / "seed.parquet")
    write_flows(project, "flows: {seed: {home: seed.parquet, store: out}}")
    assert run_cli("run", "flows.yml", cwd=project).returncode == 0
    write_flows(project, flows_yml)
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
def ragged_csv(path: Path) -> None:
    """A million rows; row 990,000 (line 990,001, after the header) has a column missing."""
    with path.open("w") as f:
        f.write("id,name,score\n")
        f.writelines(
            f"{i},name-{i:08d},{i * 0.5}\n" if i != 990_000 else f"{i},ragged\n"
            for i in range(1, 1_000_001)
        )


def test_ragged_csv_row_near_the_end_of_a_million_rows(tmp_path: Path):
    """The bad row lies past the first 16 MB block, so the store is writing when it fails:
    this crashed with a segmentation fault when abort() closed the writer mid-write."""
    ragged_csv(tmp_path / "big.csv")
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


@pytest.mark.slow
def test_a_home_failing_mid_file_on_a_worker_fails_once_with_the_line(
    redis_url: str, tmp_path: Path
):
    """Under Celery the crash killed the pool process, and the flow looped until "its worker
    died 3 times", hiding the parse error."""
    ragged_csv(tmp_path / "big.csv")
    db = claim_db(redis_url)
    cluster = Cluster(db, tmp_path / "cluster")
    cluster.workdir.mkdir()
    try:
        cluster.start_worker("w1", concurrency=1)
        flows = write_flows(tmp_path, f"flows: {{f: {{home: big.csv, store: {tmp_path / 'out'}}}}}")
        done = cluster.cli("enqueue", str(flows), "--wait", timeout=300)
        assert done.returncode == 1, done.stdout + done.stderr
        run_id, _ = parse_enqueue(done.stdout)
        status = cluster.status(run_id)["f"]
        assert status["state"] == "failed" and status["starts"] == "1", status
        assert f"{tmp_path / 'big.csv'}, line 990,001" in status["message"], status
        assert cluster.procs["w1"].poll() is None and "Segmentation" not in cluster.log("w1")
        assert not (tmp_path / "out").exists()
    finally:
        cluster.stop()
        flush(db)


# -- hostile flow names never become paths ------------------------------------------------------
@pytest.mark.parametrize("name", ["../../../victim", ".hidden", "a/b", "-x", "x..y"])
def test_flow_names_that_could_become_paths_are_refused(tmp_path: Path, name: str):
    pl.DataFrame({"id": [1]}).write_parquet(tmp_path / "in.parquet")
    write_flows(tmp_path, f'flows:\n  "{name}":\n    home: in.parquet\n    store: lake/x\n')
    for command in ("validate", "run"):
        done = run_cli(command, "flows.yml", cwd=tmp_path)
        assert done.returncode == 2 and "Traceback" not in done.stderr
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


# -- two runs of one flow at once (a cron overlap) -----------------------------------------------
def start_run(project: Path, *args: str, output: Path | None = None) -> subprocess.Popen[str]:
    """`hygge run` in the background; its output goes to `output` (read while it runs)."""
    return subprocess.Popen(
        [sys.executable, "-m", "hygge", "run", "flows.yml", *args],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", "PYTHONUNBUFFERED": "1"},
        stdout=output.open("w") if output else subprocess.PIPE,
        stderr=subprocess.STDOUT if output else subprocess.PIPE,
        text=True,
    )


def stopped_mid_run(project: Path, staging_parent: Path) -> subprocess.Popen[str]:
    """A first `hygge run`, frozen with SIGSTOP while it stages data: it holds its lock."""
    first = start_run(project)
    wait_for(lambda: staging_has_data(staging_parent), 60, "the first run to stage data", 0.01)
    first.send_signal(signal.SIGSTOP)
    return first


def resume(run: subprocess.Popen[str]) -> tuple[int, str, str]:
    run.send_signal(signal.SIGCONT)
    out, err = run.communicate(timeout=120)
    return run.returncode, out, err


INCREMENTAL = """
flows:
  drops:
    home: {type: parquet, path: incoming}
    store: {path: lake/drops, max_rows_per_file: 50000}
    options: {incremental: true, batch_size: 10000}
"""


@pytest.fixture
def drops(tmp_path: Path) -> Path:
    write_flows(tmp_path, INCREMENTAL)
    (tmp_path / "incoming").mkdir()
    for n in range(4):
        rows = range(n * 200_000, (n + 1) * 200_000)
        pl.DataFrame({"id": rows, "v": [f"v{i}" for i in rows]}).write_parquet(
            tmp_path / "incoming" / f"{n}.parquet"
        )
    return tmp_path


def test_a_second_run_of_a_running_flow_is_refused(drops: Path):
    first = stopped_mid_run(drops, drops / "lake")
    try:
        second = run_cli("run", "flows.yml", cwd=drops)
    finally:
        code, _, err = resume(first)
    assert code == 0, err
    assert second.returncode == 3 and "Traceback" not in second.stderr  # locked: try later
    assert "flow 'drops' is already running into" in second.stderr
    assert "--wait-for-lock" in second.stderr
    assert fingerprint(drops / "lake" / "drops") == fingerprint(drops / "incoming")
    assert [p.name for p in (drops / "lake").iterdir()] == ["drops"]  # no lock file left


def test_resetting_the_state_of_a_running_flow_is_refused(drops: Path):
    first = stopped_mid_run(drops, drops / "lake")
    try:
        reset = run_cli("state", "flows.yml", "--reset", "drops", cwd=drops)
    finally:
        code, _, err = resume(first)
    assert code == 0, err
    assert reset.returncode == 3 and "flow 'drops' is already running" in reset.stderr
    assert json.loads(next((drops / "lake" / "drops" / "_hygge" / "state").iterdir()).read_text())
    done = run_cli("state", "flows.yml", "--reset", "drops", cwd=drops)
    assert done.returncode == 0 and "state reset" in done.stdout, done.stderr


def test_a_second_run_with_wait_for_lock_waits_then_finds_nothing_new(drops: Path):
    first = stopped_mid_run(drops, drops / "lake")
    output = drops / "second.out"
    second = start_run(drops, "--wait-for-lock", output=output)
    try:
        wait_for(
            lambda: "waiting for the run of 'drops'" in output.read_text() or second.poll(),
            60,
            "the second run to say it waits",
        )
        assert second.poll() is None, output.read_text()
    finally:
        code, _, err = resume(first)
    assert code == 0, err
    assert second.wait(timeout=120) == 0, output.read_text()
    assert fingerprint(drops / "lake" / "drops") == fingerprint(drops / "incoming")


@pytest.mark.parametrize("service", ["postgres", "mysql"])
def test_a_second_run_into_a_sql_table_is_refused(drops: Path, service: str):
    """The lock lives in the database (advisory lock, GET_LOCK): any machine sees it."""
    url = services.service_url(service)
    table = unique("locked")
    # SQL state is kept per flow name in the schema: a name of its own for this test
    write_flows(
        drops,
        f"flows:\n  {table}:\n    home: {{type: parquet, path: incoming}}\n"
        f"    store: {{type: sql, connection: '{url}', table: {table}}}\n"
        "    options: {incremental: true, batch_size: 10000}\n",
    )
    with database(url, table) as db:

        def staging() -> bool:
            return any(table in name for name in db.staging_tables())

        first = start_run(drops)
        wait_for(lambda: staging() or first.poll() is not None, 60, "the first run to load", 0.01)
        assert first.poll() is None, first.communicate()
        first.send_signal(signal.SIGSTOP)
        try:
            second = run_cli("run", "flows.yml", cwd=drops)
        finally:
            code, _, err = resume(first)
        assert code == 0, err
        assert second.returncode == 3, second.stderr  # the destination is locked
        assert f"flow '{table}' is already running into table {table}" in second.stderr
        assert db.run(f"SELECT count(*), count(distinct id) FROM {db.q(table)}") == [
            (800_000, 800_000)
        ]
        assert run_cli("run", "flows.yml", cwd=drops).returncode == 0  # nothing new, no lock
        assert db.run(f"SELECT count(*) FROM {db.q(table)}") == [(800_000,)]


# -- two flows writing one destination -------------------------------------------------------
def test_two_flows_replacing_one_store_are_refused(tmp_path: Path):
    pl.DataFrame({"id": [1]}).write_parquet(tmp_path / "a.parquet")
    pl.DataFrame({"id": [2]}).write_parquet(tmp_path / "b.parquet")
    write_flows(
        tmp_path,
        "flows:\n"
        "  first:\n    home: a.parquet\n    store: lake/shared\n"
        "  second:\n    home: b.parquet\n    store: ./lake/x/../shared/\n",
    )
    for command in ("validate", "run"):
        done = run_cli(command, "flows.yml", cwd=tmp_path)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        err = done.stderr
        assert "flows.yml:5" in err and "'first' (line 2)" in err and "'second' (line 5)" in err
        assert "mode: append" in err
    assert not (tmp_path / "lake").exists()


def test_flows_appending_to_one_store_by_design_are_allowed(tmp_path: Path):
    for n in "ab":
        pl.DataFrame({"id": [ord(n)]}).write_parquet(tmp_path / f"{n}.parquet")
    write_flows(
        tmp_path,
        "flows:\n"
        "  first: {home: a.parquet, store: {path: lake/shared, mode: append}}\n"
        "  second: {home: b.parquet, store: {path: lake/shared, mode: append}}\n",
    )
    done = run_cli("run", "flows.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert fingerprint(tmp_path / "lake" / "shared") == fingerprint(f"{tmp_path}/[ab].parquet")


def test_two_flows_replacing_one_sql_table_are_refused(tmp_path: Path, postgres_url: str):
    pl.DataFrame({"id": [1]}).write_parquet(tmp_path / "a.parquet")
    table = unique("shared")
    write_flows(
        tmp_path,
        "flows:\n"
        f"  first: {{home: a.parquet, store: {{type: sql, connection: '{postgres_url}', "
        f"table: {table}}}}}\n"
        f"  second: {{home: a.parquet, store: {{type: sql, connection: '{postgres_url}', "
        f"table: {table}, mode: append}}}}\n",
    )
    done = run_cli("validate", "flows.yml", cwd=tmp_path)
    assert done.returncode == 2 and f"table {table}" in done.stderr, done.stderr
    assert "'first' (line 2)" in done.stderr and "'second' (line 3)" in done.stderr


# -- files of one folder whose schemas differ only in nullability ----------------------------------
def test_files_differing_only_in_nullability_load_together(tmp_path: Path):
    (tmp_path / "in").mkdir()
    for n, nullable in enumerate((False, True)):
        schema = pa.schema([pa.field("id", pa.int64(), nullable=nullable), ("v", pa.string())])
        table = pa.table({"id": [n * 10 + 1, n * 10 + 2], "v": ["a", None]}, schema=schema)
        pq.write_table(table, tmp_path / "in" / f"{n}.parquet")
    assert not pq.read_schema(tmp_path / "in" / "0.parquet").field("id").nullable
    write_flows(tmp_path, "flows: {f: {home: in, store: out}}")
    done = run_cli("run", "flows.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert fingerprint(tmp_path / "out") == fingerprint(tmp_path / "in")


def test_files_with_columns_in_another_order_name_the_order(tmp_path: Path):
    (tmp_path / "in").mkdir()
    pl.DataFrame({"id": [1], "v": ["a"]}).write_parquet(tmp_path / "in" / "a.parquet")
    pl.DataFrame({"v": ["b"], "id": [2]}).write_parquet(tmp_path / "in" / "b.parquet")
    write_flows(tmp_path, "flows: {f: {home: in, store: out}}")
    done = run_cli("run", "flows.yml", cwd=tmp_path)
    assert done.returncode == 1
    assert "b.parquet does not have the same columns as" in done.stderr
    assert "the columns are in another order (v, id, not id, v)" in done.stderr


# -- a full disk ---------------------------------------------------------------------------------
@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 2 MB tmpfs (the tests run as root, as CI does); no mount is a failure, not a skip."""
    disk = tmp_path / "tiny"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.fail(
            f"cannot mount a 2 MB tmpfs to test a full disk (run as root): {mounted.stderr}"
        )
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def test_a_full_disk_names_the_store_and_the_path(tmp_path: Path, tiny_disk: Path):
    rows = 400_000
    pl.DataFrame({"id": range(rows), "v": [f"value-{i}" for i in range(rows)]}).write_parquet(
        tmp_path / "big.parquet"
    )
    write_flows(
        tmp_path,
        f"flows: {{f: {{home: big.parquet, store: {{path: {tiny_disk}/out, compression: none}}}}}}",
    )
    done = run_cli("run", "flows.yml", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"store 'f': no space left on the device while writing {tiny_disk}/out" in done.stderr
    assert "nothing was published" in done.stderr
    assert list(tiny_disk.iterdir()) == []  # the staging folder went, nothing was published
