"""A partitioned PostgreSQL read is one snapshot, in both runners (issue 19, item 3): rows
moved out of a partition's range after the plan, while the first partition reads, were
lost (10,000 of 20,000 rows, exit 0); MariaDB says in `validate` that it cannot share one.

The moment is made exact, not timed: the query passes each row through a gate function that,
at one row of the first partition, waits for an advisory lock the test holds. Once a reader
waits there (the plan is made, the first partition's snapshot taken), the test moves the
second partition's rows away, commits, and opens the gate.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb
import psycopg
import pytest

from hygge.coordinator import Coordinator
from hygge.sql import snapshot
from tests.conftest import run_cli
from tests.distributed_support import db, make_cluster, parse_enqueue  # noqa: F401
from tests.helpers import wait_for
from tests.sqldb import Db, unique

ROWS = 20_000


class Gate:
    """A table of ROWS rows, a gate at row 5,000, and the advisory lock that closes it."""

    def __init__(self, url: str) -> None:
        self.url, self.db = url, Db(url)
        self.table, self.fn = unique("snap"), unique("gate")
        self.key = random.randrange(1, 2**31)
        self.db.run(
            f"CREATE TABLE {self.table} AS SELECT g::bigint AS id, 'v' || g AS v "
            f"FROM generate_series(1, {ROWS}) g"
        )
        self.db.run(
            f"CREATE FUNCTION {self.fn}(i bigint) RETURNS boolean LANGUAGE plpgsql VOLATILE AS "
            f"$$ BEGIN IF i = 5000 THEN PERFORM pg_advisory_lock_shared({self.key}); "
            f"PERFORM pg_advisory_unlock_shared({self.key}); END IF; RETURN true; END $$"
        )
        self.expected = sorted(self.db.run(f"SELECT v, id FROM {self.table}"))
        self.holder = psycopg.connect(url, autocommit=True)
        self.holder.execute(f"SELECT pg_advisory_lock({self.key})")

    def flows(self, tmp_path: Path, lake: Path) -> Path:
        query = f"SELECT id, v FROM {self.table} WHERE {self.fn}(id)"
        path = tmp_path / "flows.yml"
        path.write_text(
            "flows:\n  snap:\n"
            f'    home: {{type: sql, connection: "{self.url}", query: "{query}", '
            "partition_on: id, batch_size: 1000}\n"
            f"    store: {{path: {lake}, shared_volume: true}}\n"  # one machine's workers
            "    options: {ranges: [[1, 10001], [10001, 20001]], parallel: 1}\n"
        )
        return path

    def waiting(self) -> bool:
        return bool(
            self.db.run(
                "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                f"AND objid = {self.key}"
            )
        )

    def move_rows_and_open(self) -> None:
        """Move the second partition's rows out of its range, then let the readers go on."""
        self.db.run(f"UPDATE {self.table} SET id = -id WHERE id > 10000")
        self.holder.execute(f"SELECT pg_advisory_unlock({self.key})")

    def close(self) -> None:
        self.holder.close()
        self.db.run(f"DROP FUNCTION IF EXISTS {self.fn}(bigint)")
        self.db.drop(self.table)
        self.db.close()


@pytest.fixture
def gate(postgres_url: str) -> Iterator[Gate]:
    g = Gate(postgres_url)
    yield g
    g.close()


def _lake(path: Path) -> list[tuple]:
    return sorted(duckdb.sql(f"SELECT v, id FROM read_parquet('{path}/*.parquet')").fetchall())


def test_in_process_partitions_read_one_snapshot(gate: Gate, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    coordinator = Coordinator(gate.flows(tmp_path, lake))
    opener = threading.Thread(
        target=lambda: (
            wait_for(gate.waiting, 300, "a partition at the gate"),
            gate.move_rows_and_open(),
        )
    )
    opener.start()
    result = coordinator.run()
    opener.join()
    assert result.ok, result.failed
    assert result.results["snap"].rows == ROWS
    assert _lake(lake) == gate.expected  # the table as it was when the read was planned
    assert snapshot.held() == []  # and the snapshot was let go


def test_partitions_on_workers_read_one_snapshot(gate: Gate, make_cluster, tmp_path: Path) -> None:  # noqa: F811
    lake = tmp_path / "lake"
    flows = gate.flows(tmp_path, lake)
    cluster = make_cluster()
    cluster.start_worker("w1", concurrency=1)  # one partition after the other
    opener = threading.Thread(
        target=lambda: (
            wait_for(gate.waiting, 300, "a partition at the gate"),
            gate.move_rows_and_open(),
        )
    )
    opener.start()
    result = cluster.cli("enqueue", str(flows), "--wait", timeout=600)
    opener.join()
    assert result.returncode == 0, result.stdout + result.stderr
    run_id, _ = parse_enqueue(result.stdout)
    assert int(cluster.status(run_id)["snap"]["rows"]) == ROWS
    assert _lake(lake) == gate.expected
    # the planner's worker let the snapshot go once every partition ended
    wait_for(
        lambda: (
            not gate.db.run(
                "SELECT 1 FROM pg_stat_activity WHERE query = 'SELECT pg_export_snapshot()' "
                "AND state LIKE 'idle in transaction%'"
            )
        ),
        120,
        "the exported snapshot to be released",
    )


def test_validate_says_mariadb_partitions_do_not_share_a_snapshot(
    mysql_url: str, tmp_path: Path
) -> None:
    table = unique("snap")
    my = Db(mysql_url)
    my.run(f"CREATE TABLE {table} (id int)")
    try:
        (tmp_path / "flows.yml").write_text(
            "flows:\n  snap:\n"
            f'    home: {{type: sql, connection: "{mysql_url}", table: {table}, '
            "partition_on: id}\n"
            "    store: lake/snap\n"
            "    options: {partitions: 2}\n"
        )
        result = run_cli("validate", "flows.yml", cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "flow 'snap': mysql: partitions cannot share one snapshot" in result.stdout
    finally:
        my.drop(table)
        my.close()
