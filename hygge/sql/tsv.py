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


def encode(table: pa.Table) -> pa.Buffer:
    """The rows of `table` as LOAD DATA text (columns in table order), in one Arrow buffer
    (written to the file as it is: no copy into Python bytes)."""
    if table.num_rows == 0:
        return pa.py_buffer(b"")
    columns = [_text(table.column(i), name) for i, name in enumerate(table.column_names)]
    tab, newline, empty = (pa.scalar(c, pa.large_string()) for c in ("\t", "\n", ""))
    # the newline joins the last column only: one pass over the whole rows, not two
    columns[-1] = pc.binary_join_element_wise(columns[-1], newline, empty)
    lines = pc.binary_join_element_wise(*columns, tab)
    array = lines.combine_chunks() if isinstance(lines, pa.ChunkedArray) else lines
    array = array.cast(pa.large_string())
    offsets = array.buffers()[1]
    data = array.buffers()[2]
    start = pa.Array.from_buffers(pa.int64(), 1, [None, offsets], offset=array.offset)[0]
    end = pa.Array.from_buffers(pa.int64(), 1, [None, offsets], offset=array.offset + len(array))[0]
    return cast(pa.Buffer, data.slice(start.as_py(), end.as_py() - start.as_py()))


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
        text = _escape(column.cast(pa.large_string()))
    else:
        text = column.cast(pa.large_string())
    return pc.fill_null(text, pa.scalar("\\N", pa.large_string()))


def _escape(text: pa.ChunkedArray) -> pa.ChunkedArray:
    """LOAD DATA's special characters backslash-escaped. Most values hold none: a scan of
    each chunk's bytes, as one byte array, says which occur (a substring search per value
    and character cost more than the rest of a text column's encoding); only those are
    replaced. UTF-8 never holds these bytes inside another character, so the scan is exact,
    except that bytes outside a sliced chunk may match: then the replace changes nothing."""
    chunks = []
    for chunk in text.chunks:
        data = chunk.buffers()[2]
        if data is not None and data.size:
            octets = pa.Array.from_buffers(pa.uint8(), data.size, [None, data])
            span = pc.min_max(octets)
            low, high = span["min"].as_py(), span["max"].as_py()
            for raw, escaped in _ESCAPES:
                code = pa.scalar(ord(raw), pa.uint8())
                if low <= code.as_py() <= high and pc.any(pc.equal(octets, code)).as_py():
                    chunk = pc.replace_substring(chunk, raw, escaped)
        chunks.append(chunk)
    return pa.chunked_array(chunks, pa.large_string())


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
