"""Planning the partitions of one flow: value ranges of a SQL column, groups of files.

Pure functions, no I/O: the homes call them with what they found (min/max, file sizes).

SQL ranges are half-open, `[low, high)`, and the outer two are open-ended: the first takes
everything below its upper bound *and* the rows whose column is NULL, the last everything
from its lower bound up. So the ranges cover the table exactly once, whatever min/max said
(a row inserted after the bounds were read still lands in exactly one partition).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

RANGE_FAMILIES = ("int", "date", "timestamp", "timestamptz")
_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_UTC = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Range:
    """One partition of a column's values: `low <= value < high`; None means open-ended."""

    low: Any = None
    high: Any = None
    nulls: bool = False  # this partition also holds the rows whose column is NULL

    def predicate(self, column: str, literal: Callable[[Any], str]) -> str:
        """The SQL condition selecting this partition's rows (`column` already quoted)."""
        parts = []
        if self.low is not None:
            parts.append(f"{column} >= {literal(self.low)}")
        if self.high is not None:
            parts.append(f"{column} < {literal(self.high)}")
        cond = " AND ".join(parts) or "1 = 1"
        return f"({cond} OR {column} IS NULL)" if self.nulls else f"({cond})"


def partition_count(partitions: int | str | None, units: int | None = None) -> int:
    """`partitions: N` or `auto` (the machine's cores, at most `units` when they are known)."""
    auto = partitions is None or partitions == "auto"
    count = (os.cpu_count() or 1) if partitions is None or auto else int(partitions)
    if units is not None:
        count = min(count, max(units, 1))
    return max(count, 1)


def _to_int(value: Any, kind: str) -> int:
    if kind == "int":
        return int(value)
    if kind == "date":
        return int(value.toordinal())
    epoch = _EPOCH_UTC if value.tzinfo is not None else _EPOCH
    return int((value - epoch) // dt.timedelta(microseconds=1))


def _from_int(number: int, kind: str, like: Any) -> Any:
    if kind == "int":
        return number
    if kind == "date":
        return dt.date.fromordinal(number)
    epoch = _EPOCH_UTC if like.tzinfo is not None else _EPOCH
    value = epoch + dt.timedelta(microseconds=number)
    return value.astimezone(like.tzinfo) if like.tzinfo is not None else value


def split_range(low: Any, high: Any, count: int, kind: str) -> list[Range]:
    """`count` ranges of about equal width between min `low` and max `high` (fewer when there
    are fewer distinct values than partitions); None bounds (an empty table): one range."""
    if low is None or high is None:
        return [Range(nulls=True)]
    lo, hi = _to_int(low, kind), _to_int(high, kind)
    span = hi - lo + 1
    count = max(1, min(count, span))
    cuts = [_from_int(lo + (span * k) // count, kind, low) for k in range(1, count)]
    return bounded(cuts)


def bounded(cuts: Sequence[Any]) -> list[Range]:
    """Ranges between consecutive cut points, open at both ends, NULLs in the first."""
    edges: list[Any] = [None, *cuts, None]
    return [Range(edges[i], edges[i + 1], nulls=i == 0) for i in range(len(edges) - 1)]


def ranges_problem(ranges: Sequence[Sequence[Any]]) -> str | None:
    """Why explicit `ranges:` ([[low, high], ...], each half-open) cannot cover a table
    exactly once, or None when they can."""
    if not ranges:
        return "ranges is empty"
    for i, pair in enumerate(ranges):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            return f"range {i + 1} is {pair!r}, not a pair [low, high]"
        low, high = pair
        try:
            if not low < high:
                return f"range {i + 1} [{low}, {high}] is empty: its low must be below its high"
        except TypeError:
            return f"range {i + 1} [{low!r}, {high!r}] mixes values of different types"
    for i in range(len(ranges) - 1):
        end, start = ranges[i][1], ranges[i + 1][0]
        try:
            if end > start:
                return f"ranges {i + 1} and {i + 2} overlap ({end} > {start})"
            if end < start:
                return f"ranges {i + 1} and {i + 2} leave a gap between {end} and {start}"
        except TypeError:
            return f"ranges {i + 1} and {i + 2} mix values of different types"
    return None


def explicit_ranges(ranges: Sequence[Sequence[Any]], coerce: Callable[[Any], Any]) -> list[Range]:
    """Given ranges as partitions: the inner cut points kept, the outer ends opened."""
    return bounded([coerce(pair[0]) for pair in ranges[1:]])


def group_units(weights: Sequence[int], count: int) -> list[list[int]]:
    """Indexes of `weights` in `count` groups of about equal total weight (largest first onto
    the lightest group), each group in input order; never an empty group."""
    count = max(1, min(count, len(weights)))
    groups: list[list[int]] = [[] for _ in range(count)]
    totals = [0] * count
    for index in sorted(range(len(weights)), key=lambda i: -weights[i]):
        lightest = totals.index(min(totals))
        groups[lightest].append(index)
        totals[lightest] += weights[index]
    return [sorted(g) for g in groups if g]
