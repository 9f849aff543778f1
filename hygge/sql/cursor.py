"""Cursor-based incremental reads of a SQL home: the filter pushed into SQL, the lag window,
and the high-water mark tracked batch by batch.

The read after a run asks for `cursor >= mark - lag`. Rows re-read inside that window were
loaded already (unless they committed late), so the state keeps a hash of every row whose
cursor lies in [mark - lag, mark] when the run commits; a re-read row with a known hash is
dropped, a late row (unknown hash) is loaded. Only window rows are hashed, so the cost is
proportional to the window, not to the table.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa

from hygge.errors import HomeError
from hygge.sql.base import Session
from hygge.sql.types import family

CURSOR_FAMILIES = ("int", "date", "timestamp", "timestamptz")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
LAG_PATTERN = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")


def parse_lag(lag: str | int | None) -> dt.timedelta | int | None:
    """`10m`/`2h`/`1d`/`30s` -> a timedelta; an integer stays an integer (integer cursors)."""
    if lag is None or isinstance(lag, int):
        return lag
    text = str(lag)
    if text.strip().lstrip("-").isdigit():
        return int(text)
    match = LAG_PATTERN.match(text)
    if not match:
        raise ValueError(
            f"lag {lag!r} is not a duration like 30s, 10m, 2h, 1d (or an integer for an "
            "integer cursor)"
        )
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _column_text(series: pl.Series) -> pl.Series:
    """One column's values as text, whatever its type (nulls as a marker no value has)."""
    dtype = series.dtype
    if dtype == pl.Binary:
        out = series.bin.encode("hex")
    elif isinstance(dtype, (pl.List, pl.Array, pl.Struct)):
        out = pl.DataFrame([series]).select(pl.struct(series.name).struct.json_encode()).to_series()
    else:
        try:
            out = series.cast(pl.String)
        except Exception:  # an extension type (json, uuid, numeric text): use its storage
            arrow = series.to_arrow()
            if isinstance(arrow.type, pa.BaseExtensionType):
                arrow = arrow.storage
            out = pl.Series(series.name, arrow.cast(pa.large_string()))
    return out.fill_null("\x00")


def _as_text(df: pl.DataFrame) -> pl.Series:
    """Every row as one string (stable across runs and versions), for hashing."""
    parts = [_column_text(df.get_column(name)) for name in df.columns]
    return pl.DataFrame(parts).select(pl.concat_str(pl.all(), separator="\x1f")).to_series()


def row_hashes(df: pl.DataFrame) -> list[str]:
    """A short content hash per row (only ever called on the lag window's rows)."""
    return [hashlib.blake2b(text.encode(), digest_size=10).hexdigest() for text in _as_text(df)]


@dataclass
class Cursor:
    """One incremental read: where it starts, what it skips, and the mark it reaches."""

    home: str
    column: str
    lag: dt.timedelta | int | None
    initial: Any = None
    kind: str | None = None  # the cursor's family once known: int, date, timestamp(tz)
    mark: Any = None  # the saved high-water mark (a Python value), None: read everything
    seen: set[str] = field(default_factory=set)  # hashes of the saved window's rows
    resumed: bool = False
    new_mark: Any = None
    window: pl.DataFrame | None = None  # (cursor, hash) of rows that may be in the new window

    # -- set-up --------------------------------------------------------------------------
    def resume(self, state: dict[str, Any] | None) -> None:
        self.resumed = state is not None and state.get("mark") is not None
        self.kind = (state or {}).get("type")
        self.mark = from_json(state["mark"], self.kind) if state and self.resumed else None
        self.seen = set((state or {}).get("window", []))
        self.new_mark, self.window = self.mark, None

    def bind(self, arrow_type: pa.DataType | None, where: str) -> None:
        """Check the column's type (None: unknown, e.g. an empty query) against lag/initial."""
        if arrow_type is None:
            return
        kind = family(arrow_type)
        if kind not in CURSOR_FAMILIES:
            raise HomeError(
                f"home '{self.home}': cursor column '{self.column}' of {where} is {kind} "
                f"({arrow_type}), which cannot order rows",
                hint="use a timestamp, date or integer column (e.g. updated_at or an id)",
            )
        if self.kind and self.kind != kind and {self.kind, kind} != {"timestamp", "timestamptz"}:
            raise HomeError(
                f"home '{self.home}': cursor column '{self.column}' is now {kind}, but the "
                f"saved mark is {self.kind}",
                hint="run once with --full-refresh",
            )
        self.kind = kind
        lag = self.lag
        if lag is not None:
            if kind == "int" and not isinstance(lag, int):
                raise HomeError(
                    f"home '{self.home}': lag '{_show(lag)}' is a duration but cursor column "
                    f"'{self.column}' is an integer",
                    hint="give the lag as a number of cursor units, e.g. lag: 100",
                )
            if kind != "int" and isinstance(lag, int):
                raise HomeError(
                    f"home '{self.home}': lag {lag} is a number but cursor column "
                    f"'{self.column}' is a {kind}",
                    hint="give the lag as a duration: 30s, 10m, 2h or 1d",
                )
            if kind == "date" and isinstance(lag, dt.timedelta) and lag % dt.timedelta(days=1):
                raise HomeError(
                    f"home '{self.home}': lag '{_show(lag)}' is not whole days but cursor "
                    f"column '{self.column}' is a date",
                    hint="use a lag in days, e.g. lag: 1d",
                )
        if self.initial is not None and not self.resumed:
            try:
                self.initial = coerce(self.initial, kind)
            except (TypeError, ValueError) as exc:
                raise HomeError(
                    f"home '{self.home}': initial {self.initial!r} is not a {kind} value for "
                    f"cursor column '{self.column}'",
                    hint="e.g. initial: 2024-01-01T00:00:00 (timestamp), 2024-01-01 (date), 0",
                ) from exc

    # -- the pushed-down filter ------------------------------------------------------------
    def lower_bound(self) -> Any:
        if self.resumed:
            return self.mark - self.lag if self.lag else self.mark
        return self.initial

    def filter(self, session: Session, select: str, is_query: bool) -> str:
        """`select` restricted to `cursor >= lower bound` (unchanged on a first full run)."""
        bound = self.lower_bound()
        if bound is None or self.kind is None:  # no mark, or no non-NULL cursor value yet
            return select
        cond = f"{session.quote(self.column)} >= {sql_literal(bound, self.kind, session)}"
        if is_query:
            return f"SELECT * FROM ({select}) AS hygge_src WHERE {cond}"
        return f"{select} WHERE {cond}"

    # -- per batch -------------------------------------------------------------------------
    def observe(self, df: pl.DataFrame) -> pl.DataFrame:
        """Drop re-read rows the last run loaded; track the new mark and window candidates."""
        col = pl.col(self.column)
        if self.resumed and self.seen:
            maybe = df.filter(col <= self.mark)  # only rows at or below the mark can repeat
            if maybe.height:
                known = pl.Series(row_hashes(maybe)).is_in(list(self.seen))
                seen_rows = maybe.filter(known)
                if seen_rows.height:
                    self._remember(seen_rows)  # still in the window: carry their hashes on
                    fresh = df.filter(~(col <= self.mark).fill_null(False))
                    df = pl.concat([fresh, maybe.filter(~known)], how="vertical")
        top = df.get_column(self.column).max()
        if top is not None and (self.new_mark is None or top > self.new_mark):
            self.new_mark = top
        self._remember(df)
        return df

    def _remember(self, df: pl.DataFrame) -> None:
        if self.new_mark is None:
            return
        start = self._window_start(self.new_mark)
        rows = df.filter(pl.col(self.column) >= start)
        if rows.height:
            found = pl.DataFrame(
                {"c": rows.get_column(self.column), "h": row_hashes(rows)},
            )
            self.window = found if self.window is None else pl.concat([self.window, found])
        if self.window is not None:
            self.window = self.window.filter(pl.col("c") >= start)

    def _window_start(self, mark: Any) -> Any:
        return mark - self.lag if self.lag else mark

    def checkpoint(self) -> dict[str, Any]:
        window: list[str] = []
        if self.window is not None and self.new_mark is not None:
            start = self._window_start(self.new_mark)
            window = sorted(set(self.window.filter(pl.col("c") >= start).get_column("h")))
        return {
            "cursor": self.column,
            "type": self.kind,
            "mark": to_json(self.new_mark),
            "window": window,
        }


def _show(lag: dt.timedelta | int) -> str:
    if isinstance(lag, int):
        return str(lag)
    seconds = int(lag.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def to_json(value: Any) -> Any:
    """A mark as JSON: ints as ints, dates and timestamps as ISO text (time zone kept)."""
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    raise HomeError(f"cannot keep a cursor value of type {type(value).__name__} as state")


def coerce(value: Any, kind: str | None) -> Any:
    """A JSON/YAML value as the cursor family's Python value."""
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise TypeError(value)
        return int(value)
    if kind == "date":
        if isinstance(value, dt.datetime):
            return value.date()
        return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
    if kind in ("timestamp", "timestamptz"):
        if isinstance(value, dt.datetime):
            out = value
        elif isinstance(value, dt.date):
            out = dt.datetime(value.year, value.month, value.day)
        else:
            out = dt.datetime.fromisoformat(str(value))
        if kind == "timestamptz" and out.tzinfo is None:
            out = out.replace(tzinfo=dt.UTC)
        return out
    return value


def from_json(value: Any, kind: str | None) -> Any:
    return None if value is None else coerce(value, kind)


def sql_literal(value: Any, kind: str | None, session: Session) -> str:
    """A typed SQL literal built from a parsed value (never from user text as given)."""
    if kind == "int":
        return str(int(value))
    if kind == "date":
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, dt.datetime):
        return session.timestamp_literal(value)
    raise HomeError(f"cannot filter on a cursor value {value!r}")
