"""S3 and Azure datasets stage files under their final names, S3 as open multipart uploads
(hygge/stores/s3_dataset.py), Azure as uncommitted blocks (azure_dataset.py): invisible until
the commit completes them, given up by an abort or a sweep (Azure: the staging records;
Azure itself drops uncommitted blocks after a week), and a commit journal applied twice
publishes once. Real moto and Azurite servers; every check through a separate client
(listing objects and staged uploads, reading back with DuckDB)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path

import polars as pl
import pytest

from hygge.storage.uploads import IN_FLIGHT, PART_BYTES
from hygge.stores.azure_dataset import AzureDataset
from hygge.stores.parquet import ParquetStore
from hygge.stores.s3_dataset import S3Dataset
from tests.checks import fingerprint
from tests.objectstore import download, objects, open_uploads

ROWS = 3_000


def frame(start: int = 0) -> pl.DataFrame:
    ids = range(start, start + ROWS)
    return pl.DataFrame({"id": list(ids), "v": [f"v{i}" for i in ids]})


@pytest.fixture(params=["s3", "az"])
def lake(request, emulators, cloud_env) -> tuple[object, str]:
    emu = emulators[request.param]
    cloud_env(emu)
    return emu, f"{emu.new_bucket()}/lake/t"


def data_files(emu, url: str) -> list[str]:
    return [o for o in objects(emu, url) if o.endswith(".parquet")]


def test_a_file_of_many_parts_arrives_whole(lake, tmp_path: Path) -> None:
    """A file larger than a part goes up in parts of PART_BYTES, several at once, each filled
    in a buffer that is reused once its part is uploaded: every byte must arrive, in order
    (random bytes, so a buffer refilled while its part was still on its way shows), and the
    tail a record keeps (the footer's room) must be the file's own end."""
    emu, url = lake
    dataset = {"s3": S3Dataset, "az": AzureDataset}[emu.scheme](url, None, "manyparts")
    parts = IN_FLIGHT + 3  # more parts than buffers in flight: buffers are reused
    data = os.urandom(parts * PART_BYTES + 12_345)
    stream = dataset._pending(f"{url}/whole.bin")
    sizes, at, turn = [1, 4_093, 3 << 20, PART_BYTES + 5, 777], 0, 0
    while at < len(data):  # writes of uneven sizes, across part boundaries
        size = sizes[turn % len(sizes)]
        stream.write(memoryview(data)[at : at + size])
        at, turn = at + size, turn + 1
    stream.close()
    assert len(stream.tail) >= PART_BYTES and data.endswith(stream.tail)
    record = stream.record()
    assert len(record["parts"]) == parts + 1 and record["size"] == len(data)
    dataset._complete(record)
    got = download(emu, url, tmp_path / "out") / "whole.bin"
    assert hashlib.sha256(got.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()


def test_staged_files_are_invisible_until_the_commit(lake, tmp_path: Path) -> None:
    emu, url = lake
    store = ParquetStore("t", path=url, max_rows_per_file=1_000)

    async def stage() -> int | None:
        await store.open()
        await store.write(frame())
        return await store.staged_rows()

    assert asyncio.run(stage()) == ROWS  # counted from the footers the records keep
    assert type(store.dataset) is {"s3": S3Dataset, "az": AzureDataset}[emu.scheme]
    assert data_files(emu, url) == []  # a reader of the prefix sees nothing yet
    pending = open_uploads(emu, url)
    assert len(pending) == 3 and all(p.startswith(f"{url}/part-") for p in pending), pending
    asyncio.run(store.commit())
    assert sorted(data_files(emu, url)) == pending  # the same names, now whole objects
    assert open_uploads(emu, url) == []
    got = download(emu, url, tmp_path / "out")
    assert fingerprint(f"{got}/*.parquet") == fingerprint_of(frame(), tmp_path)
    assert [o for o in objects(emu, url.rsplit("/", 1)[0]) if "hygge-staging" in o] == []


def test_abort_gives_the_uploads_up(lake) -> None:
    emu, url = lake
    store = ParquetStore("t", path=url, max_rows_per_file=1_000)

    async def stage_then_abort() -> None:
        await store.open()
        await store.write(frame())
        await store.abort()

    asyncio.run(stage_then_abort())
    assert len(open_uploads(emu, url)) == left_staged(emu, 3)
    assert objects(emu, url.rsplit("/", 1)[0]) == []  # nothing visible, no record left


def test_a_journal_applied_twice_publishes_once(lake, tmp_path: Path, monkeypatch) -> None:
    """Killed after the journal was written (nothing published), then the journal is
    completed, and completed again (as after a crash before the journal was deleted): each
    upload completes once, the rows are there once."""
    emu, url = lake
    store = ParquetStore("t", path=url, max_rows_per_file=1_000, mode="append")
    with monkeypatch.context() as patch:
        patch.setattr(S3Dataset, "apply_journal", lambda self, journal: None)  # "killed"

        async def stage_and_commit() -> None:
            await store.open()
            await store.write(frame())
            await store.commit()

        asyncio.run(stage_and_commit())
    dataset = store.dataset
    saved = dataset.read_bytes(dataset.journal)
    assert saved is not None and len(json.loads(saved)["uploads"]) == 3
    assert data_files(emu, url) == []  # the commit point is passed, nothing published yet

    later = ParquetStore("t", path=url, mode="append")
    asyncio.run(later.open())  # rolls the journal forward
    asyncio.run(later.abort())
    assert len(data_files(emu, url)) == 3 and open_uploads(emu, url) == []
    dataset.write_bytes(dataset.journal, saved)  # as if the journal had not been deleted
    again = ParquetStore("t", path=url, mode="append")
    asyncio.run(again.open())
    asyncio.run(again.abort())
    assert len(data_files(emu, url)) == 3
    got = download(emu, url, tmp_path / "out")
    assert fingerprint(f"{got}/*.parquet") == fingerprint_of(frame(), tmp_path)
    assert [o for o in objects(emu, url) if "/journal/" in o] == []


def test_a_dead_runs_uploads_are_aborted_by_the_sweep(lake, monkeypatch) -> None:
    """A run that died while staging leaves open uploads (invisible) and their records; a
    later run sweeps its stale staging and aborts those uploads."""
    from hygge.stores import object_dataset

    emu, url = lake
    dead = ParquetStore("t", path=url, max_rows_per_file=1_000)

    async def stage() -> None:
        await dead.open()
        await dead.write(frame())
        await dead.staged_rows()  # its files closed: parts sent, records written

    asyncio.run(stage())  # ... and never committed nor aborted
    assert len(open_uploads(emu, url)) == 3
    later = ParquetStore("t", path=url)
    asyncio.run(later.open())  # young staging: could be a live run's, kept
    asyncio.run(later.abort())
    assert len(open_uploads(emu, url)) == 3
    monkeypatch.setattr(object_dataset, "STALE_STAGING_SECONDS", 0)
    sweeper = ParquetStore("t", path=url)
    asyncio.run(sweeper.open())
    asyncio.run(sweeper.abort())
    assert len(open_uploads(emu, url)) == left_staged(emu, 3)
    assert [o for o in objects(emu, url.rsplit("/", 1)[0]) if "hygge-staging" in o] == []
    assert data_files(emu, url) == []


def left_staged(emu, staged: int) -> int:
    """What giving up `staged` files leaves staged: nothing on S3 (the uploads are aborted);
    on Azure all of them, invisible, until Azure drops them a week later (it has no call that
    drops the staged blocks of a blob never committed)."""
    return 0 if emu.scheme == "s3" else staged


def fingerprint_of(df: pl.DataFrame, tmp_path: Path) -> tuple[int, int]:
    path = tmp_path / "expected.parquet"
    df.write_parquet(path)
    return fingerprint(path)


def test_azure_block_lists_commit_once_and_take_an_empty_file(emulators, cloud_env) -> None:
    """A block list committed twice (a commit repeated after a crash) gives the same blob;
    an empty file (no block: Azure takes none empty) commits as an empty blob."""
    from hygge.storage import ObjectStorage, blocks

    emu = emulators["az"]
    cloud_env(emu)
    bucket = emu.new_bucket()
    options = ObjectStorage.for_url(bucket).options
    written = {"two.bin": b"x" * (9 << 20), "empty.csv": b""}  # two blocks; none
    for name, data in written.items():
        staged = blocks.PendingBlocks(f"{bucket}/t/{name}", options)
        staged.write(data)
        staged.close()
        assert open_uploads(emu, f"{bucket}/t") == ([f"{bucket}/t/{name}"] if data else [])
        assert f"{bucket}/t/{name}" not in objects(emu, f"{bucket}/t")  # until committed
        blocks.complete(staged.record(), options)
        blocks.complete(staged.record(), options)  # again: nothing changes
    fs = emu.filesystem()
    for name, data in written.items():
        with fs.open_input_stream(f"{bucket.split('://', 1)[1]}/t/{name}") as got:
            assert got.read() == data
    assert open_uploads(emu, f"{bucket}/t") == []
