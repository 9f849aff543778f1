"""Open Mirroring through `hygge enqueue` and two real workers: a whole PostgreSQL schema
(entities) into one landing zone on Azurite, the only place the workers share."""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs as pafs
import pytest

from tests.distributed_support import Cluster, cloud_cluster, parse_enqueue, wait_for
from tests.landing_replay import check_names, replay_files
from tests.sqldb import Db, unique

pytestmark = pytest.mark.slow
TABLES = ("customers", "orders", "refunds")


cluster = cloud_cluster("az")


def test_entities_through_two_workers_into_one_landing_zone(
    cluster: Cluster, emulators, postgres_url: str, tmp_path: Path
):
    emu = emulators["az"]
    url = f"{emu.new_bucket()}/erp/Files/LandingZone"
    db = Db(postgres_url)
    schema = unique("omd")
    db.run(f"CREATE SCHEMA {schema}")
    try:
        for n, t in enumerate(TABLES):
            db.run(f"CREATE TABLE {schema}.{t} (id int PRIMARY KEY, v text)")
            db.run(
                f"INSERT INTO {schema}.{t} SELECT i, '{t}' || i FROM generate_series(1, %s) i",
                (100 * (n + 1),),
            )
        project = tmp_path / "enqueuer"
        project.mkdir()
        flows = project / "flows.yml"
        flows.write_text(
            f"""
flows:
  erp:
    home: {{type: sql, connection: "{postgres_url}", tables: ["{schema}.*"], batch_size: 50}}
    store: {{type: open_mirroring, path: "{url}", table: "{{entity}}", key: [id],
             mode: snapshot, max_rows_per_file: 120}}
"""
        )
        cluster.start_worker("w1", concurrency=1)
        cluster.start_worker("w2", concurrency=1)
        done = cluster.cli("enqueue", str(flows))
        assert done.returncode == 0, done.stderr
        run_id = parse_enqueue(done.stdout)[0]

        def finished() -> dict[str, dict[str, str]] | None:
            # the run holds the worker's discover:entities step, then one flow per table
            status = cluster.status(run_id)
            ended = len(status) == len(TABLES) + 1 and all(
                s["state"] in ("success", "failed") for s in status.values()
            )
            return status if ended else None

        status = wait_for(finished, 300, "every entity flow to finish", every=0.2)
        assert {s["state"] for s in status.values()} == {"success"}, (
            status,
            cluster.log("w1"),
            cluster.log("w2"),
        )
        fs = emu.filesystem()
        base = url.split("://", 1)[1]
        for t in TABLES:
            infos = fs.get_file_info(pafs.FileSelector(base, recursive=True))
            folder = next(
                i.path.rsplit("/", 1)[0] for i in infos if i.path.endswith(f"/{t}/_metadata.json")
            )
            files = fs.get_file_info(pafs.FileSelector(folder, recursive=False))
            names = check_names([i.base_name for i in files if i.type == pafs.FileType.File])
            local = tmp_path / "download" / t
            local.mkdir(parents=True)
            for n in names:
                with fs.open_input_stream(f"{folder}/{n}") as f:
                    (local / n).write_bytes(f.read())
            rows = replay_files([local / n for n in names], ["id"], ["id", "v"])
            assert set(rows.values()) == set(db.run(f"SELECT id, v FROM {schema}.{t}"))
    finally:
        db.run(f"DROP SCHEMA {schema} CASCADE")
        db.close()


def test_a_partitioned_flow_through_two_workers(
    cluster: Cluster, emulators, postgres_url: str, tmp_path: Path
):
    """Parts staged by two workers under the landing zone's hidden area, one commit: one
    continuous sequence that replays to the source table."""
    emu = emulators["az"]
    url = f"{emu.new_bucket()}/erp/Files/LandingZone"
    db = Db(postgres_url)
    table = unique("omp")
    db.run(f"CREATE TABLE {table} (id int PRIMARY KEY, v text)")
    try:
        db.run(f"INSERT INTO {table} SELECT i, 'v' || i FROM generate_series(1, 3000) i")
        project = tmp_path / "enqueuer"
        project.mkdir()
        flows = project / "flows.yml"
        flows.write_text(
            f"""
flows:
  big:
    home: {{type: sql, connection: "{postgres_url}", table: {table}, partition_on: id,
            batch_size: 200}}
    store: {{type: open_mirroring, path: "{url}", table: big, key: [id], mode: snapshot,
             max_rows_per_file: 400}}
    options: {{partitions: 4}}
"""
        )
        cluster.start_worker("w1", concurrency=1)
        cluster.start_worker("w2", concurrency=1)
        done = cluster.cli("enqueue", str(flows), "--wait")
        assert done.returncode == 0, (done.stdout, done.stderr, cluster.log("w1"))
        fs = emu.filesystem()
        folder = f"{url.split('://', 1)[1]}/big"
        files = fs.get_file_info(pafs.FileSelector(folder, recursive=False))
        names = check_names([i.base_name for i in files if i.type == pafs.FileType.File])
        local = tmp_path / "download"
        local.mkdir()
        for n in names:
            with fs.open_input_stream(f"{folder}/{n}") as f:
                (local / n).write_bytes(f.read())
        rows = replay_files([local / n for n in names], ["id"], ["id", "v"])
        assert set(rows.values()) == set(db.run(f"SELECT id, v FROM {table}"))
        hidden = f"{url.split('://', 1)[1]}/_hygge"
        assert fs.get_file_info(hidden).type == pafs.FileType.NotFound or not [
            i
            for i in fs.get_file_info(pafs.FileSelector(hidden, recursive=True))
            if i.type == pafs.FileType.File
        ]
    finally:
        db.drop(table)
        db.close()
