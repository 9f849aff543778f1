"""The storage layer against real emulator servers: every operation on every scheme."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from hygge.errors import ConfigError
from hygge.storage import Location, ObjectStorage, is_object_url
from hygge.storage.objects import StorageError


def test_urls_are_parsed_per_cloud():
    assert Location.parse("s3://b/x/y/").fs_path == "b/x/y"
    adls = Location.parse("abfss://lake@acct.dfs.core.windows.net/events")
    assert (adls.cloud, adls.bucket, adls.account, adls.key) == ("azure", "lake", "acct", "events")
    assert adls.child("lake/events/a.parquet") == (
        "abfss://lake@acct.dfs.core.windows.net/events/a.parquet"
    )
    assert is_object_url("gs://b/k") and not is_object_url("file:///tmp/x")
    assert not is_object_url("data/x.parquet")
    with pytest.raises(ConfigError, match="unsupported storage scheme 'ftp://'"):
        Location.parse("ftp://host/x")


@pytest.mark.parametrize("scheme", ["s3", "az", "gs"])
def test_every_operation(scheme, emulators, cloud_env):
    emu = emulators[scheme]
    cloud_env(emu)
    bucket = emu.new_bucket()
    store = ObjectStorage.for_url(bucket)
    table = pa.table({"x": list(range(200_000)), "s": [str(i) for i in range(200_000)]})
    with store.open_output(f"{bucket}/d/2026-01/a.parquet") as f:
        pq.write_table(table, f)
    store.write_bytes(f"{bucket}/d/2026-02/b.txt", b"hello")
    store.write_bytes(f"{bucket}/other/c.txt", b"x")

    listed = store.list(f"{bucket}/d")
    assert [e.url for e in listed] == [f"{bucket}/d/2026-01/a.parquet", f"{bucket}/d/2026-02/b.txt"]
    assert listed[1].size == 5
    assert [e.url for e in store.glob(f"{bucket}/d/2026-*/*.parquet")] == [listed[0].url]
    assert [e.url for e in store.glob(f"{bucket}/**/*.txt")] == [
        f"{bucket}/d/2026-02/b.txt",
        f"{bucket}/other/c.txt",
    ]
    assert pq.ParquetFile(store.open_input(listed[0].url)).metadata.num_rows == 200_000
    assert store.read_bytes(f"{bucket}/d/2026-02/b.txt") == b"hello"
    assert store.read_bytes(f"{bucket}/nothing") is None

    store.copy(f"{bucket}/other/c.txt", f"{bucket}/copied.txt")
    store.delete(f"{bucket}/other/c.txt")
    store.delete(f"{bucket}/other/c.txt")  # idempotent
    assert store.read_bytes(f"{bucket}/copied.txt") == b"x"
    assert store.info(f"{bucket}/other/c.txt") is None
    store.delete_prefix(f"{bucket}/d")
    assert store.list(f"{bucket}/d") == []
    # independent check with a separate client (pyarrow may leave empty folder markers)
    root = bucket.split("://")[1]
    infos = emu.filesystem().get_file_info(pafs.FileSelector(root, recursive=True))
    assert [i.path for i in infos if i.type == pafs.FileType.File] == [f"{root}/copied.txt"]


def test_unknown_bucket_is_a_clear_error(emulators, cloud_env):
    cloud_env(emulators["s3"])
    store = ObjectStorage.for_url("s3://no-such-bucket-hygge/x")
    with pytest.raises(StorageError, match=r"no-such-bucket-hygge.*does not exist"):
        store.check_bucket()
