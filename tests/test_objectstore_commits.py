"""A commit into an object-storage dataset lands once, whatever interrupts it: an endpoint cut
(a TCP proxy in front of the S3 emulator) once the commit journal exists, with the flow's own
retries; a worker SIGKILLed while publishing, its flow re-sent to another worker. A plain
`mode: append` must hold exactly the source's rows afterwards, by count and checksum."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from tests.checks import fingerprint
from tests.conftest import run_cli
from tests.distributed_support import Cluster, cloud_cluster, parse_enqueue, wait_for
from tests.objectstore import Emulator, download, objects
from tests.tcpproxy import TcpProxy

pytestmark = pytest.mark.slow


def drops(folder: Path, files: int, rows: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        ids = range(i * rows, (i + 1) * rows)
        pl.DataFrame({"id": list(ids), "v": [f"v{j}" for j in ids]}).write_parquet(
            folder / f"d{i:03d}.parquet"
        )
    return folder


def dataset(emu: Emulator, url: str, dest: Path) -> tuple[int, int]:
    got = download(emu, url, dest)
    return fingerprint(f"{got}/*.parquet") if list(got.glob("*.parquet")) else (0, 0)


def journal_exists(emu: Emulator, url: str) -> bool:
    return any("/_hygge/journal/commit-" in o for o in objects(emu, url))


@pytest.fixture
def proxy(emulators) -> Iterator[TcpProxy]:
    port = int(emulators["s3"].endpoint.rsplit(":", 1)[1])
    p = TcpProxy("127.0.0.1", port)
    yield p
    p.close()


def run_cut_at_commit(emu: Emulator, proxy: TcpProxy, url: str, project: Path):
    """`hygge run` through the proxy, the endpoint cut for 3 s once the commit journal of
    `url` exists; the run must retry and succeed."""
    env = {**emu.env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}"}
    cut = threading.Event()

    def cut_at_commit() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not journal_exists(emu, url):
            time.sleep(0.02)
        proxy.cut()
        cut.set()
        time.sleep(3)
        proxy.restore()

    watcher = threading.Thread(target=cut_at_commit, daemon=True)
    watcher.start()
    done = run_cli("run", "flows.yml", cwd=project, env=env, timeout=600)
    watcher.join(10)
    assert cut.is_set() and done.returncode == 0, done.stdout + done.stderr
    assert "retry" in (done.stdout + done.stderr).lower(), "the cut interrupted nothing"
    return done


def test_endpoint_cut_mid_commit_appends_once(emulators, proxy: TcpProxy, tmp_path: Path):
    """30 files x 500 rows, `retries: 5`, the endpoint cut for 3 s once the journal exists:
    the retry completes the journal and publishes nothing more (15,000 rows, not 30,000)."""
    emu = emulators["s3"]
    bucket = emu.new_bucket()
    source = drops(tmp_path / "incoming", 30, 500)
    url = f"{bucket}/lake/t"
    (tmp_path / "flows.yml").write_text(
        f"flows:\n  f:\n    home: incoming\n"
        f"    store: {{path: '{url}', mode: append, max_rows_per_file: 150}}\n"
        "    options: {retries: 5, retry_delay: 0.5}\n"
    )
    done = run_cut_at_commit(emu, proxy, url, tmp_path)
    assert "f: success: 15,000 rows" in done.stdout + done.stderr, done.stdout + done.stderr
    assert dataset(emu, url, tmp_path / "out") == fingerprint(source / "*.parquet")
    left = objects(emu, f"{bucket}/lake")
    assert not [o for o in left if "staging" in o or "/journal/" in o], left
    # A second, deliberate run is a new run: it appends again (plain append semantics).
    again = run_cli("run", "flows.yml", cwd=tmp_path, env=emu.env, timeout=600)
    assert again.returncode == 0, again.stderr
    assert dataset(emu, url, tmp_path / "out2")[0] == 2 * 15_000


def test_endpoint_cut_mid_incremental_commit_reports_its_rows(
    emulators, proxy: TcpProxy, tmp_path: Path
):
    """An incremental run whose commit is cut once its journal exists: the retry completes
    that commit, then reads nothing new (the state moved with the data). The run published
    15,000 rows and says so (it said 0); a second run finds nothing new and says 0."""
    emu = emulators["s3"]
    bucket = emu.new_bucket()
    source = drops(tmp_path / "incoming", 30, 500)
    url = f"{bucket}/lake/t"
    (tmp_path / "flows.yml").write_text(
        f"flows:\n  f:\n    home: incoming\n"
        f"    store: {{path: '{url}', mode: append, max_rows_per_file: 150}}\n"
        "    options: {incremental: true, retries: 5, retry_delay: 0.5}\n"
    )
    done = run_cut_at_commit(emu, proxy, url, tmp_path)
    out = done.stdout + done.stderr
    assert "f: success: 15,000 rows" in out, out
    assert dataset(emu, url, tmp_path / "out") == fingerprint(source / "*.parquet")
    again = run_cli("run", "flows.yml", cwd=tmp_path, env=emu.env, timeout=600)
    assert again.returncode == 0 and "f: success: 0 rows" in again.stdout + again.stderr
    assert dataset(emu, url, tmp_path / "out2") == fingerprint(source / "*.parquet")


cluster = cloud_cluster("s3", HYGGE_LEASE_SECONDS="4", HYGGE_SWEEP_SECONDS="1")


def test_worker_killed_mid_publish_appends_once(cluster: Cluster, emulators, tmp_path: Path):
    """The worker dies while publishing (journal written); the flow's re-sent message runs
    on another worker, which completes the journal and publishes nothing more."""
    emu = emulators["s3"]
    bucket = emu.new_bucket()
    source = drops(tmp_path / "incoming", 40, 500)
    url = f"{bucket}/lake/t"
    project = tmp_path / "enqueuer"
    project.mkdir()
    (project / "flows.yml").write_text(
        f"flows:\n  f:\n    home: {source}\n"
        f"    store: {{path: '{url}', mode: append, max_rows_per_file: 100}}\n"
    )
    cluster.start_worker("w1", concurrency=1)
    done = cluster.cli("enqueue", str(project / "flows.yml"))
    assert done.returncode == 0, done.stderr
    run_id = parse_enqueue(done.stdout)[0]
    wait_for(lambda: journal_exists(emu, url), 300, "the commit journal", every=0.02)
    cluster.kill("w1")
    cluster.start_worker("w2", concurrency=1)

    def ended() -> dict[str, dict[str, str]] | None:
        status = cluster.status(run_id)
        return status if all(s["state"] in ("success", "failed") for s in status.values()) else None

    status = wait_for(ended, 300, "the flow to end", every=0.5)
    assert status["f"]["state"] == "success", (status, cluster.log("w2"))
    assert dataset(emu, url, tmp_path / "out") == fingerprint(source / "*.parquet")
