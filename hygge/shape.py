"""`shape:` -- the last-mile shaping of a flow's batches: names, selection, types, audit columns
and a hash key, applied per batch (streaming) the same way in both runners.

`ShapeSpec` is what flows.yml says (validated in the config layer); `Shaper` applies it. The
plan of a shape depends only on a batch's schema, so it is worked out once per schema and every
batch after that is one `select` (no Python per row). A name that collides after normalisation,
or a `rename`/`select`/`cast` naming a missing column, is a `ShapeError` naming the columns,
raised on the first batch, before anything is staged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hygge.errors import FlowError
from hygge.rowhash import HashTypeError, check_type, row_hash

Naming = Literal["keep", "snake_case", "camel", "pascal"]
AuditValue = Literal["now", "run", "file"]

# Type names `cast:` accepts, as flows.yml spells them.
CAST_TYPES: dict[str, Any] = {
    "int8": pl.Int8,
    "int16": pl.Int16,
    "int32": pl.Int32,
    "int64": pl.Int64,
    "uint8": pl.UInt8,
    "uint16": pl.UInt16,
    "uint32": pl.UInt32,
    "uint64": pl.UInt64,
    "float32": pl.Float32,
    "float64": pl.Float64,
    "bool": pl.Boolean,
    "boolean": pl.Boolean,
    "string": pl.String,
    "str": pl.String,
    "date": pl.Date,
    "datetime": pl.Datetime("us"),
    "timestamp": pl.Datetime("us", "UTC"),
    "time": pl.Time,
    "binary": pl.Binary,
}
_DECIMAL = re.compile(r"decimal\((\d+)\s*,\s*(\d+)\)")


class ShapeError(FlowError):
    """A shape does not fit the data it met (a missing column, a collision): nothing staged."""


class HashKey(BaseModel):
    """`hash_key: {name: row_hash, columns: [a, b]}`: a stable 64-bit xxHash of the columns."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="The name of the hash column.")
    columns: list[str] = Field(min_length=1, description="The columns hashed, in this order.")


class ShapeSpec(BaseModel):
    """`shape:` of a flow. Applied in this order: naming, rename, cast, hash_key, select/drop,
    add (so `cast`, `select` and the hash key use the final names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    naming: Naming = Field("keep", description="keep, snake_case, camel or pascal.")
    rename: dict[str, str] = Field(default_factory=dict, description="old -> new names.")
    select: list[str] | None = Field(None, description="Keep only these columns, in order.")
    drop: list[str] = Field(default_factory=list, description="Columns to leave out.")
    cast: dict[str, str] = Field(default_factory=dict, description="column -> type.")
    add: dict[str, AuditValue] = Field(
        default_factory=dict, description="Audit columns: name -> now, run or file."
    )
    hash_key: HashKey | None = Field(None, description="A hash column of some columns.")

    @field_validator("cast")
    @classmethod
    def _known_types(cls, value: dict[str, str]) -> dict[str, str]:
        for column, name in value.items():
            if cast_type(name) is None:
                raise ValueError(
                    f"unknown type '{name}' for column '{column}' (types: "
                    f"{', '.join(CAST_TYPES)}, decimal(p,s))"
                )
        return value

    @field_validator("drop")
    @classmethod
    def _not_both(cls, value: list[str], info: Any) -> list[str]:
        if value and info.data.get("select") is not None:
            raise ValueError("give `select` or `drop`, not both")
        return value

    def produced(self) -> list[str]:
        """The columns the shape itself makes (kept whatever `select` says)."""
        made = list(self.add)
        if self.hash_key is not None:
            made.insert(0, self.hash_key.name)
        return made


def cast_type(name: str) -> Any:
    """The polars type `cast:` means by `name`, or None."""
    name = name.strip().lower()
    found = _DECIMAL.fullmatch(name)
    if found:
        return pl.Decimal(int(found.group(1)), int(found.group(2)))
    return CAST_TYPES.get(name)


def _words(name: str) -> list[str]:
    """A column name's words: "Customer Name" / "customerName" / "HTTPCode2" alike."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", spaced)
    return [w for w in re.split(r"[^0-9A-Za-z]+", spaced) if w]


def normalise(name: str, naming: Naming) -> str:
    """A column name in the chosen convention; a name without letters or digits is kept."""
    if naming == "keep":
        return name
    words = _words(name)
    if not words:
        return name
    if naming == "snake_case":
        return "_".join(w.lower() for w in words)
    pascal = "".join(w[:1].upper() + w[1:].lower() for w in words)
    return pascal if naming == "pascal" else pascal[:1].lower() + pascal[1:]


@dataclass(frozen=True)
class AuditValues:
    """What the audit columns hold for one run: its start time and its id."""

    run_id: str
    started: datetime

    @classmethod
    def now(cls, run_id: str) -> AuditValues:
        return cls(run_id, datetime.now(UTC))


def require_hashable(where: str, columns: Sequence[str], schema: pl.Schema, hint: str) -> None:
    """Refuse a column of a type the row hash cannot take (hash keys, `unique`), before any
    batch: the error names `where` and the column."""
    for column in columns:
        try:
            check_type(column, schema[column])
        except HashTypeError as exc:
            raise ShapeError(f"{where}: {exc}", hint=hint) from None


class Shaper:
    """Applies a ShapeSpec to each batch; `file_column` is the column a file home fills with
    each row's source file (the `file` audit value), None when no such column is asked for."""

    def __init__(self, spec: ShapeSpec, flow: str, audit: AuditValues) -> None:
        self.spec = spec
        self.flow = flow
        self.audit = audit
        self._plans: dict[tuple[tuple[str, Any], ...], list[pl.Expr]] = {}
        self._hashed: list[pl.Expr] = []  # the hash key's inputs in the last plan
        files = [name for name, value in spec.add.items() if value == "file"]
        self.file_column: str | None = f"__hygge_file_{files[0]}" if files else None

    def apply(self, df: pl.DataFrame) -> pl.DataFrame:
        key = tuple(df.schema.items())
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self.plan(list(df.columns))
            self._check_hashable(df)
        try:
            return df.select(plan)
        except pl.exceptions.InvalidOperationError as exc:  # a value `cast` cannot convert
            first = str(exc).strip().splitlines()[0]
            raise ShapeError(
                f"flow '{self.flow}': shape.cast failed: {first}",
                hint="fix the value at the source, or cast to a type that holds it",
            ) from None

    def _check_hashable(self, df: pl.DataFrame) -> None:
        """The hash key's columns are of types the row hash takes (before any batch)."""
        key = self.spec.hash_key
        if key is None:
            return
        require_hashable(
            f"flow '{self.flow}': shape.hash_key",
            key.columns,
            df.head(0).select(self._hashed).schema,
            hint="hash scalar columns (numbers, text, dates, times, binary)",
        )

    def columns(self, source: list[str]) -> list[str]:
        """The columns a batch with `source` columns has after shaping (for validate)."""
        return [e.meta.output_name() for e in self.plan(source)]

    def plan(self, source: list[str]) -> list[pl.Expr]:
        """The one `select` that shapes a batch with these columns."""
        spec = self.spec
        data = [c for c in source if c != self.file_column]
        named = self._names(data)  # final name -> source column
        for column in spec.cast:
            self._need(column, named, "cast")
        exprs: dict[str, pl.Expr] = {}
        for final, column in named.items():
            expr = pl.col(column)
            if final in spec.cast:
                expr = expr.cast(cast_type(spec.cast[final]), strict=True)
            exprs[final] = expr.alias(final)
        keep = list(named)
        if spec.select is not None:
            for column in spec.select:
                self._need(column, named, "select")
            keep = list(spec.select)
        for column in spec.drop:
            self._need(column, named, "drop")
        keep = [c for c in keep if c not in spec.drop]
        out = [exprs[c] for c in keep]
        made = set(keep)
        if spec.hash_key is not None:
            for column in spec.hash_key.columns:
                self._need(column, named, "hash_key")
            hashed = self._hashed = [exprs[c] for c in spec.hash_key.columns]
            self._fresh(spec.hash_key.name, made, "hash_key")
            # Signed: every store (PostgreSQL, MariaDB, Delta) has a 64-bit signed integer.
            key = pl.struct(hashed).map_batches(_hash_key, return_dtype=pl.Int64)
            out.append(key.alias(spec.hash_key.name))
            made.add(spec.hash_key.name)
        for name, value in spec.add.items():
            self._fresh(name, made, "add")
            made.add(name)
            out.append(self._audit(name, value, source))
        return out

    def _names(self, source: list[str]) -> dict[str, str]:
        """Final name -> source column, after naming and rename; a collision names both."""
        spec = self.spec
        normal = {c: normalise(c, spec.naming) for c in source}
        by_normal = {n: c for c, n in normal.items()}
        renames: dict[str, str] = {}  # source column -> new name
        for old, new in spec.rename.items():
            if old in by_normal:
                renames[by_normal[old]] = new
            elif old in normal:
                renames[old] = new
            else:
                raise self._missing(old, list(by_normal), "rename")
        named: dict[str, str] = {}
        for column in source:
            final = renames.get(column, normal[column])
            if final in named:
                raise ShapeError(
                    f"flow '{self.flow}': columns '{named[final]}' and '{column}' both "
                    f"become '{final}' after shaping",
                    hint="rename one of them under `shape.rename` (hygge never adds a "
                    "suffix on its own)",
                )
            named[final] = column
        return named

    def _need(self, column: str, named: dict[str, str], where: str) -> None:
        if column not in named:
            raise self._missing(column, list(named), where)

    def _missing(self, column: str, available: list[str], where: str) -> ShapeError:
        return ShapeError(
            f"flow '{self.flow}': shape.{where} names column '{column}', which the data "
            f"does not have (after naming/rename); available: {', '.join(available)}",
            hint="use one of the available names",
        )

    def _fresh(self, name: str, made: set[str], where: str) -> None:
        if name in made:
            raise ShapeError(
                f"flow '{self.flow}': shape.{where} adds column '{name}', which the data "
                "already has",
                hint="give the added column another name, or drop the data's column",
            )

    def _audit(self, name: str, value: str, source: list[str]) -> pl.Expr:
        if value == "now":
            return pl.lit(self.audit.started, dtype=pl.Datetime("us", "UTC")).alias(name)
        if value == "run":
            return pl.lit(self.audit.run_id, dtype=pl.String).alias(name)
        if self.file_column is None or self.file_column not in source:
            raise ShapeError(
                f"flow '{self.flow}': shape.add '{name}: file' needs a file home "
                "(its batches say which file they came from)",
                hint="remove it, or read from files (parquet, csv, ndjson)",
            )
        return pl.col(self.file_column).alias(name)


def _hash_key(key: pl.Series) -> pl.Series:
    """The hash key of a batch's struct of key columns (hygge/rowhash.py), as Int64 (the
    types are checked before the first batch: Shaper._check_hashable)."""
    return row_hash(key.struct.unnest()).reinterpret(signed=True)
