"""Arrow <-> SQL types, per dialect, so values cross exactly or fail naming the column.

A few database types have no plain Arrow equivalent that survives polars: they travel as
extension types over strings (`arrow.json`, and an `arrow.opaque` tagged "uuid" or "numeric"
for numbers too wide for decimal128), which polars, parquet and DuckDB all keep as text.

Over 400 lines on purpose: the type tables of every dialect sit side by side (one type's
PostgreSQL, MySQL and generic spelling are read and changed together), and the casts that
check values against those types belong with them. Splitting per dialect would scatter one
type's rules over three files.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from hygge.errors import StoreError

UUID = pa.opaque(pa.large_string(), type_name="uuid", vendor_name="hygge")
NUMERIC_TEXT = pa.opaque(pa.large_string(), type_name="numeric", vendor_name="hygge")
JSON = pa.json_(pa.large_string())
MAX_DECIMAL128 = 38


def tag(t: pa.DataType) -> str | None:
    """'uuid', 'json' or 'numeric' for hygge's text-carried types, else None."""
    if isinstance(t, pa.BaseExtensionType):
        if t.extension_name == "arrow.json":
            return "json"
        if t.extension_name == "arrow.uuid":
            return "uuid"
        if t.extension_name == "arrow.opaque" and t.type_name in ("uuid", "numeric"):
            return str(t.type_name)
    return None


def family(t: pa.DataType) -> str:
    """A coarse kind of value; a change of family is a type change for `schema_policy`."""
    tagged = tag(t)
    if tagged:
        return "decimal" if tagged == "numeric" else tagged
    if isinstance(t, pa.BaseExtensionType):
        return family(t.storage_type)
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_decimal(t):
        return "decimal"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "text"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return "binary"
    if pa.types.is_fixed_size_binary(t):
        return "binary"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_time(t):
        return "time"
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_duration(t):
        return "duration"
    return str(t)


# Which target families can hold a source family's values exactly (besides their own).
_WIDER = {"int": {"decimal", "float"}, "date": {"timestamp"}, "uuid": {"text"}, "json": {"text"}}


def fits(source: pa.DataType, target: pa.DataType) -> bool:
    """True when a column of `target` type can take `source` values (range checked per value)."""
    s, t = family(source), family(target)
    return s == t or t in _WIDER.get(s, set())


def normalize(table: pa.Table) -> pa.Table:
    """View and small-offset layouts as the large ones every driver and kernel accepts."""
    fields, arrays, changed = [], [], False
    for field, column in zip(table.schema, table.columns, strict=True):
        t = field.type
        new = t
        if pa.types.is_string_view(t) or pa.types.is_string(t):
            new = pa.large_string()
        elif pa.types.is_binary_view(t) or pa.types.is_binary(t):
            new = pa.large_binary()
        if new != t:
            column = column.cast(new)
            changed = True
        fields.append(pa.field(field.name, new))
        arrays.append(column)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields)) if changed else table


# ---------------------------------------------------------------------------------------
# Arrow -> DDL


def ddl(t: pa.DataType, dialect: str, column: str) -> str:
    """The column type hygge creates for Arrow type `t` in `dialect`."""
    tagged = tag(t)
    if tagged:
        return _TAGGED_DDL[dialect if dialect in _TAGGED_DDL else "generic"][tagged]
    mapping = _DDL.get(dialect, _DDL["generic"])
    if pa.types.is_decimal(t):
        if dialect == "sqlite":  # TEXT affinity: SQLite's NUMERIC one would round to a float
            return f"DECIMAL_TEXT({t.precision},{t.scale})"
        if t.precision > 65 and dialect == "mysql":
            raise StoreError(
                f"column '{column}': decimal({t.precision},{t.scale}) is wider than MySQL/"
                "MariaDB's DECIMAL(65)",
                hint="round the column in the source query, or store it as text",
            )
        return (
            f"NUMERIC({t.precision},{t.scale})"
            if dialect != "mysql"
            else (f"DECIMAL({t.precision},{t.scale})")
        )
    if pa.types.is_timestamp(t):
        return mapping["timestamptz" if t.tz else "timestamp"]
    if pa.types.is_integer(t):
        key = ("u" if pa.types.is_unsigned_integer(t) else "") + f"int{t.bit_width}"
        return mapping[key]
    if pa.types.is_floating(t):
        return mapping["float32" if t.bit_width <= 32 else "float64"]
    fam = family(t)
    if fam in mapping:
        return mapping[fam]
    raise StoreError(
        f"column '{column}': no {dialect} column type for Arrow type {t}",
        hint="select or cast the column to a simpler type in the source",
    )


_DDL: dict[str, dict[str, str]] = {
    "postgresql": {
        "int8": "SMALLINT",
        "int16": "SMALLINT",
        "int32": "INTEGER",
        "int64": "BIGINT",
        "uint8": "SMALLINT",
        "uint16": "INTEGER",
        "uint32": "BIGINT",
        "uint64": "NUMERIC(20,0)",
        "float32": "REAL",
        "float64": "DOUBLE PRECISION",
        "bool": "BOOLEAN",
        "text": "TEXT",
        "binary": "BYTEA",
        "date": "DATE",
        "time": "TIME(6)",
        "duration": "INTERVAL",
        "timestamp": "TIMESTAMP(6)",
        "timestamptz": "TIMESTAMPTZ(6)",
    },
    "mysql": {
        "int8": "TINYINT",
        "int16": "SMALLINT",
        "int32": "INT",
        "int64": "BIGINT",
        "uint8": "TINYINT UNSIGNED",
        "uint16": "SMALLINT UNSIGNED",
        "uint32": "INT UNSIGNED",
        "uint64": "BIGINT UNSIGNED",
        "float32": "FLOAT",
        "float64": "DOUBLE",
        "bool": "BOOLEAN",
        "text": "LONGTEXT",
        "binary": "LONGBLOB",
        "date": "DATE",
        # MySQL's TIME is a signed duration (-838:59:59 to 838:59:59) and reads back as one;
        # a time of day is tagged so hygge reads it back as a time of day
        "time": "TIME(6) COMMENT 'hygge:time'",
        "duration": "TIME(6)",
        "timestamp": "DATETIME(6)",
        # MariaDB has no zoned timestamp: UTC in a DATETIME, tagged so hygge reads it back zoned
        "timestamptz": "DATETIME(6) COMMENT 'hygge:timestamptz'",
    },
    "generic": {
        "int8": "SMALLINT",
        "int16": "SMALLINT",
        "int32": "INTEGER",
        "int64": "BIGINT",
        "uint8": "SMALLINT",
        "uint16": "INTEGER",
        "uint32": "BIGINT",
        "uint64": "NUMERIC(20,0)",
        "float32": "REAL",
        "float64": "DOUBLE PRECISION",
        "bool": "BOOLEAN",
        "text": "TEXT",
        "binary": "BLOB",
        "date": "DATE",
        "time": "TIME",
        "timestamp": "TIMESTAMP",
        "timestamptz": "TIMESTAMP WITH TIME ZONE",
    },
}
_DDL["sqlite"] = _DDL["generic"]

_TAGGED_DDL = {
    "postgresql": {"uuid": "UUID", "json": "JSONB", "numeric": "NUMERIC"},
    "mysql": {
        # Not MariaDB's UUID type: it refuses values that are not RFC 4122 variants (e.g.
        # md5(x)::uuid), which PostgreSQL accepts. The comment reads the column back as uuid.
        "uuid": "CHAR(36) CHARACTER SET ascii COMMENT 'hygge:uuid'",
        "json": "JSON COMMENT 'hygge:json'",
        "numeric": "LONGTEXT COMMENT 'hygge:numeric'",
    },
    "generic": {"uuid": "VARCHAR(36)", "json": "TEXT", "numeric": "DECIMAL_TEXT"},
}


def canonical(t: pa.DataType, dialect: str) -> pa.DataType:
    """The Arrow type a column created by `ddl(t)` holds: what a batch is cast to first."""
    if pa.types.is_time(t):
        return pa.time64("us")
    if pa.types.is_duration(t):
        return pa.duration("us")
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", "UTC" if t.tz else None)
    if pa.types.is_date(t):
        return pa.date32()
    if pa.types.is_float16(t):
        return pa.float32()
    if pa.types.is_integer(t) and dialect != "mysql":
        widen = {
            "int8": pa.int16(),
            "uint8": pa.int16(),
            "uint16": pa.int32(),
            "uint32": pa.int64(),
            "uint64": pa.decimal128(20, 0),
        }
        return widen.get(str(t), t)
    return t


# ---------------------------------------------------------------------------------------
# SQL -> Arrow


@dataclass(frozen=True)
class Column:
    """A column of an existing table: its name, Arrow type, and limits the type cannot say."""

    name: str
    type: pa.DataType
    sql_type: str
    max_length: int | None = None  # varchar(n)/char(n): longer strings are an error
    as_text: bool = False  # read as the server's text: a type Arrow has no exact match for


_PG_TEXT_TYPES = {"text", "varchar", "bpchar", "name"}


def pg_reads_as_text(typname: str) -> bool:
    """True for PostgreSQL types without an exact Arrow match that polars keeps (bit, varbit,
    interval, timetz, money, inet, enums, ranges, ...): they are selected as `::text`, so the
    value arrives exactly as PostgreSQL prints it, never as its binary wire encoding. Arrays
    (`_int4`, ...) stay lists."""
    if typname.startswith("_") or typname in _PG_TEXT_TYPES or typname == "numeric":
        return False
    return bool(pg_arrow_type(typname, -1) == pa.large_string())


def pg_arrow_type(typname: str, typmod: int) -> pa.DataType:
    """PostgreSQL type name + typmod -> Arrow."""
    simple = {
        "int2": pa.int16(),
        "int4": pa.int32(),
        "int8": pa.int64(),
        "float4": pa.float32(),
        "float8": pa.float64(),
        "bool": pa.bool_(),
        "text": pa.large_string(),
        "varchar": pa.large_string(),
        "bpchar": pa.large_string(),
        "name": pa.large_string(),
        "date": pa.date32(),
        "time": pa.time64("us"),
        "timestamp": pa.timestamp("us"),
        "timestamptz": pa.timestamp("us", "UTC"),
        "bytea": pa.large_binary(),
        "uuid": UUID,
        "json": JSON,
        "jsonb": JSON,
    }
    if typname in simple:
        return simple[typname]
    if typname == "numeric":
        if typmod < 0:
            return NUMERIC_TEXT
        precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
        return decimal_type(precision, scale)
    return pa.large_string()


def decimal_type(precision: int, scale: int) -> pa.DataType:
    """decimal128 when it fits (polars' limit), else exact text."""
    if precision <= MAX_DECIMAL128 and 0 <= scale <= precision:
        return pa.decimal128(precision, scale)
    return NUMERIC_TEXT


_MYSQL_SPATIAL = {
    "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
    "multipolygon", "geometrycollection",
}  # fmt: skip
_MYSQL_INTS = {"tinyint": 8, "smallint": 16, "mediumint": 32, "int": 32, "bigint": 64}


def mysql_arrow_type(
    data_type: str, column_type: str, precision: int | None, scale: int | None, comment: str
) -> pa.DataType:
    """information_schema.COLUMNS facts -> Arrow."""
    data_type, column_type = data_type.lower(), column_type.lower()
    tagged = re.search(r"hygge:(\w+)", comment or "")
    if tagged:
        kind = tagged.group(1)
        if kind == "timestamptz":
            return pa.timestamp("us", "UTC")
        if kind == "json":
            return JSON
        if kind == "numeric":
            return NUMERIC_TEXT
        if kind == "time":
            return pa.time64("us")
        if kind == "uuid":
            return UUID
    if data_type == "bit":  # BIT(n) as an integer; BIT(64) may use the top bit
        return pa.uint64() if column_type.startswith("bit(64)") else pa.int64()
    if data_type == "tinyint" and column_type.startswith("tinyint(1)"):
        return pa.bool_()
    if data_type in _MYSQL_INTS:
        bits = _MYSQL_INTS[data_type]
        unsigned = "unsigned" in column_type
        if unsigned and data_type == "mediumint":
            bits = 32
        return (
            pa.int64()
            if bits == 64 and not unsigned
            else getattr(pa, f"{'u' if unsigned else ''}int{bits}")()
        )
    if data_type in ("decimal", "numeric"):
        return decimal_type(precision or 10, scale or 0)
    simple = {
        "float": pa.float32(),
        "double": pa.float64(),
        "date": pa.date32(),
        "time": pa.duration("us"),  # signed, up to 838 hours
        "datetime": pa.timestamp("us"),
        "timestamp": pa.timestamp("us", "UTC"),
        "uuid": UUID,
        "json": JSON,
        "year": pa.int16(),
    }
    if data_type in simple:
        return simple[data_type]
    if "blob" in data_type or "binary" in data_type or data_type in _MYSQL_SPATIAL:
        return pa.large_binary()  # spatial values as MySQL's internal bytes (SRID + WKB)
    return pa.large_string()


# ---------------------------------------------------------------------------------------
# Casting a batch to the target's types, naming the column that cannot be represented


def cast_column(
    array: pa.ChunkedArray, target: pa.DataType, column: str, max_length: int | None = None
) -> pa.ChunkedArray:
    """`array` as `target`, exactly: out-of-range, rounding or too-long values are errors."""
    source = array.type
    if max_length is not None and family(source) in ("text", "json", "uuid"):
        lengths = pc.utf8_length(_storage(array))
        longest = pc.max(lengths).as_py()
        if longest is not None and longest > max_length:
            raise StoreError(
                f"column '{column}': a value of {longest} characters does not fit the target's "
                f"{max_length}-character limit",
                hint="widen the column in the target table, or trim the value in the source",
            )
    if source == target:
        return array
    if tag(target) == "uuid":
        return _to_uuid_text(array, column)
    if tag(target) in ("json", "numeric"):
        return as_extension(array, target)
    if isinstance(source, pa.BaseExtensionType):
        array = _storage(array)
    if family(source) == "float" and family(target) != "float":
        _no_nan(array, column)
    try:
        return array.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise StoreError(
            f"column '{column}': a value cannot be stored as {target} without loss ({exc})",
            hint="widen the column in the target table, or fix the value in the source",
        ) from exc


def as_extension(array: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    """Text (or another text-carried type) re-tagged as extension type `target`."""
    storage = _storage(array).cast(target.storage_type)
    return pa.chunked_array(
        [pa.ExtensionArray.from_storage(target, c) for c in storage.chunks], type=target
    )


def _storage(array: pa.ChunkedArray) -> pa.ChunkedArray:
    if isinstance(array.type, pa.BaseExtensionType):
        return pa.chunked_array([c.storage for c in array.chunks], type=array.type.storage_type)
    return array


def _no_nan(array: pa.ChunkedArray, column: str) -> None:
    if pc.any(pc.is_nan(array)).as_py():
        raise StoreError(f"column '{column}': NaN cannot be stored in a non-float column")


def _to_uuid_text(array: pa.ChunkedArray, column: str) -> pa.ChunkedArray:
    """UUIDs from 16 raw bytes or text, validated, as canonical text."""
    values: list[str | None] = []
    for value in _storage(array).to_pylist():
        if value is None:
            values.append(None)
            continue
        try:
            u = uuid.UUID(bytes=value) if isinstance(value, bytes) else uuid.UUID(value)
        except ValueError as exc:
            raise StoreError(f"column '{column}': {value!r} is not a UUID") from exc
        values.append(str(u))
    storage = pa.array(values, pa.large_string())
    return pa.chunked_array([pa.ExtensionArray.from_storage(UUID, storage)], type=UUID)


def uuid_bytes_to_text(array: pa.Array) -> pa.Array:
    """arrow.uuid (16 bytes) -> hygge's UUID text, which polars keeps."""
    storage = array.storage if isinstance(array, pa.ExtensionArray) else array
    text = [None if b is None else str(uuid.UUID(bytes=b)) for b in storage.to_pylist()]
    return pa.ExtensionArray.from_storage(UUID, pa.array(text, pa.large_string()))


def uuid_text_to_bytes(array: pa.ChunkedArray) -> pa.ChunkedArray:
    """hygge's UUID text -> arrow.uuid, which PostgreSQL's binary COPY takes natively."""
    raw = [None if s is None else uuid.UUID(s).bytes for s in _storage(array).to_pylist()]
    storage = pa.array(raw, pa.binary(16))
    return pa.chunked_array([pa.ExtensionArray.from_storage(pa.uuid(), storage)])
