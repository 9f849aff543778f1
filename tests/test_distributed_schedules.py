"""Schedules (`schedule:` cron / `every:`) and `hygge scheduler`, against real processes: a
real scheduler, real Celery workers, Redis. What is checked is what an operator relies on:
a scheduled flow runs again and again, never twice at once (an overlapping slot is recorded
as skipped, with the reason); a restarted scheduler sends each slot at most once and a missed
stretch once; two schedulers never both send."""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.checks import fingerprint
from tests.conftest import run_cli
from tests.distributed_support import Cluster, db, make_cluster, parse_enqueue  # noqa: F401
from tests.helpers import parquet_file, wait_for, write_flows

pytestmark = pytest.mark.slow


# -- validation (no services) -----------------------------------------------------------------


def _project(tmp_path: Path, options: str, extra: str = "") -> Path:
    parquet_file(tmp_path, "in", {"id": [1, 2, 3]})
    return write_flows(
        tmp_path,
        f"""flows:
  orders:
    home: in.parquet
    store: out/orders
    options:
{options}
{extra}""",
    )


@pytest.mark.parametrize(
    ("options", "line", "words"),
    [
        ('      schedule: "*/15 * * *"', 6, ["not a cron expression", 'schedule: "*/15 * * * *"']),
        ('      schedule: "61 * * * *"', 6, ["not a cron expression", "every: 10m"]),
        ("      every: ten minutes", 6, ["not an interval", "every: 10m"]),
        ("      every: 0s", 6, ["at least 1s"]),
        ('      schedule: "CRON_TZ=Mars/Base 0 2 * * *"', 6, ["unknown time zone 'Mars/Base'"]),
        ('      every: 1h\n      schedule: "0 * * * *"', 7, ["either `schedule:`", "not both"]),
    ],
)
def test_a_bad_schedule_is_refused_with_its_line_and_an_example(
    tmp_path: Path, options: str, line: int, words: list[str]
) -> None:
    flows = _project(tmp_path, options)
    done = run_cli("validate", str(flows))
    assert done.returncode == 2  # flows.yml is wrong
    assert f"flows.yml:{line}:" in done.stderr, done.stderr
    assert "flow 'orders'" in done.stderr
    for word in words:
        assert word in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_schedule_on_a_flow_that_depends_on_another_is_refused(tmp_path: Path) -> None:
    flows = _project(
        tmp_path,
        "      every: 10m",
        """  report:
    home: out/orders
    store: out/report
    options:
      depends_on: orders
      schedule: "0 6 * * *"
""",
    )
    done = run_cli("validate", str(flows))
    assert done.returncode == 2
    assert "flows.yml:12:" in done.stderr, done.stderr
    assert "cannot have its own schedule" in done.stderr
    assert "put the schedule on the first flow of the chain" in done.stderr


def test_validate_prints_each_scheduled_flows_next_run(tmp_path: Path) -> None:
    flows = _project(tmp_path, '      schedule: "*/15 * * * *"')
    done = run_cli("validate", str(flows))
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.strip().startswith("orders:"))
    assert "cron '*/15 * * * *' (UTC), next run " in line
    minute = int(line.split("next run ")[1].split()[1].split(":")[1])
    assert minute % 15 == 0


def test_the_scheduler_without_redis_says_so_without_the_password(tmp_path: Path) -> None:
    flows = _project(tmp_path, "      every: 10m")
    done = run_cli(
        "scheduler", str(flows), env={"HYGGE_BROKER_URL": "redis://:Pa55word@127.0.0.1:1/0"}
    )
    assert done.returncode == 1
    assert "cannot reach the result backend at redis://:***@127.0.0.1:1/0" in done.stderr
    assert "Pa55word" not in done.stderr and "Traceback" not in done.stderr


def test_schedule_slots() -> None:
    from hygge.schedule import Schedule, parse_every

    assert parse_every("1h30m") == 5400
    assert parse_every("90s") == 90
    every = Schedule(interval=600)
    assert every.next_after(1_000_000) == 1_000_200  # slots counted from the epoch
    assert every.next_after(1_000_200) == 1_000_800  # strictly after
    cron = Schedule(cron="@hourly")
    assert cron.next_after(3600 * 5 + 1) == 3600 * 6
    assert Schedule(cron="*/15 * * * *").next_after(900) == 1800
    # 02:00 in Copenhagen: 01:00 UTC in winter, 00:00 UTC in summer (the DST switch is kept)
    nightly = Schedule(cron="CRON_TZ=Europe/Copenhagen 0 2 * * *")
    winter = datetime(2026, 1, 10, 12, tzinfo=UTC).timestamp()
    summer = datetime(2026, 7, 10, 12, tzinfo=UTC).timestamp()
    assert nightly.next_after(winter) == datetime(2026, 1, 11, 1, tzinfo=UTC).timestamp()
    assert nightly.next_after(summer) == datetime(2026, 7, 11, 0, tzinfo=UTC).timestamp()
    assert nightly.describe() == "cron '0 2 * * *' (Europe/Copenhagen)"


def test_a_definition_with_entities_is_scheduled_once_with_its_dependants(
    tmp_path: Path,
) -> None:
    from worker.scheduler import scheduled_flows

    (tmp_path / "in").mkdir()
    for name in ("orders", "users"):
        parquet_file(tmp_path / "in", name, {"id": [1, 2]})
    flows = write_flows(
        tmp_path,
        """flows:
  crm:
    home: "in/{entity}.parquet"
    store: {type: parquet, path: "lake/crm/{entity}"}
    options: {every: 1h}
  mart:
    home: {type: parquet, path: "lake/crm/{entity}"}
    store: {type: parquet, path: "mart/{entity}"}
    depends_on: [crm]
  other:
    home: in/orders.parquet
    store: lake/other
""",
    )
    found = scheduled_flows(flows)
    assert list(found) == ["crm"]
    crm = found["crm"]
    # undiscovered (a worker discovers them at each slot): the definitions stand for their
    # entities, the one depending on `crm` sent with it
    assert crm.select == ("crm", "mart")
    assert crm.schedule.interval == 3600
    (tmp_path / "in").rename(tmp_path / "gone")  # the scheduler never looks at the entities
    assert scheduled_flows(flows)["crm"].select == ("crm", "mart")


def test_the_stack_runs_one_scheduler() -> None:
    import yaml

    from tests.conftest import ROOT

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    scheduler = compose["services"]["scheduler"]
    assert scheduler["command"][:2] == ["hygge", "scheduler"]  # exec form: PID 1 gets SIGTERM
    assert "container_name" not in scheduler and "ports" not in scheduler  # a standby scales
    base = ROOT / "deploy" / "kubernetes" / "base"
    deployment = yaml.safe_load((base / "scheduler.yaml").read_text())
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"][:2] == [
        "hygge",
        "scheduler",
    ]
    assert (
        "scheduler.yaml" in yaml.safe_load((base / "kustomization.yaml").read_text())["resources"]
    )


# -- the run history of `hygge run` (local) -------------------------------------------------


def test_hygge_run_keeps_a_local_history_bounded_by_count(tmp_path: Path) -> None:
    parquet_file(tmp_path, "in", {"id": list(range(7))})
    flows = write_flows(
        tmp_path,
        """flows:
  good:
    home: in.parquet
    store: out/good
  bad:
    home: missing.parquet
    store: out/bad
""",
    )
    env = {"HYGGE_HISTORY": str(tmp_path / "h.sqlite"), "HYGGE_HISTORY_KEEP_RUNS": "2"}
    for _ in range(3):
        run_cli("run", str(flows), env=env)
    listed = run_cli("runs", "--json", "--local", env=env)
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert len(runs) == 2  # the oldest of three was dropped
    assert runs[0]["started"] >= runs[1]["started"]
    assert {(r["state"], r["ok"], r["failed"], r["rows"]) for r in runs} == {("failed", 1, 1, 7)}
    one = json.loads(run_cli("runs", runs[0]["run_id"], "--json", env=env).stdout)
    by_flow = {f["flow"]: f for f in one["flows"]}
    assert by_flow["good"]["state"] == "success" and by_flow["good"]["rows"] == 7
    assert by_flow["bad"]["state"] == "failed" and by_flow["bad"]["error"]
    assert fingerprint(tmp_path / "out" / "good")[0] == 7
    assert "input not found" in by_flow["bad"]["error"]
    with_bad = json.loads(run_cli("runs", "--json", "--flow", "bad", env=env).stdout)
    assert len(with_bad) == 2
    none = json.loads(run_cli("runs", "--json", "--state", "success", env=env).stdout)
    assert none == []


# -- the scheduler, with real workers -----------------------------------------------------------


def _slow_flow(tmp_path: Path, every: str, delay: float, rows: int = 300) -> Path:
    return write_flows(
        tmp_path,
        f"""flows:
  ticker:
    home: {{type: slow, rows: {rows}, batch_size: 100, delay: {delay}}}
    store: {{type: parquet, path: {tmp_path / "lake" / "ticker"}}}
    options: {{every: {every}, retries: 0}}
""",
    )


def _runs(cluster: Cluster) -> list[dict[str, Any]]:
    """Every run the scheduler made, with its slot and the ticker flow's record, by slot."""
    out = []
    for run_id in cluster.redis.zrange("hygge:runs:history", 0, -1):
        found = cluster.redis.hgetall(b"hygge:run:" + run_id)
        run = {k.decode(): v.decode() for k, v in found.items()}
        flow = {
            k.decode(): v.decode()
            for k, v in cluster.redis.hgetall(b"hygge:run:" + run_id + b":flow:ticker").items()
        }
        out.append({"run_id": run_id.decode(), **run, "ticker": flow})
    return sorted(out, key=lambda r: float(r.get("slot", 0)))


def _ended(cluster: Cluster, state: str = "success") -> list[dict[str, Any]]:
    return [r for r in _runs(cluster) if r["ticker"].get("state") == state]


def _stop(cluster: Cluster, name: str, sig: int = signal.SIGTERM) -> None:
    proc = cluster.procs[name]
    os.killpg(proc.pid, sig)
    proc.wait(60)


def _assert_each_slot_once(runs: list[dict[str, Any]]) -> None:
    slots = [r["slot"] for r in runs]
    assert len(slots) == len(set(slots)), f"a slot was sent twice: {slots}"
    assert all(r.get("trigger") == "schedule" for r in runs)


def _assert_never_two_at_once(runs: list[dict[str, Any]]) -> None:
    spans = sorted(
        (float(r["ticker"]["started"]), float(r["ticker"]["finished"]))
        for r in runs
        if r["ticker"].get("started") and r["ticker"].get("finished")
    )
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, f"two runs of the flow overlapped: {spans}"


def test_a_scheduled_flow_runs_again_and_again_never_twice_at_once(
    make_cluster: Any, tmp_path: Path
) -> None:
    cluster: Cluster = make_cluster()
    cluster.start_worker("w1")
    cluster.start_worker("w2")
    # Each run takes ~3 s (3 batches, 1 s apart); one is due every 2 s: some slots find the
    # previous run still going and must be skipped, not sent.
    flows = _slow_flow(tmp_path, "2s", 1.0)
    cluster.start_scheduler("scheduler", flows)
    wait_for(lambda: len(_ended(cluster)) >= 3, 300, "three scheduled runs to succeed")
    wait_for(lambda: _ended(cluster, "skipped"), 300, "a slot skipped while a run was going")
    _stop(cluster, "scheduler")
    wait_for(lambda: all(r["ticker"].get("finished") for r in _runs(cluster)), 300, "runs to end")
    runs = _runs(cluster)
    _assert_each_slot_once(runs)
    _assert_never_two_at_once(runs)
    skipped = _ended(cluster, "skipped")
    assert "was still going at its scheduled time" in skipped[0]["ticker"]["message"]
    assert not [r for r in runs if r["ticker"].get("state") == "failed"]
    assert fingerprint(tmp_path / "lake" / "ticker")[0] == 300
    # what `hygge runs` says about them, newest first
    listed = json.loads(cluster.cli("runs", "--json", "--flow", "ticker", "-n", "100").stdout)
    by_id = {r["run_id"]: r for r in listed}
    for run in runs:
        shown = by_id[run["run_id"]]
        assert shown["runner"] == "distributed" and shown["trigger"] == "schedule"
        assert shown["state"] == run["ticker"]["state"]
        assert shown["rows"] == (300 if shown["state"] == "success" else 0)
    assert [r["started"] for r in listed] == sorted((r["started"] for r in listed), reverse=True)
    assert "scheduler is active" in cluster.log("scheduler")


def test_a_restarted_scheduler_sends_missed_slots_once_and_none_twice(
    make_cluster: Any, tmp_path: Path
) -> None:
    cluster: Cluster = make_cluster()
    cluster.start_worker("w1")
    flows = _slow_flow(tmp_path, "2s", 0.0)
    cluster.start_scheduler("first", flows)
    wait_for(lambda: len(_ended(cluster)) >= 2, 300, "two scheduled runs")
    _stop(cluster, "first")  # SIGTERM: gives its lease back
    stopped = time.time()
    before = len(_runs(cluster))
    wait_for(lambda: time.time() > stopped + 7, 30, "three slots to pass with no scheduler")
    cluster.start_scheduler("second", flows)
    restarted = time.time()
    wait_for(lambda: len(_ended(cluster)) >= before + 2, 300, "two runs after the restart")
    _stop(cluster, "second")
    runs = _runs(cluster)
    _assert_each_slot_once(runs)
    # the slots missed while no scheduler ran (three or more) went out once, on restart
    missed = [r for r in runs if float(r["created"]) >= restarted and float(r["slot"]) < restarted]
    assert len(missed) == 1, f"the missed stretch was sent {len(missed)} times: {runs}"
    assert float(missed[0]["slot"]) < restarted - 4
    # a SIGKILLed scheduler (no clean release) is replaced once its lease lapses
    cluster.start_scheduler("third", flows, HYGGE_SCHEDULER_LEASE_SECONDS="3")
    count = len(_runs(cluster))
    wait_for(lambda: len(_runs(cluster)) > count, 300, "a run from the third scheduler")
    _stop(cluster, "third", signal.SIGKILL)
    cluster.start_scheduler("fourth", flows, HYGGE_SCHEDULER_LEASE_SECONDS="3")
    count = len(_runs(cluster))
    wait_for(lambda: len(_runs(cluster)) > count + 1, 300, "runs from the fourth scheduler")
    _stop(cluster, "fourth")
    _assert_each_slot_once(_runs(cluster))


def test_two_schedulers_never_both_send(make_cluster: Any, tmp_path: Path) -> None:
    cluster: Cluster = make_cluster()
    cluster.start_worker("w1")
    flows = _slow_flow(tmp_path, "2s", 0.0)
    lease = {"HYGGE_SCHEDULER_LEASE_SECONDS": "4"}
    cluster.start_scheduler("a", flows, **lease)
    cluster.start_scheduler("b", flows, **lease)
    wait_for(lambda: len(_ended(cluster)) >= 4, 300, "four scheduled runs")
    logs = cluster.log("a") + cluster.log("b")
    assert "standing by: scheduler" in logs
    active = "a" if "scheduler is active" in cluster.log("a") else "b"
    other = "b" if active == "a" else "a"
    _stop(cluster, active, signal.SIGKILL)  # the standby takes over once the lease lapses
    count = len(_ended(cluster))
    wait_for(lambda: len(_ended(cluster)) >= count + 2, 300, "runs after the takeover")
    assert "scheduler is active" in cluster.log(other)
    _stop(cluster, other)
    runs = _runs(cluster)
    _assert_each_slot_once(runs)
    _assert_never_two_at_once(runs)


def test_a_claim_left_by_a_killed_scheduler_is_sent_once_by_the_next(
    make_cluster: Any, tmp_path: Path
) -> None:
    """A scheduler killed between claiming a slot and sending it leaves the claim in Redis (as
    written here): the next active scheduler sends that very run, once."""
    cluster: Cluster = make_cluster()
    cluster.start_worker("w1")
    flows = _slow_flow(tmp_path, "1h", 0.0, rows=40)
    slot = time.time() - 60
    cluster.redis.hset(
        "hygge:scheduler:flows:flow:ticker",
        mapping={
            "expression": "every 3600s",
            "next": repr(slot + 3600),
            "pending": "claimed0001",
            "pending_at": repr(slot),
            "slot": repr(slot),
        },
    )
    cluster.start_scheduler("second", flows, HYGGE_SCHEDULER_LEASE_SECONDS="3")
    wait_for(lambda: _ended(cluster), 300, "the claimed run to be sent and to end")
    _stop(cluster, "second")
    cluster.start_scheduler("third", flows, HYGGE_SCHEDULER_LEASE_SECONDS="3")
    wait_for(lambda: "this scheduler is active" in cluster.log("third"), 120, "a third scheduler")
    _stop(cluster, "third")
    runs = _runs(cluster)
    assert [r["run_id"] for r in runs] == ["claimed0001"]
    assert runs[0]["ticker"]["state"] == "success" and runs[0]["ticker"]["rows"] == "40"
    assert float(runs[0]["slot"]) == slot
    assert "was claimed but never sent; sending it" in cluster.log("second")
    assert not cluster.redis.hget("hygge:scheduler:flows:flow:ticker", "pending")


def test_a_scheduled_flow_is_sent_with_the_flows_that_depend_on_it(
    make_cluster: Any, tmp_path: Path
) -> None:
    cluster: Cluster = make_cluster()
    cluster.start_worker("w1")
    flows = write_flows(
        tmp_path,
        f"""flows:
  ticker:
    home: {{type: slow, rows: 50, batch_size: 10}}
    store: {{type: parquet, path: {tmp_path / "lake" / "ticker"}}}
    options: {{every: 2s}}
  report:
    home: {{type: parquet, path: {tmp_path / "lake" / "ticker"}}}
    store: {{type: parquet, path: {tmp_path / "lake" / "report"}}}
    options: {{depends_on: ticker}}
""",
    )
    cluster.start_scheduler("scheduler", flows)

    def chained() -> list[dict[str, Any]]:
        return [r for r in _ended(cluster) if r["flows"] == '["ticker", "report"]']

    wait_for(lambda: len(chained()) >= 2, 300, "two scheduled runs of the chain")
    _stop(cluster, "scheduler")
    for run in chained()[:2]:
        report = cluster.status(run["run_id"])["report"]
        assert report["state"] == "success", report
        assert float(report["started"]) >= float(run["ticker"]["finished"])  # after, as always
    assert fingerprint(tmp_path / "lake" / "report")[0] == 50


def test_hygge_runs_lists_embedded_and_distributed_runs(make_cluster: Any, tmp_path: Path) -> None:
    cluster: Cluster = make_cluster()
    cluster.start_worker("w1")
    parquet_file(tmp_path, "in", {"id": list(range(5))})
    flows = write_flows(
        tmp_path,
        f"""flows:
  fine:
    home: {{type: slow, rows: 250, batch_size: 100}}
    store: {{type: parquet, path: {tmp_path / "lake" / "fine"}}}
  broken:
    home: {{type: slow, rows: 10, connection: "${{HYGGE_TEST_SECRET_URL}}", fail_loudly: true}}
    store: {{type: parquet, path: {tmp_path / "lake" / "broken"}}}
    options: {{retries: 0}}
  after:
    home: {{type: slow, rows: 10}}
    store: {{type: parquet, path: {tmp_path / "lake" / "after"}}}
    options: {{depends_on: broken}}
""",
    )
    env = {"HYGGE_HISTORY": str(tmp_path / "history.sqlite")}
    embedded = cluster.cli("run", str(flows), "-f", "fine", **env)
    assert embedded.returncode == 0, embedded.stderr
    sent = cluster.cli("enqueue", str(flows), "--wait", **env)
    assert sent.returncode == 1
    run_id = parse_enqueue(sent.stdout)[0]
    listed = json.loads(cluster.cli("runs", "--json", **env).stdout)
    assert [r["runner"] for r in listed] == ["distributed", "embedded"]
    dist, emb = listed
    assert (emb["state"], emb["ok"], emb["failed"], emb["skipped"], emb["rows"]) == (
        "success",
        1,
        0,
        0,
        250,
    )
    assert (dist["run_id"], dist["state"], dist["ok"], dist["failed"], dist["skipped"]) == (
        run_id,
        "failed",
        1,
        1,
        1,
    )
    assert dist["rows"] == 250
    one = json.loads(cluster.cli("runs", run_id, "--json", **env).stdout)
    flows_by_name = {f["flow"]: f for f in one["flows"]}
    assert flows_by_name["fine"]["rows"] == 250 and flows_by_name["fine"]["state"] == "success"
    assert "password authentication failed" in flows_by_name["broken"]["error"]
    assert "s3cr3t" not in json.dumps(one)  # secrets never reach the history
    assert "depends on broken" in flows_by_name["after"]["error"]
    failed = json.loads(cluster.cli("runs", "--json", "--state", "failed", **env).stdout)
    assert [r["run_id"] for r in failed] == [run_id]
    table = cluster.cli("runs", run_id, **env)
    assert "broken" in table.stdout and "failed" in table.stdout
    # the local history kept the distributed run too (`--wait` followed it to its end)
    local = json.loads(cluster.cli("runs", "--json", "--local", **env).stdout)
    assert {r["run_id"] for r in local} >= {run_id, emb["run_id"]}
    assert fingerprint(tmp_path / "lake" / "fine")[0] == 250


def test_distributed_history_is_bounded_by_count(make_cluster: Any, tmp_path: Path) -> None:
    cluster: Cluster = make_cluster(HYGGE_HISTORY_KEEP_RUNS="2", HYGGE_HISTORY="off")
    cluster.start_worker("w1")
    flows = _slow_flow(tmp_path, "1h", 0.0, rows=20)
    ids = []
    for _ in range(3):
        sent = cluster.cli("enqueue", str(flows), "--wait")
        assert sent.returncode == 0, sent.stderr
        ids.append(
            next(x.split(":")[1].strip() for x in sent.stdout.splitlines() if "run id:" in x)
        )
    kept = [i.decode() for i in cluster.redis.zrange("hygge:runs:history", 0, -1)]
    assert kept == ids[1:]  # the oldest run went, index and records alike
    assert not cluster.redis.exists(f"hygge:run:{ids[0]}", f"hygge:run:{ids[0]}:flow:ticker")
    listed = json.loads(cluster.cli("runs", "--json").stdout)
    assert [r["run_id"] for r in listed] == ids[:0:-1]
    assert all(r["state"] == "success" and r["rows"] == 20 for r in listed)
    gone = cluster.cli("runs", ids[0])
    assert gone.returncode == 1 and f"no run with id '{ids[0]}'" in gone.stderr


def test_the_history_forgets_runs_older_than_its_days(db: str, tmp_path: Path) -> None:
    import redis

    from hygge.history import FlowRecord, HistorySettings, LocalHistory, RunRecord
    from worker import history

    local = LocalHistory(tmp_path / "h.sqlite", keep_runs=100, keep_days=30)
    day = 86400.0
    now = time.time()
    for run_id, age in (("old", 40 * day), ("recent", 2 * day)):
        flows = (FlowRecord("f", "success", rows=5, seconds=1.0),)
        local.save(RunRecord(run_id, "embedded", now - age, 1.0, flows, "flows.yml"))
    assert [r.run_id for r in local.runs()] == ["recent"]
    recent = local.run("recent")
    assert local.run("old") is None and recent is not None and recent.rows == 5

    client = redis.Redis.from_url(db)
    meta = {"trigger": "schedule"}
    for run_id in ("r-old", "r-new"):
        history.record_skipped(client, run_id, "flows.yml", ["f"], "skipped: test", meta)
    client.zadd("hygge:runs:history", {"r-old": now - 40 * day})
    settings = HistorySettings(path=None, keep_runs=100, keep_days=30)
    assert history.trim(client, settings) == 1
    assert [m.decode() for m in client.zrange("hygge:runs:history", 0, -1)] == ["r-new"]
    assert not client.exists("hygge:run:r-old", "hygge:run:r-old:flow:f")
    assert client.hget("hygge:run:r-new:flow:f", "state") == b"skipped"


def _succeeded_runs(cluster: Cluster) -> list[dict[str, dict[str, str]]]:
    """The flows of every run that ended with each of its flows a success, oldest first."""
    out = []
    for run_id in cluster.redis.zrange("hygge:runs:history", 0, -1):
        flows = cluster.status(run_id.decode())
        if flows and all(f.get("state") == "success" for f in flows.values()):
            out.append(flows)
    return out


def test_a_scheduled_definition_is_discovered_by_a_worker_at_each_slot(
    make_cluster: Any, postgres_url: str, tmp_path: Path
) -> None:
    """The database URL is only in the worker's environment: the scheduler plans the
    definition undiscovered, each slot's discover step finds the tables on the worker, and a
    table created meanwhile joins at the next slot; exact by count."""
    from tests.entity_support import fill, parquet_rows, pg_schema
    from tests.test_distributed_runs import with_password

    with pg_schema(postgres_url) as (pg, schema):
        fill(pg, schema, "accounts", 0, 21)
        fill(pg, schema, "invoices", 1, 8)
        cluster: Cluster = make_cluster(SCHED_PG=with_password(postgres_url))
        cluster.start_worker("w1")
        del cluster.env["SCHED_PG"]  # the scheduler's environment has no database URL
        lake = tmp_path / "lake"
        flows = write_flows(
            tmp_path,
            f"""flows:
  crm:
    home: {{type: sql, connection: "${{SCHED_PG}}", tables: ["{schema}.*"]}}
    store: {{type: parquet, path: "{lake}/{{entity}}", mode: replace}}
    options: {{every: 3s, retries: 0}}
""",
        )
        cluster.start_scheduler("scheduler", flows)
        wait_for(lambda: _succeeded_runs(cluster), 300, "a scheduled run of the entities")
        first = _succeeded_runs(cluster)[0]
        assert sorted(first) == ["crm.accounts", "crm.invoices", "discover:entities"]
        assert first["discover:entities"]["worker"] == "w1@test"
        assert parquet_rows(lake / "accounts") == (21, 21)
        assert parquet_rows(lake / "invoices") == (8, 8)

        fill(pg, schema, "refunds", 2, 5)  # a new table: it joins at the next slot
        wait_for(
            lambda: any("crm.refunds" in r for r in _succeeded_runs(cluster)),
            300,
            "a scheduled run with the new table",
        )
        _stop(cluster, "scheduler")
        wait_for(lambda: cluster.queue_drained(), 300, "the last runs to be taken")
        runs = _succeeded_runs(cluster)
        assert sorted(runs[-1]) == [
            "crm.accounts",
            "crm.invoices",
            "crm.refunds",
            "discover:entities",
        ]
        assert parquet_rows(lake / "refunds") == (5, 5)
        assert parquet_rows(lake / "accounts") == (21, 21)  # replaced at each slot, exact
        log = cluster.log("scheduler")
        assert "not sent" not in log and "SCHED_PG" not in log, log
