"""Newline-delimited JSON in, streamed block by block."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import pyarrow.json as pajson

from hygge.batching import rebatch
from hygge.errors import HomeError
from hygge.homes.files import FileHome, rows_from_size

BLOCK_BYTES = 16 << 20


class NdjsonHome(FileHome):
    """One JSON object per line. Types are inferred from the first block."""

    type_name = "ndjson"
    suffixes: ClassVar[tuple[str, ...]] = (".ndjson", ".jsonl", ".json")

    def _open(self, path: Path) -> pajson.JSONStreamingReader:
        return pajson.open_json(
            self.source(path), read_options=pajson.ReadOptions(block_size=BLOCK_BYTES)
        )

    def parse_error(self, path: Path, rows_before: int, exc: pa.ArrowInvalid) -> HomeError:
        # pyarrow counts rows from 0 within the block it was parsing: one row per line.
        found = re.search(r"^(.*?)\s*in row (\d+)$", str(exc))
        if not found:
            return super().parse_error(path, rows_before, exc)
        line = rows_before + int(found.group(2)) + 1
        return HomeError(
            f"{path}, line {line:,}: {found.group(1)}",
            hint="each line must be one complete JSON object; fix or remove that line",
        )

    def file_schema(self, path: Path) -> pa.Schema:
        return self.opened(path, lambda: self._open(path)).schema

    def file_rows(self, path: Path) -> int | None:
        return rows_from_size(path)

    def read_file(self, path: Path, row_groups: list[int] | None = None) -> Iterator[pa.Table]:
        # row_groups: parquet's split of one file; line formats split by files only
        batches = self.numbered(path, lambda: self._open(path))
        if self.settings.columns:
            batches = (b.select(self.settings.columns) for b in batches)
        return rebatch(batches, self.batch_size)
