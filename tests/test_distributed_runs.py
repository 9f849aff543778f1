"""`hygge enqueue` on real Redis, two real `hygge worker` processes and a real Flower."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from tests.checks import count_and_sum
from tests.conftest import ROOT
from tests.distributed_support import (
    SECRET,
    Cluster,
    EventLog,
    claim_db,
    event_log,
    everything_in,
    flush,
    parse_enqueue,
)
from tests.helpers import wait_for, write_flows

pytestmark = pytest.mark.slow


def with_password(url: str) -> str:
    """The test PostgreSQL URL with our secret as its password (trust auth ignores it)."""
    scheme, rest = url.split("://", 1)
    rest = rest.split("@", 1)[-1]
    return f"{scheme}://postgres:{SECRET}@{rest}"


@pytest.fixture(scope="module")
def cluster(
    redis_url: str, postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    url = claim_db(redis_url)
    c = Cluster(
        url,
        tmp_path_factory.mktemp("cluster"),
        {"HYGGE_TEST_PG_URL": with_password(postgres_url)},
    )
    try:
        c.start_flower()
        c.start_worker("w1")
        c.start_worker("w2")
        yield c
    finally:
        c.stop()
        flush(url)


@pytest.fixture(scope="module")
def events(cluster: Cluster) -> Iterator[EventLog]:
    with event_log(cluster.broker_url) as log:
        yield log


def slow_flow(name: str, out: Path, rows: int, batch: int, delay: float, extra: str = "") -> str:
    return (
        f"  {name}:\n"
        f"    home: {{type: slow, rows: {rows}, batch_size: {batch}, delay: {delay}}}\n"
        f"    store: {{type: parquet, path: {out / name}}}\n"
        + (f"    options: {extra}\n" if extra else "")
    )


def test_enqueue_samples_end_to_end(cluster: Cluster) -> None:
    result = cluster.cli("enqueue", str(ROOT / "samples" / "flows.yml"), "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    run_id, tasks = parse_enqueue(result.stdout)
    assert set(tasks) == {
        "users_to_parquet",
        "orders_to_parquet",
        "events_to_parquet",
        "active_users_to_csv",
    }
    assert "Flower: " in result.stdout
    lake = cluster.workdir / "lake"
    data = ROOT / "samples" / "data"
    checks = {
        "users": (f"read_parquet('{data}/users.parquet')", f"read_parquet('{lake}/users/*')"),
        "orders": (f"read_csv('{data}/orders.csv')", f"read_parquet('{lake}/orders/*')"),
        "events": (
            f"read_json('{data}/events.ndjson')",
            f"read_parquet('{lake}/events/*')",
        ),
        "users_csv": (
            f"(select user_id, name, city from read_parquet('{data}/users.parquet'))",
            f"read_csv('{lake}/users_csv/*.csv')",
        ),
    }
    con = duckdb.connect()
    for name, (source, output) in checks.items():
        n_source = con.execute(f"select count(*) from {source}").fetchone()[0]
        n_output = con.execute(f"select count(*) from {output}").fetchone()[0]
        assert n_source == n_output > 0, name
        diff = con.execute(
            f"select count(*) from ((select * from {source} except all select * from {output})"
            f" union all (select * from {output} except all select * from {source}))"
        ).fetchone()[0]
        assert diff == 0, f"{name}: {diff} rows differ"
    status = cluster.cli("status", run_id)
    assert status.returncode == 0, status.stderr
    assert "success" in status.stdout and "5,000" in status.stdout


def test_both_workers_receive_work(cluster: Cluster, tmp_path: Path) -> None:
    body = "flows:\n" + "".join(
        slow_flow(f"part{i}", tmp_path, rows=400, batch=100, delay=0.25) for i in range(8)
    )
    result = cluster.cli("enqueue", str(write_flows(tmp_path, body)), "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    run_id, _ = parse_enqueue(result.stdout)
    status = cluster.status(run_id)
    assert {s["worker"] for s in status.values()} == {"w1@test", "w2@test"}
    for i in range(8):
        assert count_and_sum(tmp_path / f"part{i}") == (400, 400, sum(range(400)))


def test_progress_is_visible_in_flower_while_a_flow_runs(cluster: Cluster, tmp_path: Path) -> None:
    body = "flows:\n" + slow_flow("slow", tmp_path, rows=30_000, batch=1000, delay=0.3)
    result = cluster.cli("enqueue", str(write_flows(tmp_path, body)))
    assert result.returncode == 0, result.stderr
    run_id, tasks = parse_enqueue(result.stdout)
    task_id = tasks["slow"]
    seen: list[str] = []

    def progress() -> bool:
        info = cluster.flower_task(task_id)
        if info.get("state") == "PROGRESS" and info.get("result") not in seen:
            seen.append(info["result"])
        return len(seen) >= 3

    wait_for(progress, 30, "three different PROGRESS results in Flower", every=0.2)
    assert all(" rows · " in s and "rows/s" in s for s in seen), seen
    assert cluster.flower_task(task_id)["args"] == "('slow',)"
    # hygge status reads structured progress while it runs
    mid = cluster.status(run_id)["slow"]
    assert mid["state"] == "running" and int(mid["rows"]) > 0
    wait_for(lambda: cluster.flower_task(task_id).get("state") == "SUCCESS", 60, "SUCCESS")
    assert "30,000 rows" in cluster.flower_task(task_id)["result"]
    assert count_and_sum(tmp_path / "slow") == (30_000, 30_000, sum(range(30_000)))


def test_transient_fault_heals_after_two_retries(
    cluster: Cluster, events: EventLog, tmp_path: Path
) -> None:
    body = (
        "flows:\n  flaky:\n"
        f"    home: {{type: flaky, rows: 250, fail_times: 2, counter: {tmp_path / 'reads'}}}\n"
        f"    store: {{type: parquet, path: {tmp_path / 'out'}}}\n"
        "    options: {retries: 3, retry_delay: 3}\n"
    )
    result = cluster.cli("enqueue", str(write_flows(tmp_path, body)))
    assert result.returncode == 0, result.stdout + result.stderr
    run_id, tasks = parse_enqueue(result.stdout)
    task_id = tasks["flaky"]
    seen: list[str] = []

    def watch_flower() -> bool:
        state = cluster.flower_task(task_id).get("state")
        if state and (not seen or seen[-1] != state):
            seen.append(state)
        return state in ("SUCCESS", "FAILURE")

    wait_for(watch_flower, 60, "the flow to end", every=0.05)
    assert "RETRY" in seen and seen[-1] == "SUCCESS", seen
    kinds = events.types(task_id)
    assert kinds.count("task-retried") == 2, kinds
    assert kinds.index("task-retried") < kinds.index("task-succeeded")
    assert cluster.flower_task(task_id)["retries"] == 2
    status = cluster.status(run_id)["flaky"]
    assert status["state"] == "success" and status["retries"] == "2"
    assert (tmp_path / "reads").read_text() == "3"
    assert count_and_sum(tmp_path / "out") == (250, 250, sum(range(250)))


def test_permanent_fault_fails_at_once(cluster: Cluster, events: EventLog, tmp_path: Path) -> None:
    body = (
        "flows:\n  broken:\n"
        f"    home: {{type: parquet, path: {tmp_path / 'missing.parquet'}}}\n"
        f"    store: {{type: parquet, path: {tmp_path / 'out'}}}\n"
        "    options: {retries: 3, retry_delay: 0.1}\n"
    )
    result = cluster.cli("enqueue", str(write_flows(tmp_path, body)), "--wait")
    assert result.returncode == 1, result.stdout + result.stderr
    run_id, tasks = parse_enqueue(result.stdout)
    assert "missing.parquet" in result.stderr
    task_id = tasks["broken"]
    info = wait_for(
        lambda: (i := cluster.flower_task(task_id)).get("state") == "FAILURE" and i, 10, "FAILURE"
    )
    assert "missing.parquet" in info["exception"] and "Traceback" not in info["exception"]
    assert info["retries"] == 0
    assert "task-retried" not in events.types(task_id)
    assert cluster.status(run_id)["broken"]["starts"] == "1"
    assert not (tmp_path / "out").exists()


def test_depends_on_order_and_failure_stops_dependants(cluster: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "out"
    body = (
        "flows:\n" + slow_flow("first", out, rows=3000, batch=500, delay=0.2) + "  second:\n"
        f"    home: {{type: parquet, path: {out / 'first'}}}\n"
        f"    store: {out / 'second'}\n"
        "    options: {depends_on: first}\n"
        "  third:\n"
        f"    home: {{type: parquet, path: {out / 'second'}}}\n"
        f"    store: {out / 'third'}\n"
        "    options: {depends_on: [second]}\n"
        "  broken:\n"
        f"    home: {tmp_path / 'nothing.parquet'}\n"
        f"    store: {out / 'broken'}\n"
        "  after_broken:\n"
        f"    home: {{type: parquet, path: {out / 'first'}}}\n"
        f"    store: {out / 'after_broken'}\n"
        "    options: {depends_on: [first, broken]}\n"
        "  after_after:\n"
        f"    home: {{type: parquet, path: {out / 'first'}}}\n"
        f"    store: {out / 'after_after'}\n"
        "    options: {depends_on: after_broken}\n"
    )
    result = cluster.cli("enqueue", str(write_flows(tmp_path, body)), "--wait")
    assert result.returncode == 1, result.stdout + result.stderr
    run_id, _ = parse_enqueue(result.stdout)
    s = cluster.status(run_id)
    assert [s[f]["state"] for f in ("first", "second", "third")] == ["success"] * 3
    assert float(s["second"]["started"]) >= float(s["first"]["finished"])
    assert float(s["third"]["started"]) >= float(s["second"]["finished"])
    assert s["broken"]["state"] == "failed"
    assert s["after_broken"]["state"] == "skipped" and "broken" in s["after_broken"]["message"]
    assert s["after_after"]["state"] == "skipped"
    assert "after_broken" in result.stderr and "skipped" in result.stderr
    assert count_and_sum(out / "third") == (3000, 3000, sum(range(3000)))
    assert not (out / "after_broken").exists()


def test_no_secret_in_queue_results_or_flower(cluster: Cluster, tmp_path: Path) -> None:
    body = (
        "flows:\n"
        "  with_secret:\n"
        "    home: {type: slow, rows: 500, connection: '${HYGGE_TEST_SECRET_URL}'}\n"
        f"    store: {{type: parquet, path: {tmp_path / 'ok'}}}\n"
        "  secret_fails:\n"
        "    home: {type: slow, connection: '${HYGGE_TEST_SECRET_URL}', fail_loudly: true}\n"
        f"    store: {{type: parquet, path: {tmp_path / 'bad'}}}\n"
    )
    result = cluster.cli("enqueue", str(write_flows(tmp_path, body)), "--wait")
    assert result.returncode == 1, result.stdout + result.stderr
    run_id, tasks = parse_enqueue(result.stdout)
    status = cluster.status(run_id)
    assert status["with_secret"]["state"] == "success"
    assert "postgresql://app:***@db.internal" in status["secret_fails"]["message"]
    wait_for(
        lambda: all(
            cluster.flower_task(t).get("state") in ("SUCCESS", "FAILURE") for t in tasks.values()
        ),
        30,
        "Flower to show every task ended",
    )
    flower = str(cluster.flower("/api/tasks")) + "".join(
        str(cluster.flower_task(t)) for t in tasks.values()
    )
    assert "***@db.internal" in flower  # the failure is there, masked
    stored = everything_in(cluster.redis)
    assert "${HYGGE_TEST_SECRET_URL}" in stored  # the message carried the variable, unresolved
    logs = "".join(cluster.log(n, tail=10**9) for n in ("w1", "w2", "flower"))
    for where, text in (
        ("Redis", stored),
        ("Flower", flower),
        ("CLI", result.stdout + result.stderr),
        ("worker logs", logs),
    ):
        assert SECRET not in text, f"the password leaked into {where}"


def test_worker_missing_a_variable_fails_naming_it(cluster: Cluster, tmp_path: Path) -> None:
    body = (
        "flows:\n  needs_var:\n"
        "    home: {type: slow, rows: 10}\n"
        "    store: {type: parquet, path: '${HYGGE_TEST_MISSING_DIR}/out'}\n"
    )
    result = cluster.cli("enqueue", str(write_flows(tmp_path, body)), "--wait")
    assert result.returncode == 1, result.stdout + result.stderr
    run_id, tasks = parse_enqueue(result.stdout)
    message = cluster.status(run_id)["needs_var"]["message"]
    assert "HYGGE_TEST_MISSING_DIR" in message and "not set" in message
    assert "HYGGE_TEST_MISSING_DIR" in result.stderr
    info = wait_for(
        lambda: (i := cluster.flower_task(tasks["needs_var"])).get("state") == "FAILURE" and i,
        10,
        "FAILURE",
    )
    assert "HYGGE_TEST_MISSING_DIR" in info["exception"]


def test_incremental_flow_on_workers_moves_only_new_files(cluster: Cluster, tmp_path: Path) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()

    def drop(name: str, start: int, rows: int) -> None:
        duckdb.connect().execute(
            f"copy (select range as id from range({start}, {start + rows})) "
            f"to '{incoming / name}' (format parquet)"
        )

    body = (
        "flows:\n  drops:\n"
        "    home: {type: parquet, path: incoming}\n"
        "    store: {type: parquet, path: lake/drops}\n"
        "    options: {incremental: true}\n"
    )
    flows = write_flows(tmp_path, body)
    drop("a.parquet", 0, 1000)
    assert cluster.cli("enqueue", str(flows), "--wait").returncode == 0
    drop("b.parquet", 1000, 500)
    second = cluster.cli("enqueue", str(flows), "--wait")
    assert second.returncode == 0, second.stderr
    run_id, _ = parse_enqueue(second.stdout)
    assert cluster.status(run_id)["drops"]["rows"] == "500"
    assert count_and_sum(tmp_path / "lake/drops") == (1500, 1500, sum(range(1500)))
    again = cluster.cli("enqueue", str(flows), "--full-refresh", "--wait")
    assert again.returncode == 0, again.stderr
    run_id, _ = parse_enqueue(again.stdout)
    assert cluster.status(run_id)["drops"]["rows"] == "1500"
    assert count_and_sum(tmp_path / "lake/drops") == (1500, 1500, sum(range(1500)))


def test_overlapping_runs_never_write_one_destination_at_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    body = (
        "flows:\n  appender:\n"
        "    home: {type: slow, rows: 2000, batch_size: 250, delay: 0.25}\n"
        f"    store: {{type: parquet, path: {tmp_path / 'out'}, mode: append}}\n"
    )
    flows = write_flows(tmp_path, body)
    first, _ = parse_enqueue(cluster.cli("enqueue", str(flows)).stdout)
    second = cluster.cli("enqueue", str(flows), "--wait")
    assert second.returncode == 0, second.stdout + second.stderr
    wait_for(lambda: cluster.status(first)["appender"]["state"] == "success", 60, "first run")
    a = cluster.status(first)["appender"]
    b = cluster.status(parse_enqueue(second.stdout)[0])["appender"]
    earlier, later = sorted((a, b), key=lambda s: float(s["started"]))
    assert float(later["started"]) >= float(earlier["finished"])  # one after the other
    with duckdb.connect() as con:
        count, distinct, total = con.execute(
            f"select count(*), count(distinct id), sum(id) from '{tmp_path / 'out'}/*.parquet'"
        ).fetchone()
    assert (count, distinct, total) == (4000, 2000, 2 * sum(range(2000)))


def test_postgres_through_workers_with_a_secret_connection(
    cluster: Cluster, postgres_url: str, tmp_path: Path
) -> None:
    from tests.sqldb import Db, unique

    db = Db(postgres_url)
    source, target = unique("src"), unique("dst")
    db.run(
        f"CREATE TABLE {source} AS SELECT g AS id, 'name ' || g AS name "
        "FROM generate_series(1, 5000) g"
    )
    try:
        body = (
            "flows:\n"
            "  pg_to_lake:\n"
            f"    home: {{type: sql, connection: '${{HYGGE_TEST_PG_URL}}', table: {source}}}\n"
            f"    store: {{type: parquet, path: {tmp_path / 'lake'}}}\n"
            "  lake_to_pg:\n"
            f"    home: {{type: parquet, path: {tmp_path / 'lake'}}}\n"
            f"    store: {{type: sql, connection: '${{HYGGE_TEST_PG_URL}}', table: {target}}}\n"
            "    options: {depends_on: pg_to_lake}\n"
        )
        result = cluster.cli("enqueue", str(write_flows(tmp_path, body)), "--wait")
        assert result.returncode == 0, result.stdout + result.stderr
        expected = db.run(
            f"SELECT count(*), sum(id), md5(string_agg(name, ',' ORDER BY id)) FROM {source}"
        )
        got = db.run(
            f"SELECT count(*), sum(id), md5(string_agg(name, ',' ORDER BY id)) FROM {target}"
        )
        assert got == expected and expected[0][0] == 5000
        _, tasks = parse_enqueue(result.stdout)
        flower = "".join(str(cluster.flower_task(t)) for t in tasks.values())
        logs = "".join(cluster.log(n, tail=10**9) for n in ("w1", "w2", "flower"))
        for where, text in (
            ("Redis", everything_in(cluster.redis)),
            ("Flower", flower),
            ("worker logs", logs),
        ):
            assert SECRET not in text, f"the password leaked into {where}"
    finally:
        db.run(f"DROP TABLE IF EXISTS {source}")
        db.run(f"DROP TABLE IF EXISTS {target}")


def missing_table_flow(tmp_path: Path, name: str) -> Path:
    """A flow whose SQL home names a table that does not exist: an ordinary permanent fault."""
    from tests.sqldb import unique

    return write_flows(
        tmp_path,
        "flows:\n"
        f"  {name}:\n"
        f"    home: {{type: sql, connection: '${{HYGGE_TEST_PG_URL}}', table: {unique('gone')}}}\n"
        f"    store: {{type: parquet, path: {tmp_path / 'out'}}}\n",
    )


def test_errors_on_workers_name_the_flow_not_home(cluster: Cluster, tmp_path: Path) -> None:
    result = cluster.cli("enqueue", str(missing_table_flow(tmp_path, "orders_in")), "--wait")
    assert result.returncode == 1, result.stdout + result.stderr
    run_id, _ = parse_enqueue(result.stdout)
    message = cluster.status(run_id)["orders_in"]["message"]
    assert "home 'orders_in'" in message and "not found" in message, message
    assert "home 'home'" not in result.stderr


def test_a_permanent_failure_is_one_clear_line_in_the_worker_log(
    cluster: Cluster, tmp_path: Path
) -> None:
    before = {n: len(cluster.log(n, tail=10**9)) for n in ("w1", "w2")}
    result = cluster.cli("enqueue", str(missing_table_flow(tmp_path, "gone_table")), "--wait")
    assert result.returncode == 1, result.stdout + result.stderr
    new = "".join(cluster.log(n, tail=10**9)[before[n] :] for n in ("w1", "w2"))
    lines = [line for line in new.splitlines() if "flow gone_table failed:" in line]
    assert len(lines) == 1, new
    assert "home 'gone_table'" in lines[0] and "not found" in lines[0] and "hint:" in lines[0]
    assert "Traceback" not in new, new
