"""Distributed runs when things go wrong: a worker killed mid-flow, a flow that keeps killing
its worker, duplicated messages, SIGTERM, and bad input to `hygge enqueue`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from tests.checks import count_and_sum
from tests.conftest import ROOT, run_cli
from tests.distributed_support import (  # noqa: F401  (fixtures)
    SECRET,
    SECRET_URL,
    Cluster,
    claim_db,
    db,
    decoded_message,
    flush,
    make_cluster,
    parse_enqueue,
)
from tests.helpers import wait_for, write_flows

pytestmark = pytest.mark.slow


def slow(name: str, out: Path, rows: int, batch: int, delay: float) -> str:
    return (
        f"  {name}:\n"
        f"    home: {{type: slow, rows: {rows}, batch_size: {batch}, delay: {delay}}}\n"
        f"    store: {{type: parquet, path: {out}}}\n"
    )


def test_sigkill_mid_flow_completes_on_the_other_worker(make_cluster, tmp_path: Path) -> None:
    cluster = make_cluster()  # default lease and sweep settings
    cluster.start_worker("w1", concurrency=1)
    cluster.start_worker("w2", concurrency=1)
    out = tmp_path / "big"
    rows = 30_000
    result = cluster.cli(
        "enqueue", str(write_flows(tmp_path, "flows:\n" + slow("big", out, rows, 1000, 0.4)))
    )
    assert result.returncode == 0, result.stderr
    run_id, _ = parse_enqueue(result.stdout)
    running = wait_for(
        lambda: (
            (s := cluster.status(run_id)["big"]).get("state") == "running"
            and int(s.get("rows", 0)) >= 3000
            and s
        ),
        30,
        "the flow to be running",
    )
    victim = running["worker"].split("@")[0]
    cluster.kill(victim)
    killed_at = time.monotonic()

    def finished() -> dict[str, str] | None:
        # the dataset appears (one rename) a moment before the status says success: what
        # must never be seen is a dataset without every row
        if out.exists():
            assert count_and_sum(out) == (rows, rows, sum(range(rows))), (
                "a partial dataset became visible"
            )
        s = cluster.status(run_id)["big"]
        return s if s["state"] in ("success", "failed") else None

    final = wait_for(finished, 150, "the flow to finish on the other worker", every=0.2)
    took = time.monotonic() - killed_at
    assert final["state"] == "success", final
    assert took < 120, f"took {took:.0f}s after the kill"
    assert final["worker"] != running["worker"]
    assert int(final["generation"]) == 2
    assert count_and_sum(out) == (rows, rows, sum(range(rows)))
    assert int(final["rows"]) == rows
    assert all(p.suffix == ".parquet" for p in out.iterdir()), list(out.iterdir())


def send_copy(cluster: Cluster, run_id: str, flow: str) -> None:
    """Send the flow's original message again, as a broker redelivery would."""
    code = f"from worker.app import runs, send\nsend(runs().job({run_id!r}, {flow!r}))\n"
    subprocess.run([sys.executable, "-c", code], env=cluster.env, cwd=ROOT, check=True)


def test_duplicated_messages_never_run_a_flow_twice(make_cluster, tmp_path: Path) -> None:
    cluster = make_cluster()
    cluster.start_worker("w1")
    cluster.start_worker("w2")
    out = tmp_path / "out"
    result = cluster.cli(
        "enqueue", str(write_flows(tmp_path, "flows:\n" + slow("dup", out, 8000, 1000, 0.4)))
    )
    run_id, _ = parse_enqueue(result.stdout)
    wait_for(lambda: cluster.status(run_id)["dup"]["state"] == "running", 30, "running")
    send_copy(cluster, run_id, "dup")  # while it runs: the lease is held
    wait_for(lambda: cluster.status(run_id)["dup"]["state"] == "success", 60, "success")
    committed = sorted(p.stat().st_mtime_ns for p in out.iterdir())
    send_copy(cluster, run_id, "dup")  # after it finished
    wait_for(cluster.queue_drained, 30, "a worker to take (and drop) the copy")
    status = cluster.status(run_id)["dup"]
    assert status["starts"] == "1", status
    assert sorted(p.stat().st_mtime_ns for p in out.iterdir()) == committed
    assert count_and_sum(out) == (8000, 8000, sum(range(8000)))


def test_a_flow_that_keeps_killing_its_worker_gives_up(make_cluster, tmp_path: Path) -> None:
    cluster = make_cluster(HYGGE_LEASE_SECONDS="2", HYGGE_SWEEP_SECONDS="0.5")
    cluster.start_worker("w1")
    body = (
        "flows:\n  crashes:\n"
        f"    home: {{type: crash, counter: {tmp_path / 'attempts'}}}\n"
        f"    store: {{type: parquet, path: {tmp_path / 'out'}}}\n"
    )
    result = cluster.cli("enqueue", str(write_flows(tmp_path, body)), "--wait", timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "died 3 times" in result.stderr
    assert (tmp_path / "attempts").read_text() == "3"
    assert not (tmp_path / "out").exists()
    assert cluster.procs["w1"].poll() is None  # the worker itself survived


def test_sigterm_lets_the_running_flow_finish(make_cluster, tmp_path: Path) -> None:
    cluster = make_cluster()
    cluster.start_worker("w1", concurrency=1)
    out = tmp_path / "out"
    result = cluster.cli(
        "enqueue", str(write_flows(tmp_path, "flows:\n" + slow("warm", out, 6000, 1000, 0.5)))
    )
    run_id, _ = parse_enqueue(result.stdout)
    wait_for(lambda: cluster.status(run_id)["warm"]["state"] == "running", 30, "running")
    proc = cluster.procs["w1"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    assert cluster.status(run_id)["warm"]["state"] == "success"
    assert count_and_sum(out) == (6000, 6000, sum(range(6000)))


# -- bad input ----------------------------------------------------------------------------
def untouched(url: str) -> None:
    keys = [k.decode() for k in redis.Redis.from_url(url).keys("*")]
    assert keys == ["hygge-test:owner"], f"something was enqueued: {keys}"


def enqueue(db: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "enqueue",
        *args,
        env={"HYGGE_BROKER_URL": db, "HYGGE_PLUGINS": "tests.distributed_plugins", **env},
    )


SAMPLES = str(ROOT / "samples" / "flows.yml")


def test_broker_unreachable_names_the_url_without_password(db: str) -> None:
    result = enqueue(db, SAMPLES, HYGGE_BROKER_URL="redis://:hunter2@127.0.0.1:1/0")
    assert result.returncode == 1
    assert "redis://:***@127.0.0.1:1/0" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    # broker fine, result backend down: still nothing sent
    result = enqueue(db, SAMPLES, HYGGE_RESULT_BACKEND="redis://127.0.0.1:1/0")
    assert result.returncode == 1 and "127.0.0.1:1" in result.stderr
    untouched(db)


def test_invalid_file_enqueues_nothing(db: str, tmp_path: Path) -> None:
    body = (
        "flows:\n"
        f"  good:\n    home: {ROOT / 'samples/data/users.parquet'}\n    store: {tmp_path / 'a'}\n"
        f"  bad:\n    home: {{type: parqet, path: x.parquet}}\n    store: {tmp_path / 'b'}\n"
    )
    result = enqueue(db, str(write_flows(tmp_path, body)))
    assert result.returncode == 2  # flows.yml is wrong
    assert "flows.yml:6" in result.stderr and "parqet" in result.stderr
    assert "did you mean 'parquet'" in result.stderr
    assert "Traceback" not in result.stderr
    untouched(db)


def test_unknown_flow_enqueues_nothing(db: str) -> None:
    result = enqueue(db, SAMPLES, "--flow", "users_to_parquet", "--flow", "user_to_parquet")
    assert result.returncode == 2
    assert "no flow named 'user_to_parquet'" in result.stderr
    assert "did you mean 'users_to_parquet'" in result.stderr
    untouched(db)


def test_enqueue_check_connects_as_validate_does_and_sends_nothing_on_failure(
    db: str, tmp_path: Path
) -> None:
    (tmp_path / "in.csv").write_text("a\n1\n")
    body = (
        "flows:\n  down:\n    home: in.csv\n"
        "    store: {type: sql, connection: 'postgresql://u:pw4@127.0.0.1:1/db', table: t}\n"
    )
    flows = str(write_flows(tmp_path, body))
    result = enqueue(db, flows, "--check")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "flows.yml:2: flow 'down': cannot connect to postgresql" in result.stderr
    assert "pw4" not in result.stderr and "Traceback" not in result.stderr
    untouched(db)
    assert "does NOT connect to homes and stores" in run_cli("enqueue", "--help").stdout


def test_the_queue_carries_names_and_unresolved_variables_only(db: str, tmp_path: Path) -> None:
    body = (
        "flows:\n  secretive:\n"
        "    home: {type: slow, rows: 5, connection: '${HYGGE_TEST_SECRET_URL}'}\n"
        f"    store: {{type: parquet, path: {tmp_path / 'out'}}}\n"
        "  later:\n"
        "    home: {type: slow, rows: 5}\n"
        f"    store: {{type: parquet, path: {tmp_path / 'later'}}}\n"
        "    options: {depends_on: secretive}\n"
    )
    result = enqueue(db, str(write_flows(tmp_path, body)), HYGGE_TEST_SECRET_URL=SECRET_URL)
    assert result.returncode == 0, result.stderr
    run_id, tasks = parse_enqueue(result.stdout)
    messages = [json.loads(m) for m in redis.Redis.from_url(db).lrange("hygge", 0, -1)]
    assert len(messages) == 1  # `later` is sent only once `secretive` succeeded
    headers = messages[0]["headers"]
    assert headers["id"] == tasks["secretive"]
    assert headers["argsrepr"] == "('secretive',)"
    assert run_id in headers["kwargsrepr"]
    body_text = decoded_message(json.dumps(messages[0]))[0]
    assert "${HYGGE_TEST_SECRET_URL}" in body_text
    assert SECRET not in body_text


def test_a_worker_that_loses_its_lease_stops_and_commits_nothing(
    make_cluster, tmp_path: Path
) -> None:
    cluster = make_cluster()
    cluster.start_worker("w1")
    out = tmp_path / "out"
    flows = write_flows(tmp_path, "flows:\n" + slow("taken", out, 20_000, 1000, 0.3))
    run_id, _ = parse_enqueue(cluster.cli("enqueue", str(flows)).stdout)
    wait_for(lambda: int(cluster.status(run_id)["taken"].get("rows", 0)) > 0, 30, "progress")
    lock = cluster.redis.hget(f"hygge:run:{run_id}:flow:taken", "lock")
    assert cluster.redis.exists(lock)
    cluster.redis.set(lock, "someone-else", px=4000)  # as if the lease had expired and been taken
    final = wait_for(
        lambda: (s := cluster.status(run_id)["taken"])["state"] in ("success", "failed") and s,
        90,
        "the flow to be re-sent and finish",
    )
    assert final["state"] == "success", final
    assert final["generation"] == "2" and final["starts"] == "2"
    assert count_and_sum(out) == (20_000, 20_000, sum(range(20_000)))
    assert "lease" in cluster.log("w1") and "was lost" in cluster.log("w1")


def test_a_worker_killed_after_its_append_landed_appends_nothing_more(
    make_cluster, mysql_url: str, tmp_path: Path
) -> None:
    """The worker running an append flow into MariaDB dies after its publish committed but
    before the flow was recorded as done (held there: its DROP of the staging table waits
    while this test reads that table). The flow is sent again: it reads and stages again,
    finds the mark its first publish wrote, and appends nothing more."""
    from hygge.sql.state_table import STATE_TABLE, mark_key
    from tests.sqldb import Db, unique

    target = unique("once")
    db, reader = Db(mysql_url), Db(mysql_url)
    db.run(f"CREATE TABLE {target} (id bigint)")
    flows = write_flows(
        tmp_path,
        "flows:\n  big:\n"
        "    home: {type: slow, rows: 3000, batch_size: 100, delay: 0.1}\n"
        f"    store: {{type: sql, connection: '{mysql_url}', table: {target}, mode: append}}\n",
    )
    try:
        cluster = make_cluster(HYGGE_LEASE_SECONDS="4", HYGGE_SWEEP_SECONDS="1")
        cluster.start_worker("w1", concurrency=1)
        cluster.start_worker("w2", concurrency=1)
        result = cluster.cli("enqueue", str(flows))
        assert result.returncode == 0, result.stderr
        run_id, _ = parse_enqueue(result.stdout)

        def staging() -> str | None:
            prefix = f"_hygge_stage_{target}_"
            return next((t for t in db.staging_tables() if t.startswith(prefix)), None)

        staged = wait_for(staging, 120, "the staging table")
        reader.conn.autocommit(False)
        reader.conn.cursor().execute(f"SELECT count(*) FROM `{staged}`")  # holds it (MDL)
        wait_for(lambda: db.run(f"SELECT count(*) FROM {target}")[0][0] > 0, 300, "the publish")
        step = cluster.status(run_id)["big"]
        assert step.get("state") == "running", step  # held in its DROP of the staging table
        cluster.kill(step["worker"].split("@")[0])
        reader.conn.rollback()
        final = wait_for(
            lambda: (
                (s := cluster.status(run_id)["big"]).get("state") in ("success", "failed") and s
            ),
            300,
            "the flow to run again",
        )
        assert final["state"] == "success", final
        assert int(final["generation"]) == 2, final  # it did run again
        got = db.run(f"SELECT count(*), count(DISTINCT id), sum(id) FROM {target}")[0]
        assert tuple(int(v) for v in got) == (3000, 3000, sum(range(3000)))
        marks = db.run(f"SELECT flow FROM {STATE_TABLE} WHERE flow LIKE '{target}/%'")
        assert len(marks) == 1 and marks[0][0].startswith(mark_key(target, "")), marks
    finally:
        reader.close()
        db.run(f"DELETE FROM {STATE_TABLE} WHERE flow LIKE '{target}/%'")
        db.drop(target)
        db.close()
