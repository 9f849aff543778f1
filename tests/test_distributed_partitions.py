"""Partitioned flows on real workers: one task per partition, one commit step; a partition
whose worker is SIGKILLed is the only one run again; a failing partition publishes nothing."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import duckdb
import pytest

from tests.distributed_support import (  # noqa: F401  (fixtures)
    Cluster,
    claim_db,
    db,
    flush,
    make_cluster,
    parse_enqueue,
    wait_for,
)

pytestmark = pytest.mark.slow

FAST_RECLAIM = {"HYGGE_LEASE_SECONDS": "4", "HYGGE_SWEEP_SECONDS": "1"}


def pieces_flow(tmp: Path, parts: int, rows: int, delay: float, **extra: object) -> Path:
    settings = "".join(f", {k}: {v}" for k, v in extra.items())
    path = tmp / "flows.yml"
    path.write_text(
        "flows:\n  big:\n"
        f"    home: {{type: pieces, rows: {rows}, batch_size: 100, delay: {delay}, "
        f"log: {tmp / 'reads.log'}{settings}}}\n"
        # one machine's workers share its disk: the store says so (else enqueue refuses)
        f"    store: {{path: {tmp / 'lake' / 'big'}, shared_volume: true}}\n"
        f"    options: {{partitions: {parts}, retry_delay: 0.1}}\n"
    )
    return path


def count_and_sum(path: Path) -> tuple[int, int, int]:
    with duckdb.connect() as con:
        return con.execute(
            f"select count(*), count(distinct id), sum(id) from read_parquet('{path}/*.parquet')"
        ).fetchone()


def reads(tmp: Path) -> Counter[str]:
    return Counter((tmp / "reads.log").read_text().split())


def finished(cluster: Cluster, run_id: str, flow: str = "big") -> dict[str, str] | None:
    s = cluster.status(run_id).get(flow, {})
    return s if s.get("state") in ("success", "failed") else None


def test_one_task_per_partition_and_one_commit(make_cluster, tmp_path: Path) -> None:
    cluster = make_cluster()
    cluster.start_worker("w1")
    cluster.start_worker("w2")
    result = cluster.cli("enqueue", str(pieces_flow(tmp_path, 6, 6000, 0.0)), "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    run_id, tasks = parse_enqueue(result.stdout)
    assert len(tasks) == 7 and "big#3/6" in tasks  # six partitions and the commit step
    flows = cluster.status(run_id)
    assert flows["big"]["state"] == "success" and int(flows["big"]["rows"]) == 6000
    assert all(flows[f"big#{i}/6"]["state"] == "success" for i in range(1, 7))
    assert count_and_sum(tmp_path / "lake" / "big") == (6000, 6000, sum(range(6000)))
    assert reads(tmp_path) == Counter(str(i) for i in range(6))
    assert sorted(p.name for p in (tmp_path / "lake").iterdir()) == ["big"]  # no staging left
    assert "6/6" in result.stdout  # the flow's line says partitions done/total


def test_sigkill_mid_partition_reruns_only_that_partition(make_cluster, tmp_path: Path) -> None:
    cluster = make_cluster(**FAST_RECLAIM)
    cluster.start_worker("w1", concurrency=1)
    cluster.start_worker("w2", concurrency=1)
    result = cluster.cli("enqueue", str(pieces_flow(tmp_path, 4, 4000, 0.3)))
    assert result.returncode == 0, result.stderr
    run_id, _ = parse_enqueue(result.stdout)
    victim = wait_for(
        lambda: next(
            (
                (name, s)
                for name, s in cluster.status(run_id).items()
                if "#" in name and s.get("state") == "running" and int(s.get("rows", 0)) >= 200
            ),
            None,
        ),
        60,
        "a partition to be running",
    )
    name, running = victim
    cluster.kill(running["worker"].split("@")[0])
    final = wait_for(lambda: finished(cluster, run_id), 120, "the flow to commit", every=0.2)
    assert final["state"] == "success", final
    assert count_and_sum(tmp_path / "lake" / "big") == (4000, 4000, sum(range(4000)))
    killed_part = str(int(name.split("#")[1].split("/")[0]) - 1)
    counts = reads(tmp_path)
    assert counts[killed_part] == 2, counts  # the killed partition ran again ...
    assert all(n == 1 for part, n in counts.items() if part != killed_part), counts  # only it
    assert int(cluster.status(run_id)[name]["generation"]) == 2


def test_a_failing_partition_publishes_nothing_and_cleans_up(make_cluster, tmp_path: Path) -> None:
    cluster = make_cluster()
    cluster.start_worker("w1")
    result = cluster.cli("enqueue", str(pieces_flow(tmp_path, 4, 4000, 0.0, fail_part=2)))
    assert result.returncode == 0, result.stderr
    run_id, _ = parse_enqueue(result.stdout)
    final = wait_for(lambda: finished(cluster, run_id), 60, "the commit step to end")
    assert final["state"] == "failed"
    assert "1 of its 4 partitions failed" in final["message"], final
    assert "part 2 is broken" in final["message"]
    assert not (tmp_path / "lake" / "big").exists()
    assert list((tmp_path / "lake").iterdir()) == []  # every partition's staging deleted


def test_64_partitions_on_8_worker_processes_two_killed(make_cluster, tmp_path: Path) -> None:
    cluster = make_cluster(**FAST_RECLAIM)
    for i in range(4):
        cluster.start_worker(f"w{i}", concurrency=2)
    rows = 64 * 500
    result = cluster.cli("enqueue", str(pieces_flow(tmp_path, 64, rows, 0.05)))
    assert result.returncode == 0, result.stderr
    run_id, _ = parse_enqueue(result.stdout)

    def done_parts() -> int:
        return sum(
            s.get("state") == "success" for n, s in cluster.status(run_id).items() if "#" in n
        )

    wait_for(lambda: done_parts() >= 8, 60, "some partitions to be done")
    cluster.kill("w0")
    wait_for(lambda: done_parts() >= 24, 60, "more partitions to be done")
    cluster.kill("w1")
    final = wait_for(lambda: finished(cluster, run_id), 240, "the flow to commit", every=0.2)
    assert final["state"] == "success", final
    assert count_and_sum(tmp_path / "lake" / "big") == (rows, rows, sum(range(rows)))
    assert int(final["rows"]) == rows
    assert set(reads(tmp_path)) == {str(i) for i in range(64)}


def test_flower_shows_every_partition_with_progress_and_status_one_line(
    make_cluster, tmp_path: Path
) -> None:
    cluster = make_cluster()
    cluster.start_flower()
    cluster.start_worker("w1")
    result = cluster.cli("enqueue", str(pieces_flow(tmp_path, 2, 4000, 0.3)))
    assert result.returncode == 0, result.stderr
    run_id, tasks = parse_enqueue(result.stdout)
    parts = [tasks["big#1/2"], tasks["big#2/2"]]
    seen: dict[str, str] = {}

    def progress() -> bool:
        for task_id in parts:
            info = cluster.flower_task(task_id)
            if info.get("state") == "PROGRESS" and " rows · " in str(info.get("result")):
                seen[task_id] = info["result"]
        return len(seen) == 2

    wait_for(progress, 60, "both partitions showing PROGRESS in Flower", every=0.2)
    assert cluster.flower_task(parts[0])["args"] == "('big#1/2',)"
    shown = cluster.cli("status", run_id)
    assert "partitions " in shown.stdout and "big#1/2" not in shown.stdout, shown.stdout
    assert "big#1/2" in cluster.cli("status", run_id, "--partitions").stdout
    wait_for(lambda: finished(cluster, run_id), 90, "the flow to commit")
    assert count_and_sum(tmp_path / "lake" / "big") == (4000, 4000, sum(range(4000)))


def test_a_partitioned_incremental_flow_on_workers(
    make_cluster, tmp_path: Path, postgres_url: str
) -> None:
    from tests.sqldb import Db, unique

    db = Db(postgres_url)
    table = unique("inc")
    db.run(f"CREATE TABLE {table} (id int, v text, updated_at timestamptz)")

    def insert(first: int, last: int, hour: int) -> None:
        db.run(
            f"INSERT INTO {table} SELECT i, 'v' || i, "
            f"timestamptz '2024-05-01 00:00:00+00' + interval '{hour} hour' + i * interval '1 s' "
            f"FROM generate_series({first}, {last}) i"
        )

    flows = tmp_path / "flows.yml"
    flows.write_text(
        "flows:\n  inc:\n"
        f"    home: {{type: sql, connection: '{postgres_url}', table: {table}, "
        "cursor: updated_at, lag: 1h, partition_on: id}\n"
        f"    store: {{path: {tmp_path / 'lake' / 'inc'}, shared_volume: true}}\n"
        "    options: {partitions: 3, incremental: true}\n"
    )
    cluster = make_cluster()
    cluster.start_worker("w1")
    try:
        insert(1, 900, 0)
        first = cluster.cli("enqueue", str(flows), "--wait")
        assert first.returncode == 0, first.stdout + first.stderr
        insert(901, 1200, 3)
        second = cluster.cli("enqueue", str(flows), "--wait")
        assert second.returncode == 0, second.stdout + second.stderr
        run_id, _ = parse_enqueue(second.stdout)
        assert int(cluster.status(run_id)["inc"]["rows"]) == 300  # only the new rows
        assert count_and_sum(tmp_path / "lake" / "inc") == (1200, 1200, sum(range(1, 1201)))
    finally:
        db.drop(table)
        db.close()


def test_a_commit_step_killed_after_its_publish_is_run_again_and_adds_nothing(
    make_cluster, postgres_url: str, tmp_path: Path
) -> None:
    """The worker running the commit step dies after the publish committed but before the
    step was recorded as done (held there: the step's clean-up waits to drop the parts'
    table while this test reads it). Another worker runs the step again: it finds the run's
    commit mark, publishes nothing more and succeeds; an append lands every row once."""
    import psycopg

    from hygge.sql.state_table import STATE_TABLE, mark_key
    from tests.sqldb import Db, unique

    target = unique("dest")
    db = Db(postgres_url)
    db.run(f"CREATE TABLE {target} (id bigint)")
    db.run(f"INSERT INTO {target} VALUES (-1)")
    flows = tmp_path / "flows.yml"
    flows.write_text(
        "flows:\n  big:\n"
        f"    home: {{type: pieces, rows: 4000, batch_size: 100, delay: 0.2, "
        f"log: {tmp_path / 'reads.log'}}}\n"
        f"    store: {{type: sql, connection: '{postgres_url}', table: {target}, mode: append}}\n"
        "    options: {partitions: 4, retry_delay: 0.1}\n"
    )
    reader = psycopg.connect(postgres_url)  # holds the parts' table: its DROP waits
    try:
        cluster = make_cluster(**FAST_RECLAIM)
        cluster.start_worker("w1", concurrency=1)
        cluster.start_worker("w2", concurrency=1)
        result = cluster.cli("enqueue", str(flows))
        assert result.returncode == 0, result.stderr
        run_id, _ = parse_enqueue(result.stdout)

        def parts_table() -> str | None:
            prefix = f"_hygge_parts_{target}_"
            return next((t for t in db.staging_tables() if t.startswith(prefix)), None)

        shared = wait_for(parts_table, 120, "the parts' table")
        reader.execute(f'SELECT count(*) FROM "{shared}"')  # ACCESS SHARE until rollback

        def published() -> bool:
            return int(db.run(f"SELECT count(*) FROM {target}")[0][0]) > 1

        wait_for(published, 300, "the commit to publish", every=0.2)
        step = cluster.status(run_id)["big"]
        assert step.get("state") == "running", step  # held in its clean-up
        cluster.kill(step["worker"].split("@")[0])
        reader.rollback()
        final = wait_for(lambda: finished(cluster, run_id), 300, "the step to run again")
        assert final["state"] == "success", final
        assert int(cluster.status(run_id)["big"]["generation"]) == 2  # it did run again
        got = db.run(f"SELECT count(*), count(DISTINCT id), sum(id) FROM {target}")[0]
        assert tuple(int(v) for v in got) == (4001, 4001, sum(range(4000)) - 1)
        marks = db.run(f"SELECT flow FROM {STATE_TABLE} WHERE flow LIKE '{target}/%'")
        assert len(marks) == 1 and marks[0][0].startswith(mark_key(target, "parts-")), marks
        wait_for(lambda: parts_table() is None, 120, "the parts' table to be dropped")
    finally:
        reader.close()
        db.run(f"DELETE FROM {STATE_TABLE} WHERE flow LIKE '{target}/%'")
        db.drop(target)
        db.close()
