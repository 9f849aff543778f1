"""Distributed runs when Redis restarts under them, and when `hygge enqueue` is killed while it
sends: real redis-server processes of our own (killed and restarted at the same port), real
workers, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.checks import fingerprint
from tests.conftest import ROOT
from tests.distributed_support import Cluster, RedisServer, parse_enqueue
from tests.helpers import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def servers() -> Iterator[list[RedisServer]]:
    started: list[RedisServer] = []
    yield started
    for server in started:
        server.stop(signal.SIGKILL)


@pytest.fixture
def clusters() -> Iterator[list[Cluster]]:
    started: list[Cluster] = []
    yield started
    for cluster in started:
        cluster.stop()


def setup(
    tmp_path: Path,
    servers: list[RedisServer],
    clusters: list[Cluster],
    persistent: bool,
    **env: str,
) -> tuple[RedisServer, Cluster]:
    server = RedisServer(tmp_path / "redis", persistent).start()
    servers.append(server)
    cluster = Cluster(server.url, tmp_path, env)
    clusters.append(cluster)
    return server, cluster


def slow_flow(tmp_path: Path, rows: int = 6000, batch: int = 500, delay: float = 0.5) -> Path:
    path = tmp_path / "flows.yml"
    path.write_text(
        "flows:\n"
        "  slow_lake:\n"
        f"    home: {{type: slow, rows: {rows}, batch_size: {batch}, delay: {delay}}}\n"
        f"    store: {{type: parquet, path: {tmp_path / 'out'}}}\n"
    )
    return path


def start_cli(cluster: Cluster, name: str, *args: str) -> subprocess.Popen[str]:
    """`hygge ARGS` in the background; stdout and stderr go to NAME.out / NAME.err."""
    return subprocess.Popen(
        [sys.executable, "-m", "hygge", *args],
        cwd=ROOT,
        env=cluster.env,
        stdout=(cluster.workdir / f"{name}.out").open("w"),
        stderr=(cluster.workdir / f"{name}.err").open("w"),
        text=True,
    )


def output(cluster: Cluster, name: str) -> tuple[str, str]:
    return tuple((cluster.workdir / f"{name}.{s}").read_text() for s in ("out", "err"))  # type: ignore[return-value]


def running_with_rows(cluster: Cluster) -> bool:
    keys = list(cluster.redis.scan_iter("hygge:run:*:flow:slow_lake"))
    return bool(keys) and int(cluster.redis.hget(keys[0], "rows") or 0) > 0


def restart_while_followed(
    server: RedisServer, cluster: Cluster, follower: subprocess.Popen[str], name: str
) -> None:
    """Stop Redis while `follower` watches a running flow, wait until it noticed, restart."""
    wait_for(lambda: running_with_rows(cluster), 60, "the flow to run")
    wait_for(lambda: "slow_lake: running" in output(cluster, name)[0], 60, "the client to follow")
    server.stop(signal.SIGTERM)
    wait_for(
        lambda: "lost the connection" in output(cluster, name)[1] or follower.poll() is not None,
        60,
        "the client to notice Redis is gone",
    )
    assert follower.poll() is None, output(cluster, name)
    server.start()


def test_enqueue_wait_rides_out_a_redis_restart(
    tmp_path: Path, servers: list[RedisServer], clusters: list[Cluster]
) -> None:
    server, cluster = setup(tmp_path, servers, clusters, persistent=True)
    cluster.start_worker("w1", concurrency=1)
    follower = start_cli(cluster, "enqueue", "enqueue", str(slow_flow(tmp_path)), "--wait")
    restart_while_followed(server, cluster, follower, "enqueue")
    assert follower.wait(180) == 0, output(cluster, "enqueue")
    stdout, stderr = output(cluster, "enqueue")
    assert "Traceback" not in stdout + stderr, stderr
    notes = [line for line in stderr.splitlines() if "Redis" in line]
    assert len(notes) == 2, stderr  # one line when it went away, one when it was back
    assert "reconnected" in notes[1]
    assert "success" in stdout
    assert fingerprint(tmp_path / "out")[0] == 6000


def test_status_watch_reports_a_run_lost_with_a_redis_that_keeps_nothing(
    tmp_path: Path, servers: list[RedisServer], clusters: list[Cluster]
) -> None:
    server, cluster = setup(tmp_path, servers, clusters, persistent=False, HYGGE_LEASE_SECONDS="4")
    cluster.start_worker("w1", concurrency=1)
    enqueued = cluster.cli("enqueue", str(slow_flow(tmp_path, delay=1.0)))
    assert enqueued.returncode == 0, enqueued.stderr
    run_id, _ = parse_enqueue(enqueued.stdout)
    watcher = start_cli(cluster, "watch", "status", run_id, "--watch")
    restart_while_followed(server, cluster, watcher, "watch")
    assert watcher.wait(120) != 0, output(cluster, "watch")
    stdout, stderr = output(cluster, "watch")
    assert "Traceback" not in stdout + stderr, stderr
    assert f"run {run_id} is LOST" in stderr, stderr
    assert "no run with id" not in stderr
    # The worker lost its lease with the data: it stops and commits nothing.
    wait_for(
        lambda: "stopped without committing" in cluster.log("w1"),
        60,
        "the worker to stop the flow whose lease was lost",
    )
    assert not list((tmp_path / "out").glob("*.parquet"))


def test_enqueue_killed_while_sending_leaves_every_run_recoverable(
    tmp_path: Path, servers: list[RedisServer], clusters: list[Cluster]
) -> None:
    flows = 200
    server, cluster = setup(tmp_path, servers, clusters, persistent=False, HYGGE_LEASE_SECONDS="10")
    path = tmp_path / "many.yml"
    path.write_text(
        "flows:\n"
        + "".join(
            f"  f{n:03d}:\n"
            "    home: {type: slow, rows: 10, batch_size: 10}\n"
            f"    store: {{type: parquet, path: {tmp_path / 'out' / f'f{n:03d}'}}}\n"
            for n in range(flows)
        )
    )
    client = redis.Redis.from_url(server.url)
    enqueuer = start_cli(cluster, "enqueue", "enqueue", str(path))
    # No worker yet: the queue's length is what was sent. Kill the enqueuer mid-send.
    wait_for(
        lambda: client.llen("hygge") >= 5 or enqueuer.poll() is not None,
        60,
        "sending to start",
        every=0.002,
    )
    os.kill(enqueuer.pid, signal.SIGKILL)
    enqueuer.wait(10)
    sent = client.llen("hygge")
    assert 0 < sent < flows, f"{sent} of {flows} sent: the kill came too late to test anything"
    [run_key] = [k for k in client.scan_iter("hygge:run:*") if k.count(b":") == 2]
    run_id = run_key.decode().split(":")[2]

    cluster.start_worker("w1")
    cluster.start_worker("w2")

    def every_flow_ended() -> bool:
        states = [s["state"] for s in cluster.status(run_id).values()]
        return all(s in ("success", "failed", "skipped") for s in states)

    wait_for(every_flow_ended, 120, "every flow of the run to end", every=1)
    states = {f: s["state"] for f, s in cluster.status(run_id).items()}
    assert set(states.values()) == {"success"}, states
    for n in range(flows):
        assert fingerprint(tmp_path / "out" / f"f{n:03d}")[0] == 10
    assert "never sent" in cluster.log("w1", tail=10**9) + cluster.log("w2", tail=10**9)
