"""`hygge enqueue` of entity definitions through real workers: one task per entity, each
message carrying the entity's raw flow with `${VAR}` unresolved (discovery happened at
enqueue time), `depends_on: [definition]` waiting for every entity."""

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
        sent = cluster.cli("enqueue", str(flows), "--wait")
        assert sent.returncode == 0, sent.stdout + sent.stderr + cluster.log("w1")
        run_id, tasks = parse_enqueue(sent.stdout)
        assert sorted(tasks) == sorted(
            ["drops.orders", "drops.refunds", "drops.returns", "crm.accounts", "crm.invoices"]
        )
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
