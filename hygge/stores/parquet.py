"""A parquet dataset folder, committed atomically."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from hygge.stores.files import FileStore, FileStoreSettings


class ParquetStoreSettings(FileStoreSettings):
    compression: Literal["zstd", "snappy", "gzip", "lz4", "brotli", "none"] = "zstd"
    compression_level: int | None = None
    row_group_size: int | None = None


class ParquetStore(FileStore):
    """Writes `part-*.parquet` files; the flow's row count is checked against their footers."""

    type_name = "parquet"
    suffixes: ClassVar[tuple[str, ...]] = (".parquet", ".pq")
    suffix = ".parquet"
    Settings: ClassVar[type[ParquetStoreSettings]] = ParquetStoreSettings
    settings: ParquetStoreSettings

    def open_writer(self, path: Any, schema: pa.Schema) -> pq.ParquetWriter:
        s = self.settings
        return pq.ParquetWriter(
            path, schema, compression=s.compression, compression_level=s.compression_level
        )

    def write_chunk(self, writer: pq.ParquetWriter, table: pa.Table) -> None:
        writer.write_table(table, row_group_size=self.settings.row_group_size)

    def count_rows(self, path: Any) -> int:
        return int(pq.read_metadata(path).num_rows)
