"""One engine for both runners (hygge/run): the same partitioned flow through `hygge run` and
through real workers gives the same data and the same report; the workers' commit step takes
the destination's run lock like `hygge run`; a local path the workers do not share is refused
before anything is sent; a part the commit cannot read is named with the worker that staged
it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import tests.distributed_plugins  # noqa: F401  (registers the `pieces` home in this process)
from hygge import config
from hygge.coordinator import Coordinator
from hygge.errors import FlowError
from hygge.run.context import RunContext
from hygge.run.parts import PartitionedFlow
from tests.checks import count_and_sum, fingerprint
from tests.conftest import ROOT, run_cli
from tests.distributed_support import (  # noqa: F401  (fixtures)
    PLUGINS,
    db,
    make_cluster,
    parse_enqueue,
    wait_for,
)

ROWS = 6000


def flows_file(tmp: Path, store: str, partitions: int = 6) -> Path:
    path = tmp / "flows.yml"
    options = f"{{partitions: {partitions}, retry_delay: 0.1}}"
    path.write_text(
        "flows:\n  big:\n"
        f"    home: {{type: pieces, rows: {ROWS}, batch_size: 100, "
        f"log: '${{READS}}'}}\n"
        f"    store: {store}\n"
        f"    options: {options}\n"
    )
    return path


@pytest.mark.slow
def test_the_same_partitioned_flow_through_both_runners(make_cluster, tmp_path: Path) -> None:
    """`hygge run` (the Coordinator) and `hygge enqueue` execute the same steps: same rows,
    same content, each partition read once, the same report."""
    flows = flows_file(tmp_path, "{path: '${LAKE}/big', shared_volume: true}")
    here, there = tmp_path / "here", tmp_path / "there"
    env = {**os.environ, "LAKE": str(here), "READS": str(tmp_path / "here.log")}
    local = Coordinator(flows, env=env, concurrency=3).run()
    assert local.ok, local.failed

    cluster = make_cluster(LAKE=str(there), READS=str(tmp_path / "there.log"))
    cluster.start_worker("w1")
    cluster.start_worker("w2")
    remote = cluster.cli("enqueue", str(flows), "--wait", timeout=300)
    assert remote.returncode == 0, remote.stdout + remote.stderr

    expected = (ROWS, ROWS, sum(range(ROWS)))
    assert count_and_sum(here / "big") == expected
    assert count_and_sum(there / "big") == expected
    assert fingerprint(here / "big") == fingerprint(there / "big")
    for log in ("here.log", "there.log"):  # every partition read exactly once
        assert Counter((tmp_path / log).read_text().split()) == Counter(map(str, range(6)))
    run_id, _ = parse_enqueue(remote.stdout)
    on_workers = cluster.status(run_id)["big"]
    mine = local.results["big"]
    assert (mine.state, mine.rows, mine.batches, mine.memory_bytes) == (
        on_workers["state"],
        int(on_workers["rows"]),
        int(on_workers["batches"]),
        int(on_workers["memory_bytes"]),
    )
    assert (
        mine.rows == ROWS and mine.batches == 60 and (mine.parts_done, mine.parts_total) == (6, 6)
    )
    assert "6/6" in remote.stdout  # the workers' line says partitions done/total too
    for lake in (here, there):  # no staging left beside either dataset
        assert sorted(p.name for p in lake.iterdir()) == ["big"]


@pytest.mark.slow
def test_the_workers_commit_takes_the_run_lock_of_hygge_run(make_cluster, tmp_path: Path) -> None:
    """A plain `hygge run` of the flow writes the destination; the partitioned run of it on
    workers stages its partitions but its commit is refused, publishes nothing, cleans up."""
    lake = tmp_path / "lake"
    store = f"{{path: {lake / 'big'}, shared_volume: true}}"
    plain_dir, parts_dir = tmp_path / "plain", tmp_path / "parts"
    plain_dir.mkdir()
    parts_dir.mkdir()
    plain = plain_dir / "flows.yml"  # 60 batches of 100 rows, 2 s apart: two minutes
    plain.write_text(
        "flows:\n  big:\n"
        f"    home: {{type: slow, rows: {ROWS}, batch_size: 100, delay: 2.0}}\n"
        f"    store: {store}\n"
    )
    parted = flows_file(parts_dir, store, partitions=3)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HYGGE_PLUGINS": PLUGINS,
        "READS": str(tmp_path / "plain.log"),
    }
    running = subprocess.Popen(
        [sys.executable, "-m", "hygge", "run", str(plain)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: (lake / ".big.hygge-lock.big").exists(), 120, "hygge run to lock")
        cluster = make_cluster(READS=str(tmp_path / "parts.log"))
        cluster.start_worker("w1")
        result = cluster.cli("enqueue", str(parted), "--wait", timeout=300)
        assert result.returncode == 1, result.stdout + result.stderr
        run_id, _ = parse_enqueue(result.stdout)
        flows = cluster.status(run_id)
        assert all(flows[f"big#{i}/3"]["state"] == "success" for i in range(1, 4))
        assert flows["big"]["state"] == "failed"
        assert "already running into" in flows["big"]["message"], flows["big"]
        assert running.poll() is None  # the plain run was never disturbed
        assert not (lake / "big").exists()  # nothing published
        assert not [p for p in lake.iterdir() if ".hygge-parts-" in p.name]  # parts discarded
    finally:
        os.killpg(running.pid, signal.SIGTERM)
        running.wait(60)


def test_enqueue_refuses_a_partitioned_flow_into_an_unshared_local_path(
    db: str, tmp_path: Path
) -> None:
    import redis

    flows = flows_file(tmp_path, f"{tmp_path / 'lake' / 'big'}", partitions=4)
    env = {"HYGGE_PLUGINS": PLUGINS, "HYGGE_BROKER_URL": db, "READS": str(tmp_path / "r")}
    before = sorted(redis.Redis.from_url(db).keys())
    refused = run_cli("enqueue", str(flows), env=env)
    assert refused.returncode == 2  # flows.yml asks what workers cannot do
    said = refused.stdout + refused.stderr
    assert "flow 'big'" in said and "shared_volume: true" in said and "nothing" in said, said
    assert "Traceback" not in said
    assert sorted(redis.Redis.from_url(db).keys()) == before  # nothing sent, nothing planned
    assert not (tmp_path / "lake").exists()
    # `validate --workers` says the same; plain `validate` (for `hygge run`) accepts it
    checked = run_cli("validate", str(flows), "--workers", env=env)
    assert checked.returncode == 2 and "shared_volume" in checked.stdout + checked.stderr
    assert run_cli("validate", str(flows), env=env).returncode == 0


def test_a_part_the_commit_cannot_read_is_named_with_its_worker(tmp_path: Path) -> None:
    """What a commit on a machine that cannot see a part's files says (as on workers that
    share no disk): the partition, the worker that staged it, the reason; no raw Errno."""
    spec = config.parse(
        flows_file(tmp_path, f"{tmp_path / 'lake' / 'big'}", partitions=2).read_text(),
        base_dir=tmp_path,
        env={"READS": str(tmp_path / "reads.log")},
    ).flows["big"]
    flow = spec.build(context=RunContext(worker="w9@elsewhere"))
    assert isinstance(flow, PartitionedFlow)

    async def stage_lose_commit() -> None:
        for index in range(2):
            await flow.stage(index, 2, "k1")
        for name in flow.context.board.sealed("k1")[1]["sealed"]["files"]:
            os.remove(name)  # not on this machine
        await flow.commit("k1", 2)

    with pytest.raises(FlowError) as failure:
        asyncio.run(stage_lose_commit())
    said = str(failure.value)
    assert "partition 2/2" in said and "w9@elsewhere" in said, said
    assert "does not exist" in said and "Errno" not in said and "shared_volume" in said, said
    assert not (tmp_path / "lake" / "big").exists()
    assert not list((tmp_path / "lake").iterdir())  # every part's staging deleted
