"""Delete markers of a snapshot run: the keys the last run saw and this one did not.

Both key sets are parquet files of the key columns (the last run's kept with the data, this
run's staged). They are split by a hash of the key into buckets spilled to a local
temporary folder, then compared bucket by bucket, so memory follows the bucket size, not the
table. The hash only needs to agree within this one comparison: both sides are split here.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from hygge.stores import _landing as lz


def stage(
    tree: lz.Tree,
    *,
    previous: str,
    current: str,
    key: list[str],
    schema: pa.Schema | None,
    target: str,
    per_bucket: int,
) -> bool:
    """Write the delete markers to `target`; False (nothing written) when no key is gone."""
    before, now = _parquet(tree, previous), _parquet(tree, current)
    if before is None or before.metadata.num_rows == 0:
        return False
    rows = max(before.metadata.num_rows, now.metadata.num_rows if now else 0)
    buckets = max(1, math.ceil(rows / per_bucket))
    writer: pq.ParquetWriter | None = None
    stream: Any = None
    try:
        with tempfile.TemporaryDirectory(prefix="hygge-keys-") as spill:
            old = _split(before, key, buckets, Path(spill) / "old")
            new = _split(now, key, buckets, Path(spill) / "new") if now else {}
            for bucket in range(buckets):
                gone = _read(old.get(bucket))
                if gone is None or gone.is_empty():
                    continue
                seen = _read(new.get(bucket))
                if seen is not None and not seen.is_empty():
                    gone = gone.join(seen, on=key, how="anti", nulls_equal=True)
                if gone.is_empty():
                    continue
                table = delete_rows(gone, schema)
                if writer is None:
                    stream = tree.open_output(target)
                    writer = pq.ParquetWriter(stream, table.schema)
                writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
        if stream is not None:
            stream.close()
    return writer is not None


def delete_rows(keys: pl.DataFrame, schema: pa.Schema | None) -> pa.Table:
    """Delete markers in the data files' schema: the key columns, the others null (Fabric
    needs only the keys), `__rowMarker__` 2 last."""
    marker = pa.array([lz.DELETE] * keys.height, pa.int32())
    table = keys.to_arrow(compat_level=pl.CompatLevel.oldest())
    if schema is None:  # this run wrote no rows: the keys alone
        return table.append_column(lz.MARKER, marker)
    columns = []
    for field in schema:
        if field.name == lz.MARKER:
            columns.append(marker)
        elif field.name in keys.columns:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(keys.height, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _parquet(tree: lz.Tree, rel: str) -> pq.ParquetFile | None:
    if not tree.exists(rel):
        return None
    return pq.ParquetFile(tree.fs.open_input_file(tree.path(rel)))


def _split(
    source: pq.ParquetFile, key: list[str], buckets: int, spill: Path
) -> dict[int, list[Path]]:
    """The keys of a file split by hash into bucket files (one per row group and bucket)."""
    spill.mkdir(parents=True, exist_ok=True)
    out: dict[int, list[Path]] = {}
    for group in range(source.metadata.num_row_groups):
        frame = pl.from_arrow(source.read_row_group(group, columns=key))
        assert isinstance(frame, pl.DataFrame)
        if buckets == 1:
            parts = {0: frame}
        else:
            bucketed = frame.with_columns(
                (pl.struct(key).hash(seed=0) % buckets).alias("__bucket__")
            )
            parts = {
                int(b[0]): f.drop("__bucket__")
                for b, f in bucketed.partition_by("__bucket__", as_dict=True).items()
            }
        for bucket, part in parts.items():
            file = spill / f"{bucket}-{group}.parquet"
            part.write_parquet(file)
            out.setdefault(bucket, []).append(file)
    return out


def _read(files: list[Path] | None) -> pl.DataFrame | None:
    if not files:
        return None
    return pl.concat([pl.read_parquet(f) for f in files])
