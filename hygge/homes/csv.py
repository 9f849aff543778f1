"""CSV files in, streamed block by block with pyarrow's incremental reader."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from pydantic import Field

from hygge.batching import rebatch
from hygge.errors import HomeError
from hygge.homes.files import FileHome, FileHomeSettings, rows_from_size

BLOCK_BYTES = 16 << 20


class CsvHomeSettings(FileHomeSettings):
    delimiter: str = ","
    has_header: bool = True
    null_values: list[str] = ["", "NULL", "null"]
    block_size: int = Field(
        BLOCK_BYTES,
        ge=1 << 10,
        description="Bytes parsed at a time (16 MiB); a row must fit in one block: raise it "
        "for fields larger than that.",
    )


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
                block_size=s.block_size, autogenerate_column_names=not s.has_header
            ),
            parse_options=pacsv.ParseOptions(delimiter=s.delimiter),
            convert_options=pacsv.ConvertOptions(
                include_columns=columns, null_values=s.null_values, strings_can_be_null=True
            ),
        )

    def file_schema(self, path: Path) -> pa.Schema:
        return self.opened(path, lambda: self._open(path)).schema

    def reader(self, path: Path) -> str:
        s = self.settings
        where = "a stream over the object" if not isinstance(path, Path) else "the file"
        return (
            f"pyarrow's streaming CSV reader on {where} (blocks of {s.block_size:,} bytes, "
            f"delimiter {s.delimiter!r}, {'a header row' if s.has_header else 'no header'})"
        )

    def file_rows(self, path: Path) -> int | None:
        return rows_from_size(path, header_lines=1 if self.settings.has_header else 0)

    def read_file(self, path: Path, row_groups: list[int] | None = None) -> Iterator[pa.Table]:
        # row_groups: parquet's split of one file; line formats split by files only
        batches = self._quotes_closed(path, self.numbered(path, lambda: self._open(path)))
        return rebatch(batches, self.batch_size)

    def _quotes_closed(
        self, path: Path, batches: Iterator[pa.RecordBatch]
    ) -> Iterator[pa.RecordBatch]:
        """The batches, refusing a quote left open at the end of the file. Values never hold
        a line break here (`newlines_in_values` is off), except where pyarrow, at the end of
        the file, lets an open quote swallow the lines after it into one text value."""
        rows = 0
        for batch in batches:
            for column in batch.columns:
                if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                    broken = pc.index(pc.match_substring(column, "\n"), True).as_py()
                    if broken >= 0:
                        line = rows + broken + (2 if self.settings.has_header else 1)
                        raise HomeError(
                            f"{path}, line {line:,}: a quoted field is never closed (its "
                            "quote runs to the end of the file)",
                            hint='close the quote, or double a quote inside a field ("")',
                        )
            rows += batch.num_rows
            yield batch

    def parse_error(self, path: Path, rows_before: int, exc: pa.ArrowInvalid) -> HomeError:
        # pyarrow names the bad row by its text only; it lies after the rows already read.
        first = rows_before + (2 if self.settings.has_header else 1)
        if "straddles two block boundaries" in str(exc):
            return HomeError(
                f"{path}: a row after line {first - 1:,} is larger than `block_size` "
                f"({self.settings.block_size:,} bytes), the most the reader parses at once",
                hint="raise `block_size` on this home (e.g. block_size: 268435456), or check "
                "for a quote that is never closed",
            )
        if "out of sync with chunker" in str(exc):
            line = _open_quote_line(path, first)
            where = f"line {line:,}" if line else f"after line {first - 1:,}"
            return HomeError(
                f"{path}, {where}: a quoted field is never closed, or holds a line break",
                hint='close the quote, or double a quote inside a field ("")',
            )
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


def _open_quote_line(path: Path, first: int) -> int | None:
    """The first line from `first` on holding an odd number of quotes: where a quoted
    field opens and is not closed (None: no such line)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if number >= first and line.count(b'"') % 2:
                return number
    return None
