"""Newline-delimited JSON in, streamed block by block."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import pyarrow.json as pajson

from hygge.batching import rebatch
from hygge.homes.files import FileHome

BLOCK_BYTES = 16 << 20


class NdjsonHome(FileHome):
    """One JSON object per line. Types are inferred from the first block."""

    type_name = "ndjson"
    suffixes: ClassVar[tuple[str, ...]] = (".ndjson", ".jsonl", ".json")

    def _open(self, path: Path) -> pajson.JSONStreamingReader:
        return pajson.open_json(
            self.source(path), read_options=pajson.ReadOptions(block_size=BLOCK_BYTES)
        )

    def file_schema(self, path: Path) -> pa.Schema:
        return self._open(path).schema

    def read_file(self, path: Path) -> Iterator[pa.Table]:
        batches = self._open(path)
        if self.settings.columns:
            batches = (b.select(self.settings.columns) for b in batches)
        return rebatch(batches, self.batch_size)
