"""The parquet store dictionary-encodes the columns whose first rows repeat values, and
writes the rest plainly (hygge/stores/parquet.py `dictionary_columns`)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from hygge import Flow, ParquetHome, ParquetStore
from hygge.stores.parquet import dictionary_columns


def _encodings(path: Path) -> dict[str, set[str]]:
    meta = pq.read_metadata(path)
    return {
        meta.schema.column(i).name: set(meta.row_group(0).column(i).encodings)
        for i in range(meta.num_columns)
    }


def test_repeating_columns_get_a_dictionary_unique_ones_do_not(tmp_path: Path):
    rows = 50_000
    data = pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "flag": pa.array(["a", "b", "c"] * (rows // 3) + ["a"] * (rows % 3)),
            "note": pa.array([f"note {i}" for i in range(rows)]),
            "day": pa.array([i % 365 for i in range(rows)], pa.int32()).cast(pa.date32()),
        }
    )
    assert dictionary_columns(data) == ["flag", "day"]
    source = tmp_path / "in.parquet"
    pq.write_table(data, source)
    Flow(ParquetHome("in", path=str(source)), ParquetStore("out", path=str(tmp_path / "out"))).run()
    (written,) = (tmp_path / "out").glob("*.parquet")
    assert pq.read_table(written).cast(data.schema).equals(data)  # only the encoding differs
    encodings = _encodings(written)
    assert "RLE_DICTIONARY" in encodings["flag"] and "RLE_DICTIONARY" in encodings["day"]
    assert "RLE_DICTIONARY" not in encodings["id"] and "RLE_DICTIONARY" not in encodings["note"]


def test_few_rows_or_nested_columns_keep_parquets_default():
    assert dictionary_columns(pa.table({"id": range(100)})) is True
    nested = pa.table({"l": pa.array([[i] for i in range(20_000)])})
    assert dictionary_columns(nested) is True


def test_an_extension_column_is_judged_by_its_storage():
    from hygge.sql.types import UUID, as_extension

    values = pa.array(["00000000-0000-0000-0000-000000000001"] * 20_000)
    table = pa.table({"u": as_extension(pa.chunked_array([values]), UUID)})
    assert dictionary_columns(table) == ["u"]


def test_decimals_of_up_to_18_digits_are_stored_as_integers(tmp_path: Path) -> None:
    """Parquet's INT32/INT64 decimals, not 16-byte arrays; read back as the same decimals."""
    values = [Decimal("-9999999999999.99"), None, Decimal("0.01")]
    data = pa.table(
        {
            "small": pa.array([Decimal("1.5"), None, Decimal("-0.5")], pa.decimal128(9, 1)),
            "price": pa.array(values, pa.decimal128(15, 2)),
            "wide": pa.array(values, pa.decimal128(30, 2)),
        }
    )
    source = tmp_path / "in.parquet"
    pq.write_table(data, source)
    Flow(ParquetHome("in", path=str(source)), ParquetStore("out", path=str(tmp_path / "out"))).run()
    (written,) = (tmp_path / "out").glob("*.parquet")
    assert pq.read_table(written).equals(data)
    schema = pq.read_metadata(written).schema
    physical = {schema.column(i).name: schema.column(i).physical_type for i in range(3)}
    assert physical == {"small": "INT32", "price": "INT64", "wide": "FIXED_LEN_BYTE_ARRAY"}
