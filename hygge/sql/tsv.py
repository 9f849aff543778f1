"""Arrow -> MySQL/MariaDB `LOAD DATA` text, column at a time in Arrow (no per-row Python).

Format: tab-separated, newline-terminated, backslash escapes, `\\N` for NULL; binary columns
travel as hex and are decoded by the load statement (`UNHEX`).
"""

from __future__ import annotations

from typing import cast

import pyarrow as pa
import pyarrow.compute as pc

from hygge.errors import StoreError
from hygge.sql.types import _storage, family

_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"), ("\x00", "\\0"))


def encode(table: pa.Table) -> bytes:
    """The rows of `table` as LOAD DATA text (columns in table order)."""
    if table.num_rows == 0:
        return b""
    columns = [_text(table.column(i), name) for i, name in enumerate(table.column_names)]
    tab, newline, empty = (pa.scalar(c, pa.large_string()) for c in ("\t", "\n", ""))
    lines = pc.binary_join_element_wise(*columns, tab)
    lines = pc.binary_join_element_wise(lines, newline, empty)
    array = lines.combine_chunks() if isinstance(lines, pa.ChunkedArray) else lines
    array = array.cast(pa.large_string())
    offsets = array.buffers()[1]
    data = array.buffers()[2]
    start = pa.Array.from_buffers(pa.int64(), 1, [None, offsets], offset=array.offset)[0]
    end = pa.Array.from_buffers(pa.int64(), 1, [None, offsets], offset=array.offset + len(array))[0]
    return cast(bytes, data.slice(start.as_py(), end.as_py() - start.as_py()).to_pybytes())


def _text(column: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    kind = family(column.type)
    column = _storage(column)
    if kind == "bool":
        text = column.cast(pa.int8()).cast(pa.large_string())
    elif kind == "float":
        if pc.any(pc.invert(pc.is_finite(column))).as_py():
            raise StoreError(
                f"column '{name}': MySQL/MariaDB cannot store NaN or infinity",
                hint="replace them with NULL in the source",
            )
        text = column.cast(pa.large_string())
    elif kind == "timestamptz":
        text = column.cast(pa.timestamp(column.type.unit)).cast(pa.large_string())
    elif kind == "duration":
        text = _duration_text(column)
    elif kind == "binary":
        text = pa.array(
            [None if b is None else b.hex() for b in column.to_pylist()], pa.large_string()
        )
    elif kind in ("text", "json", "uuid", "decimal") and (
        pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    ):
        text = column.cast(pa.large_string())
        for raw, escaped in _ESCAPES:
            if pc.any(pc.match_substring(text, raw)).as_py():
                text = pc.replace_substring(text, raw, escaped)
    else:
        text = column.cast(pa.large_string())
    return pc.fill_null(text, pa.scalar("\\N", pa.large_string()))


def _duration_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Durations as MySQL TIME text, '-838:59:59.500000' (hours past 24 included)."""
    micros = column.cast(pa.duration("us")).cast(pa.int64())
    left = pc.abs_checked(micros)
    fields = []
    for unit, width in ((3_600_000_000, 1), (60_000_000, 2), (1_000_000, 2), (1, 6)):
        amount = pc.divide(left, unit)  # integer division of non-negative values
        left = pc.subtract(left, pc.multiply(amount, unit))
        fields.append(pc.utf8_lpad(amount.cast(pa.large_string()), width, "0"))
    sign = pc.if_else(pc.less(micros, 0), "-", "").cast(pa.large_string())
    colon, dot, empty = (pa.scalar(c, pa.large_string()) for c in (":", ".", ""))
    return pc.binary_join_element_wise(
        sign, fields[0], colon, fields[1], colon, fields[2], dot, fields[3], empty
    )
