"""The stable row hash of `shape.hash_key` and of `unique`'s key set: XXH64 (seed 0) of a
row's key bytes, the same on every machine, process, run and release.

A row's key bytes are one 8-byte little-endian lane per column, then one lane of null flags
(bit i set when column i is null; one more lane per further 64 columns). A column's lane is:

- integers, booleans, dates, times, datetimes, durations: the value as a 64-bit integer (dates
  in days since 1970-01-01, the others in their own unit; so Int32 7 and Int64 7 agree);
- floats: the bits of the value as a float64 (-0.0 taken as 0.0, every NaN as one NaN);
- text, binary, categoricals, decimals: the XXH64 of the value's bytes (UTF-8; a decimal's
  text, e.g. "12.50");
- a null: 0 (its flag tells it from a 0).

So `xxhash.xxh64_intdigest(struct.pack("<qqQ", orderkey, linenumber, 0))` recomputes the key of
two non-null integer columns anywhere. Fixed-width values are hashed from their values, not
their text: no formatting to depend on, and about twice as fast (before 2026-12 the key was
the XXH64 of the columns' text joined by \\x1f; docs/shape.md says what changed). polars' own
`hash` is not used: polars says it may change between its releases.

The lanes are mixed with pyarrow's compute kernels (wrapping 64-bit arithmetic, one pass per
step over a batch), text with polars-hash's XXH64; hygge/tests check both against XXH64.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

_MASK = 2**64 - 1
_P1, _P2, _P3, _P4, _P5 = (
    0x9E3779B185EBCA87,
    0xC2B2AE3D27D4EB4F,
    0x165667B19E3779F9,
    0x85EBCA77C2B2AE63,
    0x27D4EB2F165667C5,
)
_U64 = pa.uint64()
# A column's 64-bit lanes (a scalar when the same for every row).
Lane: TypeAlias = "pa.Array[Any] | pa.Scalar[Any]"


class HashTypeError(TypeError):
    """A column of a type the row hash does not take (lists, structs, objects)."""


def _u(value: int) -> pa.Scalar:
    return pa.scalar(value & _MASK, _U64)


def hash_expr(columns: list[str]) -> pl.Expr:
    """The row hash of these columns (UInt64), as an expression: one pass per batch."""
    return pl.struct(columns).map_batches(
        lambda s: row_hash(s.struct.unnest()), return_dtype=pl.UInt64
    )


def row_hash(df: pl.DataFrame) -> pl.Series:
    """The row hash of every row of `df` (all its columns, in order), as UInt64."""
    lanes: list[Lane] = []
    flags: list[Lane] = []
    for i, column in enumerate(df.get_columns()):
        if i % 64 == 0:
            flags.append(_u(0))
        lanes.append(_lane(column))
        if column.null_count():
            bit = column.is_null().cast(pl.UInt64) * (1 << (i % 64))
            flags[-1] = pc.bit_wise_or(flags[-1], _arrow(bit))
    out = xxh64(lanes + flags, df.height)
    return pl.Series("hash", out, dtype=pl.UInt64)


def check_type(name: str, dtype: pl.DataType) -> None:
    """Raise HashTypeError for a column the row hash does not take."""
    if dtype.is_nested() or dtype == pl.Object:
        raise HashTypeError(f"cannot hash column '{name}' of type {dtype}")


def _lane(column: pl.Series) -> Lane:
    """A column's 64-bit lane per row (see the module docstring); nulls as 0."""
    dtype = column.dtype
    check_type(column.name, dtype)
    if dtype == pl.Null:
        return _u(0)
    if dtype == pl.UInt64:
        return _arrow(column.fill_null(0))
    if dtype.is_integer() or dtype == pl.Boolean or dtype.is_temporal():
        return _arrow(column.to_physical().cast(pl.Int64).fill_null(0).reinterpret(signed=False))
    if dtype.is_float():
        # -0.0 as 0.0 (they are equal), one NaN for all, nulls as 0.0
        x = pl.lit(column.cast(pl.Float64))
        x = pl.when(x == 0.0).then(0.0).otherwise(x).fill_nan(float("nan")).fill_null(0.0)
        value = _arrow(pl.select(x).to_series())
        return pa.Array.from_buffers(_U64, len(value), [None, value.buffers()[1]], value.offset)
    if dtype in (pl.String, pl.Categorical, pl.Binary) or isinstance(dtype, pl.Enum | pl.Decimal):
        return _text(column)
    raise HashTypeError(f"cannot hash column '{column.name}' of type {dtype}")


def _text(column: pl.Series) -> Lane:
    import polars_hash as plh  # a plugin: loaded by the flows that hash, not by `import hygge`

    value = column if column.dtype == pl.Binary else column.cast(pl.String)
    hashed = value.to_frame("v").select(plh.col("v").nchash.xxhash64()).to_series()
    return _arrow(hashed.fill_null(0))


def _arrow(series: pl.Series) -> pa.Array:
    array = series.to_arrow()
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _round(acc: Lane, lane: Lane) -> Lane:
    acc = pc.add(acc, pc.multiply(lane, _u(_P2)))
    return pc.multiply(_rotl(acc, 31), _u(_P1))


def _rotl(x: Lane, r: int) -> Lane:
    return pc.bit_wise_or(pc.shift_left(x, _u(r)), pc.shift_right(x, _u(64 - r)))


def xxh64(lanes: list[Lane], rows: int) -> pa.Array:
    """XXH64, seed 0, of each row's `len(lanes) * 8` bytes (lane i = bytes 8i..8i+7, little
    endian), vectorised over the rows: the reference algorithm, step for step."""
    i = 0
    if len(lanes) >= 4:  # 32-byte stripes into four accumulators
        v: list[Lane] = [_u(_P1 + _P2), _u(_P2), _u(0), _u(-_P1)]
        while i + 4 <= len(lanes):
            v = [_round(v[j], lanes[i + j]) for j in range(4)]
            i += 4
        h: Lane = pc.add(
            pc.add(_rotl(v[0], 1), _rotl(v[1], 7)), pc.add(_rotl(v[2], 12), _rotl(v[3], 18))
        )
        for acc in v:
            h = pc.bit_wise_xor(h, _round(_u(0), acc))
            h = pc.add(pc.multiply(h, _u(_P1)), _u(_P4))
    else:
        h = _u(_P5)
    h = pc.add(h, _u(len(lanes) * 8))
    for lane in lanes[i:]:
        h = pc.bit_wise_xor(h, _round(_u(0), lane))
        h = pc.add(pc.multiply(_rotl(h, 27), _u(_P1)), _u(_P4))
    h = pc.multiply(pc.bit_wise_xor(h, pc.shift_right(h, _u(33))), _u(_P2))
    h = pc.multiply(pc.bit_wise_xor(h, pc.shift_right(h, _u(29))), _u(_P3))
    h = pc.bit_wise_xor(h, pc.shift_right(h, _u(32)))
    if isinstance(h, pa.Scalar):  # every lane the same for every row
        return pa.array([h.as_py()] * rows, _U64)
    return h
