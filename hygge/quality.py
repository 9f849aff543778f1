"""`checks:` -- quality checks computed batch by batch, merged across parts, decided once.

A `Check` is one line of `checks:` (hygge/check_spec.py). A `CheckAccumulator` holds what
the checks have seen so far: `update(batch)` per batch, `merge(other)` across the parts of a
partitioned flow (in one process or from the workers, through `to_json`/`from_json`), and
`decide()` -> `CheckReport` right before the commit.

Memory stays bounded whatever the data size: row checks keep a count and a few examples;
`unique` keeps one 64-bit hash per distinct key (8 bytes a key) in one sorted run, into which
the pending batches' hashes are merged once a million (or half as many as the run holds) are
pending (a linear pass that finds the repeats); past 2 million keys (32 million under
quarantine, which merges every batch) the run lives in a temporary file, read and rewritten a
piece at a time by each merge (hygge/keyset.py);
`row_count` keeps a count; `freshness` a maximum.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from hygge.check_spec import Check
from hygge.keyset import EAGER_SPILL_KEYS, SPILL_KEYS, KeySet
from hygge.rowhash import hash_expr

EXAMPLES = 5  # failing rows kept per check, to show what is wrong
MASK = "***"


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
            text += f", {_count(self.failing, 'failing row')}"
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
            return f"{_count(len(self.outcomes), 'check')} passed"
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
        self.across = 0  # keys repeated in another part (found by `merge`)
        self.failing = [0] * len(checks)
        self.examples: list[list[dict[str, Any]]] = [[] for _ in checks]
        if eager and spill_keys == SPILL_KEYS:  # a merge per batch: keep the run in memory longer
            spill_keys = EAGER_SPILL_KEYS
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
                self.across += across
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


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


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
