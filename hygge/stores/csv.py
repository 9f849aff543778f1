"""A folder of CSV files with a header row, committed atomically."""

from __future__ import annotations

from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.csv as pacsv

from hygge.stores.files import FileStore, FileStoreSettings


class CsvStoreSettings(FileStoreSettings):
    delimiter: str = ","
    include_header: bool = True


class CsvStore(FileStore):
    """Writes `part-*.csv` files."""

    type_name = "csv"
    suffixes: ClassVar[tuple[str, ...]] = (".csv",)
    suffix = ".csv"
    Settings: ClassVar[type[CsvStoreSettings]] = CsvStoreSettings
    settings: CsvStoreSettings

    def open_writer(self, path: Any, schema: pa.Schema) -> pacsv.CSVWriter:
        s = self.settings
        options = pacsv.WriteOptions(include_header=s.include_header, delimiter=s.delimiter)
        return pacsv.CSVWriter(path, schema, write_options=options)
