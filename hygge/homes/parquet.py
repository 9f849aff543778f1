"""Parquet files in, streamed row group by row group (memory bounded by the batch)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import pyarrow.parquet as pq

from hygge.homes.files import FileHome


class ParquetHome(FileHome):
    """One parquet file, a folder of them, or a glob; `columns` reads only those columns."""

    type_name = "parquet"
    suffixes: ClassVar[tuple[str, ...]] = (".parquet", ".pq")
    random_access = True

    def file_schema(self, path: Path) -> pa.Schema:
        return pq.read_schema(self.source(path))

    def file_rows(self, path: Path) -> int | None:
        return int(pq.read_metadata(self.source(path)).num_rows)  # exact, from the footer

    def read_file(
        self, path: Path, row_groups: list[int] | None = None
    ) -> Iterator[pa.RecordBatch]:
        source = self.source(path)
        if isinstance(source, pa.NativeFile):
            return self._read_remote(source, row_groups)
        # pre_buffer off: with it, pyarrow caches every column chunk it has read, so memory
        # grows with the file (measured: 230 MB at TPC-H SF1, 745 MB at SF3).
        reader = pq.ParquetFile(source, pre_buffer=False)
        batches: Iterator[pa.RecordBatch] = reader.iter_batches(
            batch_size=self.batch_size, row_groups=row_groups, columns=self.settings.columns
        )
        return batches

    def reader(self, path: Path) -> str:
        if self._remote is not None and isinstance(path, str):
            return "pyarrow.parquet, one row group at a time, pre-buffered (coalesced ranged reads)"
        return f"pyarrow.parquet, row groups streamed in batches of {self.batch_size:,} rows"

    def row_groups(self, path: Path) -> list[int]:
        metadata = pq.read_metadata(self.source(path))
        return [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]

    def _read_remote(
        self, source: pa.NativeFile, row_groups: list[int] | None = None
    ) -> Iterator[pa.RecordBatch]:
        """An object store answers each ranged GET with a round trip: pre-buffer one row
        group at a time (its column chunks fetched in a few coalesced requests), with a
        fresh reader per row group so the cache never holds more than one. Measured on
        moto, TPC-H SF1: 15 s instead of 120 s with one request per column page."""
        metadata = pq.ParquetFile(source, pre_buffer=False).metadata
        for index in row_groups if row_groups is not None else range(metadata.num_row_groups):
            group = pq.ParquetFile(source, pre_buffer=True, metadata=metadata)
            yield from group.iter_batches(
                batch_size=self.batch_size, row_groups=[index], columns=self.settings.columns
            )
