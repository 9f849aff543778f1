"""Data files of a Delta commit, written straight into the table's folder while the flow runs.

Files a Delta log does not list are invisible to every Delta reader, so they can be written
in place (streamed: S3 multipart, local file) and only become part of the table when
`commit()` adds them to the log. Nothing is held in memory beyond the batch being written.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from hygge.storage import ObjectStorage, is_object_url, join

_SIGNED = {8: pa.int16(), 16: pa.int32(), 32: pa.int64(), 64: pa.int64()}


def delta_schema(schema: pa.Schema) -> pa.Schema:
    """`schema` with what a Delta table cannot store changed: timestamps in microseconds,
    unsigned integers as the next wider signed type (a uint64 beyond int64 fails the safe
    cast), string/binary views as large string/binary. Everything else is kept, so batches
    are written without a copy."""
    fields = []
    for f in schema:
        t = f.type
        if pa.types.is_timestamp(t) and t.unit != "us":
            t = pa.timestamp("us", t.tz)
        elif pa.types.is_unsigned_integer(t):
            t = _SIGNED[t.bit_width]
        elif pa.types.is_string_view(t):
            t = pa.large_string()
        elif pa.types.is_binary_view(t):
            t = pa.large_binary()
        fields.append(pa.field(f.name, t))
    return pa.schema(fields)


def _family(t: pa.DataType) -> pa.DataType:
    """Types Delta does not tell apart (string and large string are both `string`)."""
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", t.tz)
    return t


def same_columns(a: pa.Schema, b: pa.Schema) -> bool:
    """Same column names, order and Delta types."""
    return [(f.name, _family(f.type)) for f in a] == [(f.name, _family(f.type)) for f in b]


class DataFiles:
    """Parquet data files for one commit, rolled at about `target_size` bytes."""

    def __init__(
        self,
        uri: str,
        schema: pa.Schema,
        target_size: int,
        storage_options: Mapping[str, str] | None,
        run_prefix: str = "",
    ) -> None:
        self.uri = uri.rstrip("/")
        self.schema = schema
        self.target_size = target_size
        self.remote = is_object_url(self.uri)
        self._storage = ObjectStorage.for_url(self.uri, storage_options) if self.remote else None
        # 32 hex digits in the name, as Delta writers use; a partitioned flow run's files
        # share a prefix so its parts' leftovers can be found (`run_prefix`).
        self._run = (run_prefix + uuid.uuid4().hex)[:32]
        self._names: list[str] = []
        self._sizes: list[int] = []
        self._writer: pq.ParquetWriter | None = None
        self._sink: pa.NativeFile | None = None

    def write(self, table: pa.Table) -> None:
        table = table.cast(self.schema)  # safe cast: overflow or a lossy change is an error
        if self._writer is None:
            self._start()
        assert self._writer is not None and self._sink is not None
        self._writer.write_table(table)
        if self._sink.tell() >= self.target_size:
            self.close()

    def _start(self) -> None:
        name = f"part-{len(self._names):05d}-{self._run}-c000.snappy.parquet"
        self._names.append(name)
        if self._storage is not None:
            self._sink = self._storage.open_output(join(self.uri, name))
        else:
            os.makedirs(self.uri, exist_ok=True)
            self._sink = pafs.LocalFileSystem().open_output_stream(os.path.join(self.uri, name))
        # snappy: the Delta ecosystem's default (delta-rs, Spark), cheapest to write
        self._writer = pq.ParquetWriter(self._sink, self.schema, compression="snappy")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._sink is not None:
            self._sizes.append(self._sink.tell())
            self._sink.close()  # completes the upload
            self._sink = None

    def _open(self, name: str) -> Any:
        if self._storage is not None:
            return self._storage.open_input(join(self.uri, name))
        return os.path.join(self.uri, name)

    def row_counts(self) -> list[int]:
        """Rows per file, read back from each file's footer (not from what was passed in)."""
        self.close()
        return [pq.read_metadata(self._open(n)).num_rows for n in self._names]

    def written(self) -> list[tuple[str, int, int]]:
        """(name, bytes, rows) of every file, rows read back from the footers."""
        return list(zip(self._names, self._sizes, self.row_counts(), strict=True))

    def add_actions(self) -> list[Any]:
        return add_actions(self.written())

    def discard(self) -> None:
        """Delete the files (they were never committed, so no reader ever saw them)."""
        with contextlib.suppress(Exception):
            self.close()
        for name in self._names:
            with contextlib.suppress(Exception):
                if self._storage is not None:
                    self._storage.delete(join(self.uri, name))
                else:
                    os.unlink(os.path.join(self.uri, name))
        self._names, self._sizes = [], []


def add_actions(files: list[tuple[str, int, int]]) -> list[Any]:
    """Delta `add` actions for written files: (name, bytes, rows)."""
    from deltalake.transaction import AddAction

    now = int(time.time() * 1000)
    return [
        AddAction(name, size, {}, now, True, json.dumps({"numRecords": rows}))
        for name, size, rows in files
    ]
