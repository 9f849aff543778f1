"""`checks:` -- quality checks computed batch by batch, merged across parts, decided once.

A `Check` is one line of `checks:` (parsed by `parse_checks`, which the config layer calls).
A `CheckAccumulator` holds what the checks have seen so far: `update(batch)` per batch,
`merge(other)` across the parts of a partitioned flow (in one process or from the workers,
through `to_json`/`from_json`), and `decide()` -> `CheckReport` right before the commit.

Memory stays bounded whatever the data size: row checks keep a count and a few examples;
`unique` keeps one 64-bit hash per distinct key (8 bytes a key; 2^-64 odds of two keys
colliding), in sorted runs merged as they grow, and once they pass `spill_keys` the runs move to
memory-mapped files in a temporary folder; `row_count` keeps a count; `freshness` a maximum.
"""

from __future__ import annotations

import base64
import io
import re
import tempfile
import zlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from hygge.shape import hash_expr

EXAMPLES = 5  # failing rows kept per check, to show what is wrong
SPILL_KEYS = 32_000_000  # distinct `unique` keys held in memory (256 MB) before spilling
COMPACT_ROWS = 1_000_000  # `unique` keys pending (hash and key values) before a compaction
MASK = "***"
_AGE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# --- what flows.yml says ------------------------------------------------------------------


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


# --- what the checks have seen ------------------------------------------------------------


@dataclass
class CheckOutcome:
    """How one check ended: `failing` rows (row_count: the rows counted), a few examples."""

    check: str
    passed: bool
    failing: int = 0
    detail: str = ""
    examples: list[dict[str, Any]] = field(default_factory=list)

    def line(self) -> str:
        if self.passed:
            return f"{self.check}: passed"
        text = f"{self.check}: FAILED"
        if self.failing:
            text += f", {self.failing:,} failing rows"
        if self.detail:
            text += f" ({self.detail})"
        if self.examples:
            text += "; e.g. " + "; ".join(_example(e) for e in self.examples[:3])
        return text


def _example(row: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in row.items())


@dataclass
class CheckReport:
    """What the checks decided for a whole flow."""

    outcomes: list[CheckOutcome]

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outcomes)

    @property
    def failed(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if not o.passed]

    def summary(self) -> str:
        """One line: '7 checks passed' or '2 of 7 checks failed: unique(id), ...'."""
        if self.passed:
            return f"{len(self.outcomes)} checks passed"
        names = ", ".join(o.check for o in self.failed)
        return f"{len(self.failed)} of {len(self.outcomes)} checks failed: {names}"

    def lines(self) -> list[str]:
        return [o.line() for o in self.failed]

    def to_json(self) -> list[dict[str, Any]]:
        return [o.__dict__ for o in self.outcomes]


class CheckAccumulator:
    """Everything the checks of one flow (or one part of it) have seen so far."""

    def __init__(
        self,
        checks: list[Check],
        secret: tuple[str, ...] = (),
        spill_keys: int = SPILL_KEYS,
        *,
        eager: bool = False,
        hashed: dict[tuple[str, ...], str] | None = None,
    ) -> None:
        self.checks = checks
        self.secret = set(secret)
        self.spill_keys = spill_keys
        # eager: find repeated keys batch by batch (quarantine needs them before the write)
        self.eager = eager
        # columns -> a column already holding their hash (the shape's hash_key): not hashed twice
        self.hashed = hashed or {}
        self.rows = 0
        self.failing = [0] * len(checks)
        self.examples: list[list[dict[str, Any]]] = [[] for _ in checks]
        self.keys: dict[int, KeySet] = {
            i: KeySet(spill_keys) for i, c in enumerate(checks) if c.kind == "unique"
        }
        self.newest: dict[int, Any] = {}  # freshness: the newest value seen

    def failing_rows(self, df: pl.DataFrame) -> tuple[pl.Series, pl.Series] | None:
        """Which rows of `df` fail a row check or repeat a key (quarantine splits on this),
        with the reason of each failing row; None when every row passes. Counts nothing."""
        masks = []
        for i, check in enumerate(self.checks):
            if check.per_row:
                masks.append((check.label, df.select(check.failing()).to_series()))
            elif check.kind == "unique":
                masks.append((check.label, self.keys[i].peek(self._hashes(df, check.columns))))
        if not any(m.any() for _, m in masks):
            return None
        reasons = pl.DataFrame(
            {f"m{i}": m.cast(pl.Boolean) for i, (_, m) in enumerate(masks)}
        ).select(
            pl.concat_str(
                [pl.when(pl.col(f"m{i}")).then(pl.lit(lbl)) for i, (lbl, _) in enumerate(masks)],
                separator="; ",
                ignore_nulls=True,
            )
        )
        reason = reasons.to_series()
        return reason.is_not_null() & (reason != ""), reason

    def update(self, df: pl.DataFrame) -> None:
        """Take one batch into account (after shaping: the columns as they are staged)."""
        self.rows += df.height
        if not df.height:
            return
        for i, check in enumerate(self.checks):
            if check.per_row:
                mask = df.select(check.failing()).to_series()
                self._count(i, df, mask)
            elif check.kind == "unique":
                keys = self.keys[i]
                found = keys.add(self._hashes(df, check.columns), df.select(check.columns))
                self._repeats(i, keys.compact() if self.eager else found)
            elif check.kind == "freshness":
                newest = df.get_column(check.columns[0]).max()
                if newest is not None:
                    self.newest[i] = _later(self.newest.get(i), newest)

    def _count(self, i: int, df: pl.DataFrame, mask: pl.Series) -> None:
        bad = int(mask.sum() or 0)
        if not bad:
            return
        self.failing[i] += bad
        room = EXAMPLES - len(self.examples[i])
        if room > 0:
            shown = self.checks[i].shown() or df.columns
            rows = df.filter(mask).head(room).select(shown).to_dicts()
            self.examples[i] += [self._masked(r) for r in rows]

    def _repeats(self, i: int, found: tuple[int, pl.DataFrame] | None) -> None:
        """Count what a unique check's compaction found repeated, keep a few examples."""
        if found is None or not found[0]:
            return
        self.failing[i] += found[0]
        room = EXAMPLES - len(self.examples[i])
        self.examples[i] += [self._masked(r) for r in found[1].head(max(room, 0)).to_dicts()]

    def _compact(self) -> None:
        for i, keys in self.keys.items():
            self._repeats(i, keys.compact())

    def _hashes(self, df: pl.DataFrame, columns: tuple[str, ...]) -> pl.Series:
        known = self.hashed.get(columns)
        if known is not None and known in df.columns:
            return df.get_column(known).reinterpret(signed=False)
        return df.select(hash_expr(list(columns))).to_series()

    def _masked(self, row: dict[str, Any]) -> dict[str, Any]:
        return {k: MASK if k in self.secret else _plain(v) for k, v in row.items()}

    def merge(self, other: CheckAccumulator) -> None:
        """Fold in what another part of the same flow saw (duplicates across parts count)."""
        self._compact()
        other._compact()
        self.rows += other.rows
        for i in range(len(self.checks)):
            self.failing[i] += other.failing[i]
            room = EXAMPLES - len(self.examples[i])
            self.examples[i] += other.examples[i][: max(room, 0)]
            if i in self.keys:
                across = self.keys[i].merge(other.keys[i])
                self.failing[i] += across
                if across and len(self.examples[i]) < EXAMPLES:
                    self.examples[i].append(
                        {"note": f"{across:,} keys repeat in another partition"}
                    )
            if i in other.newest:
                self.newest[i] = _later(self.newest.get(i), other.newest[i])

    def decide(self, now: datetime | None = None) -> CheckReport:
        now = now or datetime.now(UTC)
        self._compact()
        outcomes = []
        for i, check in enumerate(self.checks):
            outcome = CheckOutcome(check.label, True)
            if check.kind == "row_count":
                low, high = check.low, check.high
                if (low is not None and self.rows < low) or (high is not None and self.rows > high):
                    outcome.passed = False
                    outcome.detail = f"{self.rows:,} rows"
            elif check.kind == "freshness":
                newest = self.newest.get(i)
                age = _age(newest, now)
                if age is None or age > check.max_age:
                    outcome.passed = False
                    outcome.detail = (
                        "no values"
                        if newest is None
                        else f"newest {check.columns[0]} is {_plain(newest)}, "
                        f"{_human_age(age or 0)} old (max {_human_age(check.max_age)})"
                    )
            elif self.failing[i]:
                outcome.passed = False
                outcome.failing = self.failing[i]
                outcome.examples = list(self.examples[i])
            outcomes.append(outcome)
        return CheckReport(outcomes)

    def describe(self) -> str:
        """What this state holds (for logs and --verbose)."""
        held = [f"{self.rows:,} rows counted"]
        for i, keys in self.keys.items():
            held.append(f"{self.checks[i].label}: {keys.describe()}")
        return "; ".join(held)

    def close(self) -> None:
        for keys in self.keys.values():
            keys.close()

    def to_json(self) -> dict[str, Any]:
        """This state as JSON (a worker's part sends it through the Redis board): counts,
        examples, newest values, and each unique check's key hashes, compressed."""
        self._compact()
        return {
            "rows": self.rows,
            "failing": self.failing,
            "examples": self.examples,
            "newest": {str(i): _plain(v) for i, v in self.newest.items()},
            "keys": {str(i): k.to_text() for i, k in self.keys.items()},
        }

    @classmethod
    def from_json(
        cls, checks: list[Check], data: dict[str, Any], secret: tuple[str, ...] = ()
    ) -> CheckAccumulator:
        acc = cls(checks, secret)
        acc.rows = int(data["rows"])
        acc.failing = [int(n) for n in data["failing"]]
        acc.examples = data["examples"]
        for i, value in data["newest"].items():
            acc.newest[int(i)] = _parse_time(value)
        for i, text in data["keys"].items():
            acc.keys[int(i)] = KeySet.from_text(text, acc.spill_keys)
        return acc


class KeySet:
    """A set of 64-bit key hashes: one sorted run of distinct hashes, and the batches added
    since it was last compacted (their hashes and key values, for examples).

    Adding a batch only keeps its hashes; every `compact_rows` rows (and before a decision)
    the pending hashes are sorted and merged into the run in one linear pass, which finds the
    repeats. So a batch costs a hash, and the whole flow about one sort of its keys. Past
    `spill_keys` the run lives in a memory-mapped Arrow file in a temporary folder.
    """

    def __init__(self, spill_keys: int = SPILL_KEYS, compact_rows: int = COMPACT_ROWS) -> None:
        self.spill_keys = spill_keys
        self.compact_rows = compact_rows
        self.run = pl.Series("h", [], dtype=pl.UInt64)
        self.pending: list[pl.DataFrame] = []  # h, then the key columns
        self.pending_rows = 0
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._spilled = 0

    def __len__(self) -> int:
        return len(self.run) + self.pending_rows

    def peek(self, hashes: pl.Series) -> pl.Series:
        """Which of these keys repeat (in the run, or earlier in this batch); adds nothing.
        (Quarantine compacts after every batch, so nothing is pending here.)"""
        first = hashes.is_first_distinct()
        if not len(self.run):
            return ~first
        at = self.run.search_sorted(hashes).clip(0, len(self.run) - 1)
        return ~first | (self.run.gather(at) == hashes)

    def add(self, hashes: pl.Series, keys: pl.DataFrame) -> tuple[int, pl.DataFrame] | None:
        """Keep a batch's keys; when enough are pending, compact (see `compact`)."""
        self.pending.append(keys.with_columns(hashes.alias("h")).select("h", *keys.columns))
        self.pending_rows += len(hashes)
        return self.compact() if self.pending_rows >= self.compact_rows else None

    def compact(self) -> tuple[int, pl.DataFrame] | None:
        """Merge the pending keys into the run: (how many repeated a key, a few of the rows
        holding a repeated key), or None when nothing is pending."""
        if not self.pending:
            return None
        pending = pl.concat(self.pending, how="vertical_relaxed")
        self.pending, self.pending_rows = [], 0
        fresh = pending.select(pl.col("h").sort())
        merged = self.run.to_frame().merge_sorted(fresh, "h").get_column("h")
        repeated = (merged == merged.shift(1)).fill_null(False)
        count = int(repeated.sum() or 0)
        examples = pending.clear()
        if count:
            culprits = merged.filter(repeated).head(EXAMPLES)
            examples = (  # one row per repeated key
                pending.filter(pl.col("h").is_in(culprits.implode()))
                .unique("h", keep="first", maintain_order=True)
                .head(EXAMPLES)
            )
            merged = merged.filter(~repeated)
        self.run = self._maybe_spill(merged.rechunk())
        return count, examples.drop("h")

    def _maybe_spill(self, run: pl.Series) -> pl.Series:
        if len(run) < self.spill_keys:
            return run
        import pyarrow as pa

        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix="hygge-unique-")
        self._spilled += 1
        path = Path(self._folder.name) / f"run{self._spilled}.arrow"
        run.to_frame("h").write_ipc(path, compression="uncompressed")
        # zero-copy: the keys stay in the file's pages (its buffers keep the mapping open)
        table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
        return pl.Series("h", table.column("h").combine_chunks())

    def merge(self, other: KeySet) -> int:
        """Fold in another part's keys (both compacted); how many of them this set held."""
        self.compact()
        other.compact()
        if not len(other.run):
            return 0
        merged = self.run.to_frame().merge_sorted(other.run.to_frame(), "h").get_column("h")
        repeated = (merged == merged.shift(1)).fill_null(False)
        self.run = self._maybe_spill(merged.filter(~repeated).rechunk())
        return int(repeated.sum() or 0)

    def describe(self) -> str:
        n = len(self)
        spilled = f", spilled to {self._folder.name}" if self._folder is not None else ""
        return f"{n:,} key hashes ({n * 8 / 2**20:.0f} MB{spilled})"

    def to_text(self) -> str:
        """The (compacted) run as compressed text, for the Redis board."""
        buffer = io.BytesIO()
        self.run.to_frame("h").write_ipc(buffer, compression="uncompressed")
        return base64.b64encode(zlib.compress(buffer.getvalue(), 1)).decode()

    @classmethod
    def from_text(cls, text: str, spill_keys: int = SPILL_KEYS) -> KeySet:
        keys = KeySet(spill_keys)
        data = pl.read_ipc(io.BytesIO(zlib.decompress(base64.b64decode(text)))).to_series()
        keys.run = keys._maybe_spill(data.sort().rename("h"))
        return keys

    def close(self) -> None:
        self.run = pl.Series("h", [], dtype=pl.UInt64)
        self.pending, self.pending_rows = [], 0
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None


def _plain(value: Any) -> Any:
    """A value as JSON can hold it."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _parse_time(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def _later(a: Any, b: Any) -> Any:
    if a is None:
        return b
    try:
        return max(_as_utc(a), _as_utc(b))
    except TypeError:
        return max(str(a), str(b))


def _as_utc(value: Any) -> Any:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value


def _age(value: Any, now: datetime) -> float | None:
    value = _as_utc(value)
    if not isinstance(value, datetime):
        return None
    return (now - value).total_seconds()


def _human_age(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))
