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


def delta_schema(schema: pa.Schema) -> pa.Schema:
    """The Arrow schema a Delta table stores for `schema`: Delta's types (no unsigned
    integers, plain strings) and timestamps in microseconds, nullable columns."""
    from deltalake import Schema

    normal = pa.schema(Schema.from_arrow(schema).to_arrow())
    fields = []
    for f in normal:
        t = f.type
        if pa.types.is_timestamp(t) and t.unit != "us":
            t = pa.timestamp("us", t.tz)
        fields.append(pa.field(f.name, t))
    return pa.schema(fields)


def same_columns(a: pa.Schema, b: pa.Schema) -> bool:
    return [(f.name, f.type) for f in a] == [(f.name, f.type) for f in b]


class DataFiles:
    """Parquet data files for one commit, rolled at about `target_size` bytes."""

    def __init__(
        self,
        uri: str,
        schema: pa.Schema,
        target_size: int,
        storage_options: Mapping[str, str] | None,
    ) -> None:
        self.uri = uri.rstrip("/")
        self.schema = schema
        self.target_size = target_size
        self.remote = is_object_url(self.uri)
        self._storage = ObjectStorage.for_url(self.uri, storage_options) if self.remote else None
        self._run = uuid.uuid4().hex
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
        name = f"part-{len(self._names):05d}-{self._run}-c000.zstd.parquet"
        self._names.append(name)
        if self._storage is not None:
            self._sink = self._storage.open_output(join(self.uri, name))
        else:
            os.makedirs(self.uri, exist_ok=True)
            self._sink = pafs.LocalFileSystem().open_output_stream(os.path.join(self.uri, name))
        self._writer = pq.ParquetWriter(self._sink, self.schema, compression="zstd")

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

    def add_actions(self) -> list[Any]:
        from deltalake.transaction import AddAction

        now = int(time.time() * 1000)
        return [
            AddAction(name, size, {}, now, True, json.dumps({"numRecords": rows}))
            for name, size, rows in zip(self._names, self._sizes, self.row_counts(), strict=True)
        ]

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
