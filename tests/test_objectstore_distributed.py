"""Flows on object storage through `hygge enqueue` and two real workers sharing no folder:
the S3 emulator is the only place the data meets."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable

from hygge.storage.credentials import delta_storage_options, resolve
from hygge.storage.location import Location
from tests.checks import fingerprint
from tests.distributed_support import Cluster, cloud_cluster, parse_enqueue, wait_for
from tests.objectstore import download, upload

pytestmark = pytest.mark.slow


# Each worker runs from the repository with the S3 endpoint and credentials only.
cluster = cloud_cluster("s3")


def test_two_workers_move_data_through_s3_only(cluster: Cluster, emulators, tmp_path: Path):
    emu = emulators["s3"]
    bucket = emu.new_bucket()
    local = tmp_path / "drops"
    local.mkdir()
    for i in range(4):
        ids = range(i * 2_000, (i + 1) * 2_000)
        pl.DataFrame({"id": list(ids), "v": [f"v{j}" for j in ids]}).write_parquet(
            local / f"d{i}.parquet"
        )
        upload(emu, local / f"d{i}.parquet", f"{bucket}/raw/d{i}.parquet")
    project = tmp_path / "enqueuer"
    project.mkdir()
    flows = project / "flows.yml"
    flows.write_text(
        f"""
flows:
  to_parquet:
    home: {bucket}/raw/*.parquet
    store: {bucket}/lake/parquet
  to_delta:
    home: {{type: parquet, path: "{bucket}/raw/"}}
    store: {{type: delta, path: "{bucket}/lake/delta", mode: append}}
"""
    )
    cluster.start_worker("w1", concurrency=1)
    cluster.start_worker("w2", concurrency=1)
    done = cluster.cli("enqueue", str(flows))
    assert done.returncode == 0, done.stderr
    run_id = parse_enqueue(done.stdout)[0]
    flows.unlink()  # the workers never read it: the message carries the flow

    def finished() -> dict[str, dict[str, str]] | None:
        status = cluster.status(run_id)
        ended = all(s["state"] in ("success", "failed") for s in status.values())
        return status if ended else None

    status = wait_for(finished, 150, "both flows to finish", every=0.2)
    assert {s["state"] for s in status.values()} == {"success"}, (
        status,
        cluster.log("w1"),
        cluster.log("w2"),
    )
    expected = fingerprint(local / "*.parquet")
    got = download(emu, f"{bucket}/lake/parquet", tmp_path / "out")
    assert fingerprint(f"{got}/*.parquet") == expected
    uri = f"{bucket}/lake/delta"
    options = delta_storage_options(Location.parse(uri), resolve({}, emu.env))
    table = DeltaTable(uri, storage_options=options)
    assert table.version() == 0 and table.to_pyarrow_table().num_rows == expected[0]
