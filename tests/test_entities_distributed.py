"""`hygge enqueue` of entity definitions through real workers: the entities are discovered by
a worker (the enqueuing machine has no database URL and no folder: it needs only Redis), then
one task per entity, each message carrying the entity's raw flow with `${VAR}` unresolved,
`depends_on: [definition]` waiting for every entity."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.checks import fingerprint
from tests.distributed_support import (
    SECRET,
    Cluster,
    claim_db,
    everything_in,
    flush,
    parse_enqueue,
)
from tests.entity_support import fill, parquet_rows, pg_schema
from tests.test_distributed_runs import with_password
from tests.test_entities_files import drop

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(redis_url: str, postgres_url: str, tmp_path: Path) -> Iterator[Cluster]:
    url = claim_db(redis_url)
    c = Cluster(
        url,
        tmp_path,
        {"ENT_DROPS": str(tmp_path / "drops"), "ENT_PG": with_password(postgres_url)},
    )
    try:
        c.start_worker("w1")
        yield c
    finally:
        c.stop()
        flush(url)


def test_enqueue_sends_one_task_per_entity(
    cluster: Cluster, postgres_url: str, tmp_path: Path
) -> None:
    for name, rows in (("orders", 12), ("refunds", 5), ("returns", 3)):
        drop(tmp_path / "drops" / name, "part", rows)
    with pg_schema(postgres_url) as (pg, schema):
        fill(pg, schema, "accounts", 0, 21)
        fill(pg, schema, "invoices", 1, 8)
        flows = tmp_path / "flows.yml"
        flows.write_text(
            f"""
flows:
  drops:
    home: {{type: csv, path: "${{ENT_DROPS}}/{{entity}}/*.csv"}}
    store: {{type: parquet, path: "lake/drops/{{entity}}"}}
  crm:
    home: {{type: sql, connection: "${{ENT_PG}}", tables: ["{schema}.*"]}}
    store: {{type: parquet, path: "lake/crm/{{entity}}"}}
    depends_on: [drops]
"""
        )
        # the enqueuer's environment has neither the database URL nor the drops folder
        sent = cluster.cli("enqueue", str(flows), "--wait", ENT_PG="", ENT_DROPS="")
        assert sent.returncode == 0, sent.stdout + sent.stderr + cluster.log("w1")
        run_id, tasks = parse_enqueue(sent.stdout)
        assert list(tasks) == ["discover:entities"]  # all the enqueuer sent
        assert "discovered on a worker" in sent.stdout
        flows_run = cluster.status(run_id)
        assert sorted(flows_run) == sorted(
            [
                "discover:entities",
                *("drops.orders", "drops.refunds", "drops.returns"),
                *("crm.accounts", "crm.invoices"),
            ]
        )
        assert all(f["state"] == "success" for f in flows_run.values()), flows_run
        assert flows_run["discover:entities"]["worker"] == "w1@test"
        assert "5 flow(s) planned" in flows_run["discover:entities"]["message"]
        for name, rows in (("orders", 12), ("refunds", 5), ("returns", 3)):
            source = fingerprint(tmp_path / "drops" / name / "part.csv")
            assert source[0] == rows
            assert fingerprint(tmp_path / "lake/drops" / name) == source
        assert parquet_rows(tmp_path / "lake/crm/accounts") == (21, 21)
        assert parquet_rows(tmp_path / "lake/crm/invoices") == (8, 8)

        jobs = cluster.redis.hgetall(f"hygge:run:{run_id}:jobs")
        job = json.loads(jobs[b"crm.invoices"])
        assert job["raw"]["home"]["connection"] == "${ENT_PG}"  # resolved by the worker
        assert job["raw"]["home"]["table"] == "invoices" and job["raw"]["home"]["schema"] == schema
        assert sorted(job["depends_on"]) == ["drops.orders", "drops.refunds", "drops.returns"]
        assert json.loads(jobs[b"drops.orders"])["raw"]["home"]["path"] == (
            "${ENT_DROPS}/orders/*.csv"
        )
        assert SECRET not in everything_in(cluster.redis)
        status = cluster.cli("status", run_id)
        assert status.returncode == 0 and "crm.accounts" in status.stdout


def test_a_discovery_the_worker_cannot_do_fails_its_step_naming_the_worker(
    redis_url: str, tmp_path: Path
) -> None:
    """The worker lacks the variable the definition's connection needs: the discover step
    fails naming the worker and the variable, the run ends failed, nothing else runs."""
    url = claim_db(redis_url)
    c = Cluster(url, tmp_path)  # no ENT_PG in the worker's environment
    try:
        c.start_worker("w1")
        flows = tmp_path / "flows.yml"
        flows.write_text(
            "flows:\n  crm:\n"
            '    home: {type: sql, connection: "${ENT_PG_NOWHERE}", tables: ["public.*"]}\n'
            '    store: {type: parquet, path: "lake/crm/{entity}"}\n'
        )
        sent = c.cli("enqueue", str(flows), "--wait")
        assert sent.returncode == 1, sent.stdout + sent.stderr
        run_id, _ = parse_enqueue(sent.stdout)
        step = c.status(run_id)["discover:entities"]
        assert step["state"] == "failed", step
        assert "on worker w1@test" in step["message"] and "ENT_PG_NOWHERE" in step["message"]
        assert list(c.status(run_id)) == ["discover:entities"]
        assert not (tmp_path / "lake").exists()
    finally:
        c.stop()
        flush(url)
