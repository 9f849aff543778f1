"""The baseline: a raw pyarrow streaming parquet copy (iter_batches -> ParquetWriter)."""

from __future__ import annotations

import sys

import pyarrow.parquet as pq


def copy(source: str, target: str, batch_size: int, compression: str) -> int:
    reader = pq.ParquetFile(source)
    rows = 0
    with pq.ParquetWriter(target, reader.schema_arrow, compression=compression) as writer:
        for batch in reader.iter_batches(batch_size=batch_size):
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


if __name__ == "__main__":
    src, dst, size, codec = sys.argv[1:5]
    copy(src, dst, int(size), codec)
