"""`checks:` on real workers: a partitioned flow whose duplicate keys sit in partitions run by
different workers fails `unique` and publishes nothing; a partitioned flow quarantines every
partition's failing rows, publishing the rest once; a passing flow's checks show in
`hygge status` and in Flower's task result."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.distributed_support import (  # noqa: F401  (fixtures)
    claim_db,
    db,
    make_cluster,
    parse_enqueue,
    wait_for,
)
from tests.test_shape_flows import QUALITY, assert_split, customers, drop, flows, quarantine_input

pytestmark = pytest.mark.slow


def test_distributed_failing_check_publishes_nothing(make_cluster, tmp_path: Path) -> None:
    drop(tmp_path / "in", "a.parquet", customers(10))
    drop(tmp_path / "in", "b.parquet", customers(10, start=9))  # id 9 in both partitions
    quality = QUALITY.replace(", source_file: file", "")
    extra = "    options: {partitions: 2, retries: 0}\n"
    (tmp_path / "flows.yml").write_text(
        flows(
            str(tmp_path / "in"),
            f"{{path: {tmp_path / 'out'}, shared_volume: true}}",  # the workers share this disk
            extra,
            quality=quality,
        )
    )
    cluster = make_cluster()
    cluster.start_worker("w1", concurrency=1)
    cluster.start_worker("w2", concurrency=1)
    done = cluster.cli("enqueue", str(tmp_path / "flows.yml"), "--wait", timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr
    run_id, _ = parse_enqueue(done.stdout)
    status = cluster.status(run_id)["customers"]
    assert status["state"] == "failed"
    assert "unique(customer_id): FAILED, 1 failing row" in status["message"], status
    assert "c9@example.com" not in status["message"]
    assert all(cluster.status(run_id)[f"customers#{i}/2"]["state"] == "success" for i in (1, 2))
    out = tmp_path / "out"
    assert not out.exists() or not any(out.rglob("*.parquet"))  # nothing published
    shown = cluster.cli("status", run_id)
    assert "unique(customer_id)" in " ".join(shown.stdout.split()), shown.stdout


def test_distributed_checks_in_status_and_flower(make_cluster, tmp_path: Path) -> None:
    drop(tmp_path / "in", "a.parquet", customers(12))
    (tmp_path / "flows.yml").write_text(flows(str(tmp_path / "in"), str(tmp_path / "out")))
    cluster = make_cluster()
    cluster.start_worker("w1")
    cluster.start_flower()
    done = cluster.cli("enqueue", str(tmp_path / "flows.yml"), "--wait", timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    run_id, tasks = parse_enqueue(done.stdout)
    assert "7 checks passed" in cluster.status(run_id)["customers"]["summary"]
    info = wait_for(
        lambda: (t := cluster.flower_task(tasks["customers"])).get("result") and t,
        120,
        "flower to show the task's result",
    )
    assert "7 checks passed" in str(info["result"]), info


def test_distributed_partitioned_quarantine(make_cluster, tmp_path: Path) -> None:
    """Three partitions on two workers, failing rows in each: the commit step publishes the
    passing rows and the quarantined ones; together they are the source (DuckDB)."""
    quarantine_input(tmp_path / "in")
    quality = QUALITY.replace(", source_file: file", "")
    extra = (
        "    options: {partitions: 3, retries: 0}\n    on_check_failure: quarantine\n"
        f"    quarantine: {{path: {tmp_path / 'bad'}, shared_volume: true}}\n"
    )
    (tmp_path / "flows.yml").write_text(
        flows(
            str(tmp_path / "in"),
            f"{{path: {tmp_path / 'out'}, shared_volume: true}}",
            extra,
            quality=quality,
        )
    )
    cluster = make_cluster()
    cluster.start_worker("w1", concurrency=1)
    cluster.start_worker("w2", concurrency=1)
    done = cluster.cli("enqueue", str(tmp_path / "flows.yml"), "--wait", timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    run_id, _ = parse_enqueue(done.stdout)
    summary = " ".join(cluster.status(run_id)["customers"]["summary"].split())
    assert "5 rows quarantined" in summary, summary
    assert all(cluster.status(run_id)[f"customers#{i}/3"]["state"] == "success" for i in (1, 2, 3))
    assert_split(tmp_path / "in", tmp_path / "out", tmp_path / "bad")
