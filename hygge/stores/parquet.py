"""A parquet dataset folder, committed atomically."""

from __future__ import annotations

import base64
from typing import Any, ClassVar, Literal

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hygge.stores.files import FileStore, FileStoreSettings

# Decimals of up to 18 digits as INT32/INT64, parquet's own encodings for them (Spark's
# default too), instead of 16-byte fixed-length arrays: readers get the same decimal128,
# lineitem's writing costs 11% less CPU (1.62 vs 1.82 s per 3 M rows) and the file is 3%
# smaller. pyarrow 18 added the option.
DECIMALS_AS_INTEGERS = (
    {"store_decimal_as_integer": True} if int(pa.__version__.split(".")[0]) >= 18 else {}
)


class ParquetStoreSettings(FileStoreSettings):
    compression: Literal["zstd", "snappy", "gzip", "lz4", "brotli", "none"] = "zstd"
    compression_level: int | None = None
    row_group_size: int | None = None
    # auto: a dictionary for the columns whose values repeat (see ParquetStore.first_batch)
    dictionary: Literal["auto", "all", "none"] = "auto"


class ParquetStore(FileStore):
    """Writes `part-*.parquet` files; the flow's row count is checked against their footers."""

    type_name = "parquet"
    suffixes: ClassVar[tuple[str, ...]] = (".parquet", ".pq")
    suffix = ".parquet"
    Settings: ClassVar[type[ParquetStoreSettings]] = ParquetStoreSettings
    settings: ParquetStoreSettings

    _dictionary: list[str] | bool = True
    _arrow: ArrowOutput

    def _reset(self) -> None:
        super()._reset()
        self._arrow = ArrowOutput()

    def arrow_compat(self, df: pl.DataFrame) -> pl.CompatLevel:
        return self._arrow.compat(df)

    def first_batch(self, table: pa.Table) -> None:
        """Choose, once per attempt: the schema the files declare (`ArrowOutput`) and the
        dictionary columns."""
        self._arrow.judge(table)
        self._choose_dictionary(table)

    def _choose_dictionary(self, table: pa.Table) -> None:
        """Dictionary-encode only the columns whose values repeat (`dictionary_columns`,
        unless the `dictionary` setting says all or none). A column of mostly distinct
        values gains nothing from a dictionary but its cost: on TPC-H lineitem the
        dictionary made its mostly-distinct columns 15-400% bigger and 30-150% slower to
        write than plain pages with the same zstd; the repetitive ones are 2-4x smaller."""
        if self.settings.dictionary != "auto":
            self._dictionary = self.settings.dictionary == "all"
            return
        self._dictionary = dictionary_columns(table)

    def open_writer(self, path: Any, schema: pa.Schema) -> pq.ParquetWriter:
        s = self.settings
        return self._arrow.open_writer(
            path,
            schema,
            compression=s.compression,
            compression_level=s.compression_level,
            use_dictionary=self._dictionary,
            **DECIMALS_AS_INTEGERS,
        )

    def write_chunk(self, writer: pq.ParquetWriter, table: pa.Table) -> None:
        writer.write_table(self._arrow.prepare(table), row_group_size=self.settings.row_group_size)

    def count_rows(self, path: Any) -> int:
        return int(pq.read_metadata(path).num_rows)


class ArrowOutput:
    """How polars' batches reach a parquet writer, for the stores that write parquet files
    (a parquet dataset, an Open Mirroring landing zone): judged on a run's first frame and
    first batch, then the same for every file of the run.

    Parquet stores a string column the same way whatever its Arrow type; only the Arrow
    schema kept in the footer says which type a reader gets back. Writing polars' views as
    they are and declaring the large types readers always got from hygge is cheaper (no copy
    of every string, a faster encoder) and gives byte-identical files (checked on TPC-H
    lineitem). Views nested in lists, structs or dictionaries are cast instead.
    """

    def __init__(self) -> None:
        self.views: bool | None = None  # polars' views handed on as they are (None: not judged)
        self.stored: pa.Schema | None = None  # the Arrow schema files declare, when not their own
        self.cast = False  # the batches are cast to `stored` (views nested in other types)

    def compat(self, df: pl.DataFrame) -> pl.CompatLevel:
        """Polars' own string and binary views, without a copy into the large types: the
        file still declares large_string/large_binary. Not where an extension type (hygge's
        uuid, numeric, json) would carry a view: its storage type is part of what the file
        declares, so those flows keep the large types."""
        if self.views is None:
            probe = df.head(0).to_arrow(compat_level=pl.CompatLevel.newest()).schema
            self.views = not any(_has_extension(f.type) for f in probe)
        return pl.CompatLevel.newest() if self.views else pl.CompatLevel.oldest()

    def judge(self, table: pa.Table) -> None:
        """The schema the files declare, from the first batch."""
        self.stored = declared_schema(table.schema)
        if self.stored.equals(table.schema):
            self.stored = None
        self.cast = any(
            _without_views(f.type) != f.type and not _is_view(f.type) for f in table.schema
        )

    def open_writer(self, sink: Any, schema: pa.Schema, **options: Any) -> pq.ParquetWriter:
        """A parquet writer for `schema` (the batches'), declaring the large types."""
        declared = self.stored
        if declared is not None and self.cast:
            schema, declared = declared, None  # nested views: written as the large types
        writer = pq.ParquetWriter(sink, schema, store_schema=declared is None, **options)
        if declared is not None:  # what pyarrow's writer stores for `declared`, as it does
            encoded = base64.b64encode(declared.serialize().to_pybytes()).decode()
            writer.add_key_value_metadata({"ARROW:schema": encoded})
        return writer

    def prepare(self, table: pa.Table) -> pa.Table:
        """A batch as the writer takes it."""
        return table.cast(self.stored) if self.cast and self.stored is not None else table


def declared_schema(schema: pa.Schema) -> pa.Schema:
    """`schema` with every string/binary view as the large type (what files declare)."""
    return pa.schema([f.with_type(_without_views(f.type)) for f in schema], schema.metadata)


# A column is dictionary-encoded when its first rows repeat values at least this much:
# dates, flags, codes, amounts of few values. Keys, prices and free text are not: parquet
# would hash every value to give up on the dictionary at 1 MB, and the file is larger for it.
DICTIONARY_MAX_DISTINCT = 0.05
JUDGE_ROWS = 10_000  # fewer first rows than this: parquet's default (every column)


def dictionary_columns(table: pa.Table) -> bool | list[str]:
    """The columns worth a dictionary, judged on the first 100,000 rows of `table`; True
    (every column, pyarrow's default) when there are too few rows or nested columns (whose
    dictionary settings go by leaf path)."""
    if table.num_rows < JUDGE_ROWS or any(pa.types.is_nested(f.type) for f in table.schema):
        return True
    sample = table.slice(0, 100_000)
    chosen = []
    for field, column in zip(sample.schema, sample.columns, strict=True):
        if _repeats(column):
            chosen.append(field.name)
    return chosen


def _repeats(column: pa.ChunkedArray) -> bool:
    """Whether a column's values repeat enough for a dictionary (an extension column by its
    storage, a view as its large type); a type Arrow cannot count keeps the default."""
    if pa.types.is_dictionary(column.type):  # a dictionary already
        return True
    try:
        chunks = [c.storage if isinstance(c, pa.ExtensionArray) else c for c in column.chunks]
        storage = pa.chunked_array(chunks, type=chunks[0].type if chunks else None)
        storage = storage.cast(_without_views(storage.type))
        distinct = pc.count_distinct(storage, mode="all").as_py()
    except (pa.ArrowException, TypeError):
        return True
    return bool(distinct <= DICTIONARY_MAX_DISTINCT * len(column))


def _is_view(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string_view(kind) or pa.types.is_binary_view(kind))


def _without_views(kind: pa.DataType) -> pa.DataType:
    """`kind` with every string/binary view (at any depth) as the large type."""
    if pa.types.is_string_view(kind):
        return pa.large_string()
    if pa.types.is_binary_view(kind):
        return pa.large_binary()
    if pa.types.is_large_list(kind):
        return pa.large_list(kind.value_field.with_type(_without_views(kind.value_type)))
    if pa.types.is_list(kind):
        return pa.list_(kind.value_field.with_type(_without_views(kind.value_type)))
    if pa.types.is_fixed_size_list(kind):
        field = kind.value_field.with_type(_without_views(kind.value_type))
        return pa.list_(field, kind.list_size)
    if pa.types.is_struct(kind):
        return pa.struct([f.with_type(_without_views(f.type)) for f in kind.fields])
    if pa.types.is_dictionary(kind):
        return pa.dictionary(kind.index_type, _without_views(kind.value_type), kind.ordered)
    return kind


def _has_extension(kind: pa.DataType) -> bool:
    """Whether `kind` is, or holds at any depth, an extension type."""
    if isinstance(kind, pa.BaseExtensionType):
        return True
    if pa.types.is_struct(kind):
        return any(_has_extension(f.type) for f in kind.fields)
    if pa.types.is_dictionary(kind):
        return _has_extension(kind.value_type)
    if pa.types.is_map(kind):
        return _has_extension(kind.key_type) or _has_extension(kind.item_type)
    value = getattr(kind, "value_type", None)  # the list types
    return value is not None and _has_extension(value)
