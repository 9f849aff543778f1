"""CSV files in, streamed block by block with pyarrow's incremental reader."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import pyarrow.csv as pacsv

from hygge.batching import rebatch
from hygge.errors import HomeError
from hygge.homes.files import FileHome, FileHomeSettings, rows_from_size

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
    settings: CsvHomeSettings

    def _open(self, path: Path) -> pacsv.CSVStreamingReader:
        try:
            return self._reader(path, self.settings.columns)
        except pa.ArrowKeyError:  # a `columns:` entry the header lacks: say which it has
            if not self.settings.columns:
                raise
            names = self._reader(path, None).schema.names
            missing = [c for c in self.settings.columns if c not in names]
            raise HomeError(
                f"{path}: column(s) {', '.join(missing)} not found",
                hint=f"available columns: {', '.join(names)}",
            ) from None

    def _reader(self, path: Path, columns: list[str] | None) -> pacsv.CSVStreamingReader:
        s = self.settings
        return pacsv.open_csv(
            self.source(path),
            read_options=pacsv.ReadOptions(
                block_size=BLOCK_BYTES, autogenerate_column_names=not s.has_header
            ),
            parse_options=pacsv.ParseOptions(delimiter=s.delimiter),
            convert_options=pacsv.ConvertOptions(
                include_columns=columns, null_values=s.null_values, strings_can_be_null=True
            ),
        )

    def file_schema(self, path: Path) -> pa.Schema:
        return self.opened(path, lambda: self._open(path)).schema

    def file_rows(self, path: Path) -> int | None:
        return rows_from_size(path, header_lines=1 if self.settings.has_header else 0)

    def read_file(self, path: Path, row_groups: list[int] | None = None) -> Iterator[pa.Table]:
        # row_groups: parquet's split of one file; line formats split by files only
        return rebatch(self.numbered(path, lambda: self._open(path)), self.batch_size)

    def parse_error(self, path: Path, rows_before: int, exc: pa.ArrowInvalid) -> HomeError:
        # pyarrow names the bad row by its text only; it lies after the rows already read.
        first = rows_before + (2 if self.settings.has_header else 1)
        found = re.search(r"^CSV parse error: (.*?): (.*)$", str(exc), re.S)
        line = _find_line(path, first, found.group(2)) if found else None
        if found is None or line is None:
            return super().parse_error(path, rows_before, exc)
        return HomeError(
            f"{path}, line {line:,}: {found.group(1)}",
            hint="every row must have the header's columns; fix or remove that line",
        )


def _find_line(path: Path, first: int, text: str) -> int | None:
    """The number of the first line from `first` on that starts with `text` (None: none)."""
    wanted = text.encode()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if number >= first and line.rstrip(b"\r\n").startswith(wanted):
                return number
    return None
