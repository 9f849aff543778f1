"""`hygge flower` is never open by accident: a real Flower process, refused without
credentials, and with basic auth every page and the API answer 401 without them. Its task
list reads at a glance: each task named by its flow (a partition `flow#i/n`), with state,
progress or result, retries, worker and runtime, and the flows skipped with the reason."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.distributed_support import (
    FLOWER_PASSWORD,
    FLOWER_USER,
    Cluster,
    claim_db,
    flower_request,
    flush,
    free_port,
    parse_enqueue,
    wait_for,
)
from worker import history
from worker.contract import FlowJob, Keys
from worker.runs import Runs

pytestmark = pytest.mark.slow

PAGES = (
    "/tasks",
    "/tasks/datatable?draw=1&start=0&length=10&order[0][column]=0&columns[0][data]=name",
    "/api/tasks",
    "/api/workers",
)


@pytest.fixture
def cluster(redis_url: str, tmp_path: Path) -> Iterator[Cluster]:
    url = claim_db(redis_url)
    c = Cluster(url, tmp_path)
    try:
        yield c
    finally:
        c.stop()
        flush(url)


def status_of(port: int, path: str, credentials: tuple[str, str] | None) -> int:
    try:
        with urllib.request.urlopen(flower_request(port, path, credentials), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0  # not listening (yet)


def test_flower_refuses_to_start_without_auth(cluster: Cluster) -> None:
    for args in ((), ("--address=0.0.0.0",)):
        done = cluster.cli("flower", "--port=1", *args, timeout=60)
        assert done.returncode != 0
        assert "refusing to start Flower without authentication" in done.stderr, done.stderr
        assert "--basic-auth" in done.stderr and "Traceback" not in done.stderr
    done = cluster.cli(
        "flower",
        "--port=1",
        timeout=60,
        FLOWER_BASIC_AUTH=f"{FLOWER_USER}:{FLOWER_PASSWORD}",
        FLOWER_UNAUTHENTICATED_API="true",
    )
    assert done.returncode != 0 and "FLOWER_UNAUTHENTICATED_API" in done.stderr, done.stderr
    done = cluster.cli("flower", "--unsafe-no-auth", "--address=0.0.0.0", timeout=60)
    assert done.returncode != 0 and "127.0.0.1 only" in done.stderr, done.stderr


def test_flower_with_basic_auth_answers_nothing_without_credentials(cluster: Cluster) -> None:
    cluster.start_flower()  # FLOWER_BASIC_AUTH in its environment, no --address
    port = cluster.flower_port
    for page in PAGES:
        assert status_of(port, page, None) == 401, page
        assert status_of(port, page, (FLOWER_USER, "wrong-password")) == 401, page
        assert status_of(port, page, (FLOWER_USER, FLOWER_PASSWORD)) == 200, page
    assert_loopback_only(port)


def test_an_open_flower_must_be_asked_for_and_is_loopback_only(cluster: Cluster) -> None:
    cluster.flower_port = port = free_port()
    cluster._spawn("flower", ["flower", f"--port={port}", "--unsafe-no-auth"], cluster.env)
    wait_for(
        lambda: status_of(port, "/tasks", None) == 200 or cluster._died("flower"),
        60,
        "an open Flower",
    )
    assert cluster.procs["flower"].poll() is None, cluster.log("flower")
    assert_loopback_only(port)


def assert_loopback_only(port: int) -> None:
    """Flower listens on 127.0.0.1 only: the kernel's table of listening sockets says where."""
    loopback = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1
    listening = [
        address
        for table in ("/proc/net/tcp", "/proc/net/tcp6")
        for line in Path(table).read_text().splitlines()[1:]
        for address, local_port, state in [_listen_entry(line)]
        if local_port == port and state == "0A"  # 0A: LISTEN
    ]
    assert listening, f"nothing listens on port {port}"
    assert set(listening) <= loopback, f"Flower listens beyond loopback: {listening}"


def _listen_entry(line: str) -> tuple[str, int, str]:
    fields = line.split()
    address, port = fields[1].split(":")
    return address, int(port, 16), fields[3]


def fetch(port: int, path: str) -> str:
    with urllib.request.urlopen(flower_request(port, path), timeout=10) as r:
        return r.read().decode()


LIST = (
    "/tasks/datatable?draw=1&start=0&length=100&search%5Bvalue%5D="
    "&order%5B0%5D%5Bcolumn%5D=0&order%5B0%5D%5Bdir%5D=asc&columns%5B0%5D%5Bdata%5D=name"
)


def test_the_task_list_names_flows_and_shows_skipped_ones(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_flower()
    cluster.start_worker("w1")
    body = (
        "flows:\n"
        "  users:\n"
        "    home: {type: slow, rows: 500}\n"
        f"    store: {{type: parquet, path: {tmp_path / 'users'}}}\n"
        "  big:\n"
        f"    home: {{type: pieces, rows: 400, batch_size: 100, log: {tmp_path / 'reads.log'}}}\n"
        f"    store: {{path: {tmp_path / 'big'}, shared_volume: true}}\n"
        "    options: {partitions: 2}\n"
        "  broken:\n"
        "    home: {type: slow, fail_loudly: true, connection: nowhere}\n"
        f"    store: {{type: parquet, path: {tmp_path / 'broken'}}}\n"
        "  after_broken:\n"
        "    home: {type: slow, rows: 10}\n"
        f"    store: {{type: parquet, path: {tmp_path / 'after'}}}\n"
        "    options: {depends_on: broken}\n"
    )
    flows = tmp_path / "flows.yml"
    flows.write_text(body)
    flower_url = f"http://127.0.0.1:{cluster.flower_port}"
    done = cluster.cli("enqueue", str(flows), "--wait", HYGGE_FLOWER_URL=flower_url)
    assert done.returncode == 1, done.stdout + done.stderr  # broken fails, after_broken skipped
    assert f"Flower: {flower_url}" in done.stdout  # it answers, so its address is given
    # --wait through a pipe (not a terminal): timestamped lines, as `hygge run` prints them
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
    assert re.search(rf"^{stamp} users: success: 500 rows", done.stdout, re.M), done.stdout
    assert re.search(rf"^{stamp} after_broken: skipped", done.stdout, re.M), done.stdout
    _, tasks = parse_enqueue(done.stdout)

    def listed() -> dict[str, dict[str, object]]:
        rows = json.loads(fetch(cluster.flower_port, LIST))["data"]
        return {str(r["name"]): r for r in rows}

    want = {"users", "big", "big#1/2", "big#2/2", "broken", "after_broken"}
    rows = wait_for(lambda: want <= set(listed()) and listed(), 120, "every flow in Flower's list")
    assert rows["users"]["state"] == "SUCCESS" and "500 rows" in str(rows["users"]["result"])
    assert rows["big#1/2"]["uuid"] == tasks["big#1/2"] and rows["big#2/2"]["state"] == "SUCCESS"
    assert rows["broken"]["state"] == "FAILURE" and rows["broken"]["worker"] == "w1@test"
    assert rows["after_broken"]["state"] == "SKIPPED", rows["after_broken"]
    assert "depends on broken" in str(rows["after_broken"]["result"])
    assert all(float(r["runtime"]) > 0 for r in rows.values() if r["state"] == "SUCCESS")
    # the page itself shows hygge's columns
    page = fetch(cluster.flower_port, "/tasks")
    headers = re.findall(r"<th[^>]*>\s*([^<]+?)\s*</th>", page)
    assert headers[:7] == ["Name", "State", "Result", "Retries", "Worker", "Started", "Runtime"]


def test_flows_skipped_by_a_sweeper_or_the_scheduler_reach_flower(cluster: Cluster) -> None:
    """No worker task sees these skips: a worker recorded its flow's failure and died before
    deciding the flows behind it (a sweeper decides them), and a scheduled run skipped whole.
    The run records are written as those leave them; the worker's sweeper tells Flower."""
    cluster.env["HYGGE_SWEEP_SECONDS"] = "1"
    cluster.start_flower()
    cluster.start_worker("w1")
    records = Runs(redis.Redis.from_url(cluster.broker_url))
    graph = {"extract": [], "load": ["extract"], "report": ["load"]}
    jobs = [
        FlowJob(
            run_id="swept",
            flow=name,
            raw={"store": name},
            base_dir="/",
            task_id=str(uuid.uuid4()),
            depends_on=deps,
        )
        for name, deps in graph.items()
    ]
    for job in records.create("swept", "flows.yml", jobs):
        records.sent(job)
    records.sending("swept", None)
    records.update("swept", "extract", state="failed", message="boom")  # ...and its worker died
    reason = "skipped: the previous run r0 of this flow was still going at its scheduled time"
    history.record_skipped(records.r, "sched", "flows.yml", ["ticker"], reason, {})

    def listed() -> dict[str, dict[str, object]]:
        rows = json.loads(fetch(cluster.flower_port, LIST))["data"]
        return {str(r["name"]): r for r in rows}

    want = {"load", "report", "ticker"}
    rows = wait_for(lambda: want <= set(listed()) and listed(), 120, "the skipped flows listed")
    assert all(rows[name]["state"] == "SKIPPED" for name in want), rows
    assert "depends on extract" in str(rows["load"]["result"])
    assert "depends on load" in str(rows["report"]["result"])
    assert rows["load"]["uuid"] == jobs[1].task_id
    assert "still going at its scheduled time" in str(rows["ticker"]["result"])
    assert not records.r.exists(Keys.UNANNOUNCED_RUNS)  # each told once, nothing left over


def test_the_containers_flower_shows_hygge_columns(cluster: Cluster, tmp_path: Path) -> None:
    """The Compose stack and the Kubernetes manifests start Flower with the image's
    `hygge-flower` script (deploy/docker/flower.sh): it too lists tasks with hygge's columns."""
    import os
    import signal

    from tests.conftest import ROOT

    port = free_port()
    env = {
        **cluster.env,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "FLOWER_BASIC_AUTH": f"{FLOWER_USER}:{FLOWER_PASSWORD}",
        "FLOWER_ADDRESS": "127.0.0.1",  # the container listens on 0.0.0.0; a test on loopback
    }
    with (tmp_path / "hygge-flower.log").open("wb") as log:
        proc = subprocess.Popen(
            ["sh", str(ROOT / "deploy/docker/flower.sh"), f"--port={port}"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: (
                status_of(port, "/tasks", (FLOWER_USER, FLOWER_PASSWORD)) == 200
                or proc.poll() is not None
            ),
            120,
            "the container's Flower to answer",
        )
        assert proc.poll() is None, (tmp_path / "hygge-flower.log").read_text()
        headers = re.findall(r"<th[^>]*>\s*([^<]+?)\s*</th>", fetch(port, "/tasks"))
        assert headers[:7] == ["Name", "State", "Result", "Retries", "Worker", "Started", "Runtime"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)


def test_enqueue_without_flower_or_worker_says_so(cluster: Cluster, tmp_path: Path) -> None:
    """No Flower answers: no Flower address. No worker: --wait says so, and how to start one."""
    flows = tmp_path / "flows.yml"
    flows.write_text(
        f"flows:\n  lonely:\n    home: {{type: slow, rows: 5}}\n    store: {tmp_path / 'o'}\n"
    )
    env = {**cluster.env, "HYGGE_FLOWER_URL": f"http://127.0.0.1:{free_port()}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hygge", "enqueue", str(flows), "--wait"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    said: list[str] = []
    try:
        wait_for(
            lambda: said.append(proc.stderr.readline()) or "no worker" in said[-1],  # type: ignore[union-attr]
            300,
            "the note that no worker took the run",
            every=0,
        )
    finally:
        proc.kill()
        out, _ = proc.communicate(timeout=60)
    note = said[-1]
    assert "no worker has taken run" in note and "no worker is running" in note, note
    assert "`hygge worker`" in note
    assert "Flower:" not in out and "status: hygge status" in out, out


def test_flower_help_prints_help() -> None:
    from tests.conftest import run_cli

    done = run_cli("flower", "--help", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Usage: hygge flower" in done.stdout and "--basic-auth" in done.stdout
    assert "refusing" not in done.stdout + done.stderr


def test_worker_logs_are_json_lines_with_hygge_log_format(cluster: Cluster, tmp_path: Path) -> None:
    cluster.env["HYGGE_LOG_FORMAT"] = "json"
    cluster.env["BROKEN_URL"] = "postgresql://u:s3cret@db/x"  # a secret the worker resolves
    cluster.start_worker("w1")
    flows = tmp_path / "flows.yml"
    flows.write_text(
        "flows:\n  broken:\n"
        "    home: {type: slow, fail_loudly: true, connection: '${BROKEN_URL}'}\n"
        f"    store: {tmp_path / 'o'}\n"
    )
    done = cluster.cli("enqueue", str(flows), "--wait", "--log-format", "json")
    assert done.returncode == 1, done.stdout + done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]  # the client's, too
    assert events[0]["event"] == "run_enqueued" and events[-1]["event"] == "run_finished"
    assert events[-1]["flows"][0]["state"] == "failed" and not events[-1]["ok"]
    wait_for(lambda: "broken failed" in cluster.log("w1", tail=100_000), 60, "the failure logged")
    log = cluster.log("w1", tail=100_000)
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    failed = [e for e in entries if "flow broken failed" in e["message"]]
    assert failed and failed[0]["level"] == "error" and failed[0]["logger"] == "hygge.worker"
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    # every log record is JSON (only Celery's start-up banner, printed before logging, is not)
    assert not re.search(r"^\[\d{4}-\d\d-\d\d [\d:,]+: (INFO|WARNING|ERROR)", log, re.M), log
    assert "s3cret" not in log
