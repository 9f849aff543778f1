"""What a line of `checks:` says: `parse_checks` turns the YAML list into `Check`s (the config
layer calls it and turns a `CheckSpecError` into an error at the entry's line); a row check
also knows its failing-row expression. Accumulating and deciding is hygge/quality.py."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import polars as pl

_AGE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class Check:
    """One check. Row checks (`row_failing` not None) judge every row on its own."""

    kind: str
    columns: tuple[str, ...] = ()
    values: tuple[Any, ...] = ()
    low: Any = None
    high: Any = None
    max_age: float = 0.0  # freshness, seconds
    sql: str = ""  # expression

    @property
    def label(self) -> str:
        if self.kind == "row_count":
            bounds = [f"min {self.low:,}" if self.low is not None else ""]
            bounds.append(f"max {self.high:,}" if self.high is not None else "")
            return f"row_count({', '.join(b for b in bounds if b)})"
        if self.kind == "expression":
            return f"expression({self.sql})"
        return f"{self.kind}({', '.join(self.columns)})"

    @property
    def per_row(self) -> bool:
        return self.kind in ("not_null", "accepted_values", "range", "expression")

    def failing(self) -> pl.Expr:
        """True where a row fails this (row) check; a null passes all but not_null (as SQL)."""
        if self.kind == "not_null":
            return pl.any_horizontal([pl.col(c).is_null() for c in self.columns])
        column = pl.col(self.columns[0]) if self.columns else None
        if self.kind == "accepted_values":
            assert column is not None
            return (~column.is_in(list(self.values))).fill_null(False)
        if self.kind == "range":
            assert column is not None
            below = column < self.low if self.low is not None else pl.lit(False)
            above = column > self.high if self.high is not None else pl.lit(False)
            return (below | above).fill_null(False)
        if self.kind == "expression":
            return (~pl.sql_expr(self.sql)).fill_null(False)
        raise AssertionError(self.kind)

    def shown(self) -> list[str] | None:
        """The columns an example row shows (None: all)."""
        return list(self.columns) or None


def parse_checks(raw: Any) -> list[Check]:
    """`checks:` -> Checks; a ValueError names the entry (by position) and what is wrong."""
    if not isinstance(raw, list):
        raise ValueError("`checks` must be a list, e.g. `- not_null: [id]`")
    out: list[Check] = []
    for i, entry in enumerate(raw):
        try:
            out += _parse_one(entry)
        except ValueError as exc:
            raise CheckSpecError(i, str(exc)) from None
    return out


class CheckSpecError(ValueError):
    def __init__(self, index: int, message: str) -> None:
        super().__init__(f"checks[{index}]: {message}")
        self.index = index


KINDS = (
    "not_null",
    "unique",
    "accepted_values",
    "range",
    "row_count",
    "freshness",
    "expression",
)


def _names(value: Any, kind: str) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{kind} takes a column or a list of columns, e.g. `{kind}: [id]`")
    return tuple(names)


def _parse_one(entry: Any) -> list[Check]:
    if not isinstance(entry, dict) or len(entry) != 1:
        raise ValueError(f"each check is a mapping of one kind ({', '.join(KINDS)})")
    ((kind, value),) = entry.items()
    if kind in ("not_null", "unique"):
        return [Check(kind, _names(value, kind))]
    if kind == "accepted_values":
        if not isinstance(value, dict) or not value:
            raise ValueError("accepted_values takes {column: [values]}")
        checks = []
        for column, values in value.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"accepted_values of '{column}' must be a non-empty list")
            kinds = {type(v) for v in values if v is not None}
            if bool in kinds and len(kinds) > 1:  # YAML reads NO, yes, off... as booleans
                raise ValueError(
                    f"accepted_values of '{column}' mixes text and true/false: YAML reads "
                    'NO, Yes, off... as booleans; quote them, e.g. [DK, SE, "NO"]'
                )
            checks.append(Check(kind, (str(column),), values=tuple(values)))
        return checks
    if kind == "range":
        if not isinstance(value, dict) or not value:
            raise ValueError("range takes {column: [low, high]} (null for no bound)")
        checks = []
        for column, bounds in value.items():
            if not isinstance(bounds, list) or len(bounds) != 2 or bounds == [None, None]:
                raise ValueError(f"range of '{column}' must be [low, high] (one may be null)")
            checks.append(Check(kind, (str(column),), low=bounds[0], high=bounds[1]))
        return checks
    if kind == "row_count":
        if not isinstance(value, dict) or not set(value) <= {"min", "max"} or not value:
            raise ValueError("row_count takes {min: N} and/or {max: N}")
        for k, v in value.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"row_count {k} must be a whole number >= 0 (not {v!r})")
        return [Check(kind, low=value.get("min"), high=value.get("max"))]
    if kind == "freshness":
        if not isinstance(value, dict) or set(value) != {"column", "max_age"}:
            raise ValueError("freshness takes {column: updated_at, max_age: 2d}")
        return [Check(kind, (str(value["column"]),), max_age=parse_age(value["max_age"]))]
    if kind == "expression":
        if not isinstance(value, str) or not value.strip():
            raise ValueError('expression takes a boolean SQL expression, e.g. "price >= 0"')
        try:
            expr = pl.sql_expr(value)
        except Exception as exc:
            raise ValueError(f"not a valid expression: {value!r} ({exc})") from None
        columns = tuple(expr.meta.root_names())
        return [Check(kind, columns, sql=value)]
    raise ValueError(f"unknown check '{kind}' (checks: {', '.join(KINDS)})")


def parse_age(value: Any) -> float:
    """'2d', '12h', '30m', '45s', '1w' (or seconds as a number) -> seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    found = _AGE.fullmatch(str(value))
    if not found:
        raise ValueError(f"max_age must look like 45s, 30m, 12h, 2d or 1w (not {value!r})")
    return float(found.group(1)) * _AGE_UNITS[found.group(2)]
