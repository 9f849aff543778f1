"""An incremental SQL flow through `hygge enqueue`: the worker running it is SIGKILLed
mid-flow, another worker finishes it, and the state (kept at the destination, never on a
worker) makes the next run move exactly what changed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.distributed_support import Cluster, claim_db, flush, parse_enqueue
from tests.helpers import wait_for
from tests.test_incremental_sql import BASE, Source, Target

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(redis_url: str, tmp_path: Path) -> Iterator[Cluster]:
    url = claim_db(redis_url)
    c = Cluster(url, tmp_path / "cluster", {"HYGGE_LEASE_SECONDS": "3", "HYGGE_SWEEP_SECONDS": "1"})
    c.workdir.mkdir()
    try:
        yield c
    finally:
        c.stop()
        flush(url)


@pytest.fixture
def src(postgres_url: str) -> Iterator[Source]:
    source = Source(postgres_url)
    yield source
    source.close()


def _enqueue(cluster: Cluster, flows: Path) -> str:
    done = cluster.cli("enqueue", str(flows))
    assert done.returncode == 0, done.stderr
    return parse_enqueue(done.stdout)[0]


def _finished(cluster: Cluster, run_id: str) -> dict[str, str]:
    return wait_for(
        lambda: (s := cluster.status(run_id)["inc"])["state"] in ("success", "failed") and s,
        150,
        "the flow to finish",
        every=0.2,
    )


def test_worker_killed_mid_incremental_flow(
    cluster: Cluster, src: Source, postgres_url: str, mysql_url: str, tmp_path: Path
):
    source = src
    db = source.db
    slow_fn = f"{source.table}_slow"
    db.run(
        f"CREATE FUNCTION {slow_fn}() RETURNS bool AS $$ BEGIN PERFORM pg_sleep(0.0005); "
        "RETURN true; END $$ LANGUAGE plpgsql VOLATILE"
    )
    target = Target("postgres", tmp_path, postgres_url, mysql_url, key=False)
    try:
        flows = tmp_path / "flows.yml"
        flows.write_text(
            "flows:\n  inc:\n"
            f"    home: {{type: sql, connection: '{postgres_url}', query: 'SELECT id, v, "
            f"updated_at FROM {source.table} WHERE {slow_fn}()', cursor: updated_at, "
            "lag: 10m, batch_size: 500}\n"
            f"    store: {target.store_yaml()}\n"
            "    options: {incremental: true}\n"
        )
        cluster.start_worker("w1", concurrency=1)
        cluster.start_worker("w2", concurrency=1)

        source.insert(range(1, 501), BASE)
        assert _finished(cluster, _enqueue(cluster, flows))["state"] == "success"
        source.after_run()
        assert target.rows() == sorted(source.versions)

        top = source.max_ts()
        source.insert(range(1_000, 13_000), top + dt.timedelta(minutes=1), "new")
        source.update(range(1, 40), top + dt.timedelta(minutes=2), "u")
        source.insert(range(20_000, 20_005), top - dt.timedelta(minutes=3), "late")
        run_id = _enqueue(cluster, flows)
        running = wait_for(
            lambda: (s := cluster.status(run_id)["inc"]).get("state") == "running" and s,
            60,
            "the flow to be running",
        )
        # the slow query takes about 6 s: kill once it runs, mid-read
        wait_for(
            lambda: db.run(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                "AND pid <> pg_backend_pid() AND query LIKE %s",
                (f"%{slow_fn}()%",),
            )[0][0],
            60,
            "the slow query to run",
        )
        assert cluster.status(run_id)["inc"]["state"] == "running"
        cluster.kill(running["worker"].split("@")[0])
        assert target.rows() == sorted(source.versions)  # nothing half-published
        final = _finished(cluster, run_id)
        assert final["state"] == "success" and final["worker"] != running["worker"], final
        source.after_run()
        assert target.rows() == sorted(source.versions)

        source.insert(range(30_000, 30_010), source.max_ts() + dt.timedelta(seconds=5), "last")
        final = _finished(cluster, _enqueue(cluster, flows))
        assert final["state"] == "success" and int(final["rows"]) == 10, final
        source.after_run()
        assert target.rows() == sorted(source.versions)
    finally:
        target.drop()
        db.run(f"DROP FUNCTION IF EXISTS {slow_fn}()")
