"""`hygge flower` is never open by accident: a real Flower process, refused without
credentials, and with basic auth every page and the API answer 401 without them."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.distributed_support import (
    FLOWER_PASSWORD,
    FLOWER_USER,
    Cluster,
    claim_db,
    flower_request,
    flush,
    free_port,
    wait_for,
)

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
