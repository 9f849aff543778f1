"""A flow's quality gate -- write, audit, publish: each batch is shaped and fed to the checks
on its way to the store; right before the commit the checks decide, and `on_check_failure`
says what a failure means:

- `fail`: nothing is published (the store aborts; an incremental flow's state stays where it
  was, since it rides in the same commit);
- `warn`: everything is published, the failures are reported;
- `quarantine`: rows failing a row check or repeating a key go, with the reason, to the
  quarantine store instead; the rest is published. Whole-dataset checks (row_count,
  freshness) have no rows to set aside, so their failure fails the flow.

The Flow calls four hooks (`open`, `batch`, `before_commit`, `abort`); a partitioned flow's
parts only accumulate (`decides=False`) and their states are merged and judged once, before
the one commit (`Quality.judge_parts`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import polars as pl

from hygge.check_spec import Check
from hygge.contract import Home, Store
from hygge.errors import FlowError
from hygge.quality import CheckAccumulator, CheckReport
from hygge.shape import AuditValues, ShapeError, Shaper, ShapeSpec, require_hashable

log = logging.getLogger("hygge.checks")

OnFailure = Literal["fail", "warn", "quarantine"]
REASON_COLUMN = "_hygge_check"  # what a quarantined row failed
_ROWS = ("not_null", "accepted_values", "range", "expression", "unique")


class ChecksFailed(FlowError):
    """The checks failed under `on_check_failure: fail`: nothing was published."""

    def __init__(self, flow: str, report: CheckReport, why: str = "") -> None:
        lines = "\n".join(f"  {line}" for line in report.lines())
        super().__init__(
            f"flow '{flow}': {report.summary()}{why}; nothing was published\n{lines}",
            hint="fix the data at its source, or set `on_check_failure: warn` (publish and "
            "report) or `quarantine` (set failing rows aside)",
        )
        self.report = report


@dataclass(frozen=True)
class Quality:
    """A flow's `shape:`, `checks:` and `on_check_failure:`, ready to make gates."""

    flow: str
    shape: ShapeSpec | None
    checks: tuple[Check, ...]
    on_failure: OnFailure = "fail"
    quarantine: Callable[[], Store[Any]] | None = None
    secret: tuple[str, ...] = ()
    audit: AuditValues | None = None

    def gate(
        self, decides: bool = True, quarantine: Callable[[], Store[Any]] | None = None
    ) -> Gate:
        """A gate for one run of the flow, or (`decides=False`) of one of its parts, whose
        failing rows go to `quarantine` (a part of the quarantine store) instead."""
        return Gate(self, decides, self.quarantine if decides else quarantine)

    def accumulator(self) -> CheckAccumulator:
        hashed = {}
        if self.shape is not None and self.shape.hash_key is not None:
            key = self.shape.hash_key
            hashed[tuple(key.columns)] = key.name  # unique on the hash key's columns: reuse it
        return CheckAccumulator(
            list(self.checks),
            self.secret,
            eager=self.on_failure == "quarantine",
            hashed=hashed,
        )

    def judge(self, report: CheckReport) -> CheckReport:
        """Apply `on_check_failure` to the decided checks: raise, or return the report."""
        _log(self.flow, report)
        if report.passed:
            return report
        if self.on_failure == "warn":
            return report
        if self.on_failure == "quarantine":
            whole = [o for o in report.failed if o.check.split("(")[0] not in _ROWS]
            if not whole:
                return report
            raise ChecksFailed(self.flow, CheckReport(whole), " (no rows to quarantine)")
        raise ChecksFailed(self.flow, report)

    def judge_parts(self, parts: list[CheckAccumulator]) -> str:
        """Merge the parts' states (duplicates across parts count) and judge them once.
        Quarantine: each part set its own failing rows aside, but a key repeated in two
        parts is found only now, with both staged: that fails the flow."""
        if not self.checks:
            return ""
        whole = self.accumulator()
        for part in parts:
            whole.merge(part)
            part.close()
        log.debug("flow %s: the checks held %s", self.flow, whole.describe())
        try:
            report = whole.decide()
            if self.on_failure == "quarantine" and whole.across:
                _log(self.flow, report)
                raise ChecksFailed(
                    self.flow,
                    CheckReport([o for o in report.failed if o.check.startswith("unique(")]),
                    f" ({whole.across:,} keys repeat across partitions, which cannot be set "
                    "aside once staged; partition on the key so its repeats meet in one part)",
                )
            return describe(self.judge(report))
        finally:
            whole.close()


def describe(report: CheckReport) -> str:
    """The checks' line in a flow's summary."""
    text = report.summary()
    if not report.passed:
        text += " (" + "; ".join(report.lines()) + ")"
    return text


def _log(flow: str, report: CheckReport) -> None:
    """One log line per decision (INFO: the CLI prints the outcome itself); `checks` (extra)
    holds every outcome for a JSON log formatter."""
    log.info(
        "flow %s: %s",
        flow,
        describe(report),
        extra={"flow": flow, "checks": report.to_json()},
    )


@runtime_checkable
class _NamesFiles(Protocol):
    """A home that can add a column naming each row's file (the file homes)."""

    source_column: str | None


class Gate:
    """One run of one flow (or one part) through its shape and checks."""

    def __init__(
        self,
        quality: Quality,
        decides: bool = True,
        quarantine: Callable[[], Store[Any]] | None = None,
    ) -> None:
        self.quality = quality
        self.decides = decides
        aside = quality.on_failure == "quarantine" and bool(quality.checks)
        self.new_quarantine = quarantine if aside else None
        self.quarantine_sealed: dict[str, Any] | None = None  # a part's sealed quarantine
        audit = quality.audit or AuditValues.now("")
        self.shaper = Shaper(quality.shape, quality.flow, audit) if quality.shape else None
        self.acc = quality.accumulator()
        self.quarantined = 0
        self._quarantine: Store[Any] | None = None
        self._uncounted: pl.DataFrame | None = None  # shaped, not yet counted (`count`)
        self._verified: list[str] = []  # the columns the checks were last verified against

    async def open(self, home: Home[Any]) -> None:
        """Start an attempt: fresh counts; a file home marks each row's file if asked."""
        self.acc.close()
        self.acc = self.quality.accumulator()
        self.quarantined = 0
        self._uncounted = None
        shaper = self.shaper
        # config_quality allows the `file` audit column on file homes only
        if shaper is not None and shaper.file_column and isinstance(home, _NamesFiles):
            home.source_column = shaper.file_column
        self.quarantine_sealed = None
        if self.new_quarantine is not None:
            self._quarantine = self.new_quarantine()
            await self._quarantine.open()
        q = self.quality
        log.debug(
            "flow %s: %s; %s",
            q.flow,
            "shaping each batch" if self.shaper is not None else "no shaping",
            f"checks {', '.join(c.label for c in q.checks)} (on failure: {q.on_failure})"
            if q.checks
            else "no checks",
        )

    async def batch(self, df: pl.DataFrame) -> pl.DataFrame:
        """A batch shaped and (quarantine) counted by the checks and without its failing
        rows; otherwise `count()` counts it, while the store writes it."""
        if self.shaper is not None:
            df = self.shaper.apply(df)
        if not self.quality.checks:
            return df
        if df.columns != self._verified:
            self._verify(df)
        if self._quarantine is not None:
            split = self.acc.failing_rows(df)
            self.acc.update(df)
            if split is not None:
                mask, reason = split
                bad = df.filter(mask).with_columns(reason.filter(mask).alias(REASON_COLUMN))
                await self._quarantine.write(bad)
                self.quarantined += bad.height
                self.acc.rows -= bad.height  # row_count counts what is published
                df = df.filter(~mask)
            return df
        self._uncounted = df
        return df

    async def count(self) -> None:
        """The checks count the last batch `batch` returned, in a thread: polars releases
        the GIL, so they run on another core while the store encodes the same batch."""
        df, self._uncounted = self._uncounted, None
        if df is not None:
            await asyncio.to_thread(self.acc.update, df)

    def _verify(self, df: pl.DataFrame) -> None:
        """The checks' columns exist (after shaping), and freshness's is a date or time."""
        flow = self.quality.flow
        for check in self.quality.checks:
            for column in check.columns:
                if column not in df.columns:
                    raise ShapeError(
                        f"flow '{flow}': check {check.label} names column '{column}', which "
                        f"the data does not have (after shaping); available: "
                        f"{', '.join(df.columns)}",
                        hint="use one of the available names",
                    )
            if check.kind == "unique":
                require_hashable(
                    f"flow '{flow}': check {check.label}",
                    check.columns,
                    df.schema,
                    hint="check scalar columns (numbers, text, dates, times, binary)",
                )
            if check.kind == "freshness" and not df.schema[check.columns[0]].is_temporal():
                raise ShapeError(
                    f"flow '{flow}': check {check.label} needs a date or timestamp column; "
                    f"'{check.columns[0]}' is {df.schema[check.columns[0]]}",
                    hint="cast it under `shape.cast` (e.g. timestamp), or check another column",
                )
        self._verified = list(df.columns)

    async def before_commit(self) -> str:
        """Decide (unless a part), set failing rows aside for good; raises ChecksFailed.
        A part only seals its quarantine part: the flow's commit publishes it (or not)."""
        if not self.decides:
            if self._quarantine is not None:
                await self._quarantine.commit()
                self.quarantine_sealed = getattr(self._quarantine, "sealed", None)
                self._quarantine = None
            return ""
        if not self.quality.checks:
            return ""
        await self.count()
        log.debug("flow %s: the checks held %s", self.quality.flow, self.acc.describe())
        report = self.quality.judge(self.acc.decide())
        self.acc.close()
        if self._quarantine is not None:
            await self._quarantine.commit()
            self._quarantine = None
        text = describe(report)
        if self.quarantined:
            text += f"; {self.quarantined:,} rows quarantined"
        return text

    async def abort(self) -> None:
        self.acc.close()
        if self._quarantine is not None:
            await self._quarantine.abort()
            self._quarantine = None
