"""Baselines for bench_objectstore: the same moves done directly with pyarrow / deltalake.

    python -m benchmarks.raw_objectstore upload SRC URL          # the file's bytes, as they are
    python -m benchmarks.raw_objectstore reencode SRC URL BATCH  # iter_batches -> ParquetWriter
    python -m benchmarks.raw_objectstore download URL DST BATCH  # S3 parquet -> local parquet
    python -m benchmarks.raw_objectstore delta SRC URI BATCH     # write_deltalake(reader)

Endpoint and credentials from the standard AWS_* variables, as hygge takes them.
"""

from __future__ import annotations

import sys

import pyarrow as pa
import pyarrow.parquet as pq

from hygge.storage import Location, ObjectStorage
from hygge.storage.credentials import delta_storage_options, resolve

CODEC = "zstd"


def upload(src: str, url: str) -> None:
    storage = ObjectStorage.for_url(url)
    with open(src, "rb") as f, storage.open_output(url) as out:
        while chunk := f.read(8 << 20):
            out.write(chunk)


def reencode(src: str, url: str, batch: int) -> None:
    reader = pq.ParquetFile(src, pre_buffer=False)
    with (
        ObjectStorage.for_url(url).open_output(url) as out,
        pq.ParquetWriter(out, reader.schema_arrow, compression=CODEC) as writer,
    ):
        for b in reader.iter_batches(batch_size=batch):
            writer.write_batch(b)


def download(url: str, dst: str, batch: int) -> None:
    """The fastest bounded-memory way found: one pre-buffered row group at a time."""
    source = ObjectStorage.for_url(url).open_input(url)
    metadata = pq.ParquetFile(source).metadata
    with pq.ParquetWriter(dst, metadata.schema.to_arrow_schema(), compression=CODEC) as writer:
        for index in range(metadata.num_row_groups):
            group = pq.ParquetFile(source, pre_buffer=True, metadata=metadata)
            for b in group.iter_batches(batch_size=batch, row_groups=[index]):
                writer.write_batch(b)


def delta(src: str, uri: str, batch: int) -> None:
    from deltalake import write_deltalake

    reader = pq.ParquetFile(src, pre_buffer=False)
    batches = pa.RecordBatchReader.from_batches(
        reader.schema_arrow, reader.iter_batches(batch_size=batch)
    )
    options = delta_storage_options(Location.parse(uri), resolve({}))
    write_deltalake(
        uri, batches, mode="overwrite", storage_options=options, target_file_size=128 << 20
    )


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "upload":
        upload(args[0], args[1])
    elif command == "reencode":
        reencode(args[0], args[1], int(args[2]))
    elif command == "download":
        download(args[0], args[1], int(args[2]))
    elif command == "delta":
        delta(args[0], args[1], int(args[2]))
    else:
        raise SystemExit(__doc__)
