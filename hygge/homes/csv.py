"""CSV files in, streamed block by block with pyarrow's incremental reader."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import pyarrow.csv as pacsv

from hygge.batching import rebatch
from hygge.homes.files import FileHome, FileHomeSettings

BLOCK_BYTES = 16 << 20


class CsvHomeSettings(FileHomeSettings):
    delimiter: str = ","
    has_header: bool = True
    null_values: list[str] = ["", "NULL", "null"]


class CsvHome(FileHome):
    """CSV with a header row by default. Column types are inferred from the first block."""

    type_name = "csv"
    suffixes: ClassVar[tuple[str, ...]] = (".csv", ".tsv", ".csv.gz")
    Settings: ClassVar[type[CsvHomeSettings]] = CsvHomeSettings

    def _open(self, path: Path) -> pacsv.CSVStreamingReader:
        s = self.settings
        return pacsv.open_csv(
            self.source(path),
            read_options=pacsv.ReadOptions(
                block_size=BLOCK_BYTES, autogenerate_column_names=not s.has_header
            ),
            parse_options=pacsv.ParseOptions(delimiter=s.delimiter),
            convert_options=pacsv.ConvertOptions(
                include_columns=s.columns, null_values=s.null_values, strings_can_be_null=True
            ),
        )

    def file_schema(self, path: Path) -> pa.Schema:
        return self._open(path).schema

    def read_file(self, path: Path) -> Iterator[pa.Table]:
        return rebatch(self._open(path), self.batch_size)
