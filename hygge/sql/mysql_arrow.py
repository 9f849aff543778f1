"""MySQL/MariaDB results as Arrow record batches from connectorx: rows are decoded in Rust,
never as Python objects, and streamed (memory bounded by the batch, not the table).

connectorx maps most column types exactly; where it would not, the SELECT we run casts the
column in SQL first (decimals as text, because its decimal type holds 28 digits at scale 10;
TIME as microseconds, because it refuses negative and > 24 h values; BIT as an unsigned
integer), and Arrow casts the result to the catalog's type, checked. A column type it cannot
serve (spatial types, say) or a missing connectorx leaves the read to the PyMySQL path.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc

from hygge.errors import HyggeError
from hygge.sql.clauses import has_order_by, outside_parentheses
from hygge.sql.relay import Relay
from hygge.sql.types import Column, family
from hygge.sql.url import SqlUrl

log = logging.getLogger("hygge.sql.mysql")

# Column types whose values connectorx reads exactly as they are.
_PLAIN = {
    "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "float", "double", "real",
    "date", "datetime", "timestamp", "year", "enum", "set", "json", "char", "varchar",
    "tinytext", "text", "mediumtext", "longtext", "binary", "varbinary", "tinyblob", "blob",
    "mediumblob", "longblob", "bool", "boolean",
}  # fmt: skip
# Column types read through a SQL expression; `{c}` is the quoted column.
_CAST = {
    "decimal": "CAST({c} AS CHAR)",
    "numeric": "CAST({c} AS CHAR)",
    "time": "CAST(TIME_TO_SEC({c}) * 1000000 AS SIGNED)",
    "bit": "CAST({c} AS UNSIGNED)",
    "uuid": "CAST({c} AS CHAR)",
    "inet4": "CAST({c} AS CHAR)",
    "inet6": "CAST({c} AS CHAR)",
}
_DATES = ("date", "datetime", "timestamp")
# A decimal of at most this many digits travels as a 64-bit integer in units of its scale
# (10**18 - 1 fits): 8 bytes that connectorx decodes without a string per value, and that
# Arrow turns into decimal128 by a cast and a view (no text parse). Wider ones travel as text.
SCALED_PRECISION = 18
# Bytes the relay lets through ahead of the reader, at least: a window of connectorx's
# decoded pieces is in memory besides the flow's batches (lineitem SF3, in-process samples:
# peak RSS about 315 MB with 8 MB, 355 MB with 16 MB, 370-410 MB with 32 MB, same speed).
_MIN_WINDOW = 8 << 20
# connectorx decodes into batches of at most this many rows, which the SQL home regroups
# into the flow's batches (`batching.rebatch`, no copy: each piece is copied into Arrow's
# memory by `convert` anyway). Its builders and its channel then hold a quarter of a 100 k
# row batch each, not a whole one.
PIECE_ROWS = 25_000
AHEAD = 1  # flow batches the relay lets connectorx read ahead of the reader
# The server waits (TCP flow control) while the relay holds it back for a slow writer; its
# default 60 s would end the read under a writer that stalls (a busy database, a slow upload).
_WRITE_TIMEOUT = "SET SESSION net_write_timeout = 86400"


def base_type(sql_type: str) -> str:
    """'decimal(10,2) unsigned' -> 'decimal'."""
    return re.split(r"[\s(]", sql_type.strip().lower(), maxsplit=1)[0]


def available() -> bool:
    try:
        import connectorx  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class Plan:
    """How the fast path reads a result: the SELECT to run and each column's target type."""

    sql: str
    columns: list[Column]


def plan(sql: str, columns: list[Column], quote_name: Any) -> Plan | str:
    """The fast-path read of `sql` (whose result has `columns`), or why it cannot serve it."""
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        return "the result has duplicate column names"
    casts: list[str | None] = []  # each column's cast, or None: read as it is
    for column in columns:
        kind, q = base_type(column.sql_type), quote_name(column.name)
        if (scaled := _scaled(column)) is not None:
            # an exact integer literal: decimal arithmetic, exact (1e2 would be a double)
            factor = f" * {10**scaled.scale}" if scaled.scale else ""
            casts.append(f"CAST({q}{factor} AS SIGNED)")
        elif kind in _CAST:
            casts.append(_CAST[kind].format(c=q))
        elif kind in _PLAIN:
            casts.append(None)
        else:
            return f"column '{column.name}' is {column.sql_type}"
    if not any(casts):
        return Plan(sql, columns)
    quoted = [quote_name(n) for n in names]
    clauses = outside_parentheses(sql)  # the statement's own clauses, scanned once
    if (own := _with_casts(sql, clauses, quoted, casts, quote_name)) is not None:
        return Plan(own, columns)
    if has_order_by(clauses):
        first = next(n for n, c in zip(names, casts, strict=True) if c)
        return (
            f"the query orders its rows (ORDER BY), which reading column '{first}' through a "
            "cast around the query would lose"
        )
    listing = [f"{c} AS {q}" if c else q for q, c in zip(quoted, casts, strict=True)]
    # a derived table: the server merges it into the query
    return Plan(f"SELECT {', '.join(listing)} FROM ({sql}) AS hygge_fast", columns)


_NOT_ONE_SELECT = re.compile(r"\b(UNION|INTERSECT|EXCEPT|INTO)\b", re.IGNORECASE)


def _with_casts(
    sql: str, clauses: str, quoted: list[str], casts: list[str | None], quote_name: Any
) -> str | None:
    """`sql` (whose own clauses are `clauses`, from `outside_parentheses`) with the casts in
    its own select list, when it is one SELECT of plain columns
    (`SELECT <columns> FROM ...`: hygge's own read of a table, with a WHERE when it is
    incremental); else None.

    The casts take aliases no clause of the query names, so WHERE, GROUP BY, HAVING and
    ORDER BY read the stored values, as written. This also spares the server a derived
    table: merged into the query, it still costs a layer of references per value (on TPC-H
    lineitem SF1 the connection thread spent 10.05 CPU-s with it against 9.35 without, five
    interleaved pairs)."""
    head = f"SELECT {', '.join(quoted)} FROM "
    if not sql.startswith(head) or _NOT_ONE_SELECT.search(clauses):
        return None
    listing = [
        f"{c} AS {quote_name(f'hygge_cast_{i}')}" if c else q
        for i, (q, c) in enumerate(zip(quoted, casts, strict=True))
    ]
    return f"SELECT {', '.join(listing)} FROM {sql[len(head) :]}"


def _scaled(column: Column) -> pa.Decimal128Type | None:
    """The decimal type of a column read as a scaled integer, or None."""
    target = column.type
    if base_type(column.sql_type) not in ("decimal", "numeric"):
        return None
    if not pa.types.is_decimal128(target) or target.precision > SCALED_PRECISION:
        return None
    return target


def connectorx_url(url: SqlUrl, port: int | None = None) -> str:
    """connectorx's URL for `url`, or for the relay on 127.0.0.1:`port` in front of it."""
    user = quote(url.user or "root", safe="")
    password = f":{quote(url.password, safe='')}" if url.password else ""
    if port is None:
        host, port = url.host or "localhost", url.port or 3306
        return f"mysql://{user}{password}@{host}:{port}/{quote(url.database or '')}"
    # Through the relay: its client would otherwise switch to the server's Unix socket
    # (it does so on a loopback address), around the relay.
    db = quote(url.database or "")
    return f"mysql://{user}{password}@127.0.0.1:{port}/{db}?prefer_socket=false"


def stream(url: SqlUrl, read: Plan, batch_size: int) -> Iterator[pa.Table]:
    """Run the plan's SELECT on a connection of connectorx's own (session time zone UTC,
    like the PyMySQL session's) and yield its batches as the columns' Arrow types."""
    import connectorx

    schema = pa.schema([pa.field(c.name, c.type) for c in read.columns])
    try:
        relay = Relay(url.host or "localhost", url.port or 3306)
    except OSError as exc:
        raise ReadError(f"cannot start the read relay: {exc}", connecting=True) from None
    with relay:
        try:
            piece = min(batch_size, PIECE_ROWS)
            reader = connectorx.read_sql(
                connectorx_url(url, relay.port),
                read.sql,
                return_type="arrow_stream",
                batch_size=piece,
                # the relay holds the server back while the writer is behind: let it wait
                pre_execution_query=["SET time_zone = '+00:00'", _WRITE_TIMEOUT],
            )
            pieces_per_batch = -(-batch_size // piece)
            try:
                for batch in reader:
                    relay.took(batch.nbytes)
                    if batch.num_rows == piece:  # AHEAD batches' worth ahead at most
                        relay.window(max(_MIN_WINDOW, AHEAD * pieces_per_batch * batch.nbytes))
                    arrays = [
                        convert(batch.column(i), c) for i, c in enumerate(read.columns)
                    ]  # by position: a query's names may differ in case from its probe
                    yield pa.Table.from_arrays(arrays, schema=schema)
                    relay.waiting()
            finally:
                with contextlib.suppress(Exception):
                    reader.close()
        except HyggeError:
            raise
        except BaseException as exc:  # connectorx reports read faults as a Rust panic
            if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
                raise  # KeyboardInterrupt, SystemExit
            raise _error(str(exc), read.columns, url) from None


class ReadError(Exception):
    """A connectorx failure as an ordinary exception (a panic is a BaseException);
    `connecting`: its connection pool never got a connection (no row was read);
    `too_large`: a row larger than its client takes (max_allowed_packet)."""

    def __init__(self, message: str, connecting: bool = False, too_large: bool = False) -> None:
        super().__init__(message)
        self.connecting = connecting
        self.too_large = too_large  # a row over the client's packet limit: permanent


def _error(message: str, columns: list[Column], url: SqlUrl) -> Exception:
    """What went wrong, in words: zero dates name their columns; a lost connection says so
    (the home treats it as transient)."""
    text = url.scrub(message.strip().splitlines()[0] if message.strip() else "read failed")
    if "Couldn't convert the value" in text and ("NaiveDate" in text or "Date(" in text):
        dates = [c.name for c in columns if base_type(c.sql_type) in _DATES]
        named = ", ".join(f"'{d}'" for d in dates) or "?"
        first = dates[0] if dates else "col"
        return HyggeError(
            f"column{'s' if len(dates) > 1 else ''} {named}: a zero or partial date such as "
            "'0000-00-00' has no date or timestamp value",
            hint="fix those rows, or read them with a `query` that selects "
            f"NULLIF(`{first}`, '0000-00-00') (or a CASE) for the date columns",
        )
    if "max_allowed_packet" in text:  # the client's limit; the server sent the row fine
        return ReadError(
            "a row is larger than max_allowed_packet, the most connectorx's client reads in "
            "one packet (it takes the server's value)",
            too_large=True,
        )
    if "waiting for connection" in text:  # r2d2's pool: connectorx never connected
        return ReadError(f"lost connection to the server while connecting: {text}", True)
    if re.search(r"CodecError|IO error|connection|broken pipe|gone away", text, re.I):
        return ReadError(f"lost connection to the server while reading: {text}")
    return ReadError(text)


def convert(array: pa.Array, column: Column) -> pa.Array:
    """One connectorx column as the column's Arrow type, exactly (or an error naming it)."""
    target = column.type
    # Into memory of Arrow's own: connectorx frees a batch it exported when a later read fails
    # (a lost connection), which crashed the writer of a batch still queued. One memcpy.
    array = pa.concat_arrays([array])
    try:
        if isinstance(target, pa.BaseExtensionType):
            storage = array.cast(target.storage_type)
            return pa.ExtensionArray.from_storage(target, storage)
        if pa.types.is_decimal128(target) and pa.types.is_integer(array.type):
            return _unscaled(array, target)
        kind = family(target)
        if kind == "bool":  # tinyint(1) holds -128..127: only 0 and 1 are booleans
            if pc.any(pc.invert(pc.is_in(array.drop_null(), pa.array([0, 1], array.type)))).as_py():
                raise ValueError("a value other than 0 or 1 is not a boolean")
            return array.cast(target)
        if pa.types.is_time(target):  # TIME tagged as a time of day, read as microseconds
            micros = array.cast(pa.int64())
            if pc.any(pc.or_(pc.less(micros, 0), pc.greater_equal(micros, 86_400_000_000))).as_py():
                raise ValueError("a value outside 00:00-24:00 is not a time of day")
            return micros.cast(target)
        if pa.types.is_duration(target):
            return array.cast(pa.int64()).cast(target)
        if kind == "timestamptz":  # the session is UTC, so the wall time is UTC
            return array.cast(pa.timestamp(target.unit)).cast(target)
        return array.cast(target, safe=True)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise HyggeError(
            f"column '{column.name}': cannot read its values as {target}: {exc}",
            hint="cast the column in a `query`, e.g. to CHAR",
        ) from exc


def _unscaled(ints: pa.Array, target: pa.Decimal128Type) -> pa.Array:
    """A decimal read as an integer in units of its scale, as the decimal: range-checked
    (the server's CAST saturates a value it cannot hold), cast to decimal128(19, 0) (the
    narrowest Arrow casts an int64 to) and viewed at the target's precision and scale."""
    bound = 10**target.precision
    extremes = pc.min_max(ints)
    low, high = extremes["min"].as_py(), extremes["max"].as_py()
    if low is not None and (low <= -bound or high >= bound):
        raise ValueError(f"a value has more than {target.precision} digits")
    return ints.cast(pa.int64()).cast(pa.decimal128(19, 0)).view(target)
