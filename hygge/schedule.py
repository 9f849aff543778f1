"""When a scheduled flow is due: cron expressions and intervals, parsed, checked and stepped.

A flow says `schedule: "*/15 * * * *"` (cron, five fields, in UTC unless it starts with
`CRON_TZ=<IANA zone> `; `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly` too) or
`every: 10m` (an interval: `90s`, `10m`, `1h30m`, `2d`). Cron expressions are read by
cronsim (small, no dependencies, kept by the author of healthchecks.io). Interval slots are
counted from the Unix epoch, so every scheduler replica computes the same slots: the slot is
what a scheduler claims in Redis, once (worker.scheduler).

Pure: no I/O, no clock of its own (callers pass `now`), so it is tested directly.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
CRON_EXAMPLE = (
    'schedule: "*/15 * * * *" (minute hour day-of-month month day-of-week, in UTC; '
    '"CRON_TZ=Europe/Copenhagen 0 2 * * *" for a time zone)'
)
EVERY_EXAMPLE = "every: 10m (or 90s, 1h30m, 2d)"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_INTERVAL = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
MIN_INTERVAL = 1.0  # seconds: a scheduler ticks about once a second


@dataclass(frozen=True)
class Schedule:
    """A flow's schedule: a cron expression or an interval in seconds (exactly one)."""

    cron: str | None = None
    interval: float | None = None

    @property
    def expression(self) -> str:
        """As the user wrote it (what a scheduler compares to notice a changed schedule)."""
        return self.cron if self.cron is not None else f"every {self.interval:g}s"

    def next_after(self, when: float) -> float:
        """The first slot strictly after `when` (epoch seconds)."""
        if self.interval is not None:
            return (math.floor(when / self.interval) + 1) * self.interval
        from cronsim import CronSim

        assert self.cron is not None
        zone, expression = split_zone(self.cron)
        start = datetime.fromtimestamp(math.floor(when), _zone(zone))
        return next(CronSim(_expand(expression), start)).timestamp()

    def describe(self) -> str:
        if self.interval is not None:
            return f"every {human_interval(self.interval)}"
        zone, expression = split_zone(self.cron or "")
        return f"cron '{expression}' ({zone or 'UTC'})"


def parse_every(text: str) -> float:
    """Seconds of `10m`, `1h30m`, `90s`, `2d`, or a bare number of seconds; ValueError with an
    example if it is none of these."""
    value = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        seconds = float(value)
    else:
        parts = _INTERVAL.findall(value)
        if not parts or _INTERVAL.sub("", value).strip():
            raise ValueError(f"'{text}' is not an interval; write it as {EVERY_EXAMPLE}")
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds < MIN_INTERVAL:
        raise ValueError(f"an interval of at least {MIN_INTERVAL:g}s is needed (not '{text}')")
    return seconds


def check_cron(expression: str) -> str:
    """The expression, checked; ValueError naming what is wrong, with an example."""
    from cronsim import CronSim, CronSimError

    zone, bare = split_zone(expression)
    if zone:
        try:
            _zone(zone)
        except (ValueError, KeyError, OSError):
            raise ValueError(
                f"unknown time zone '{zone}' in '{expression}'; write it as "
                'schedule: "CRON_TZ=Europe/Copenhagen 0 2 * * *" (an IANA zone name)'
            ) from None
    try:
        CronSim(_expand(bare), datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise ValueError(
            f"'{expression}' is not a cron expression ({exc}); write it as {CRON_EXAMPLE}, "
            "or use every: 10m"
        ) from None
    return expression


def human_interval(seconds: float) -> str:
    """90 -> '1m30s', 3600 -> '1h'."""
    out, rest = "", seconds
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if rest >= size:
            out += f"{int(rest // size)}{unit}"
            rest -= (rest // size) * size
    if rest or not out:
        out += f"{rest:g}s"
    return out


def when(epoch: float) -> str:
    """An epoch time as people read it in logs and tables: 2026-12-06 15:15:00 UTC."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def split_zone(expression: str) -> tuple[str | None, str]:
    """`CRON_TZ=Europe/Copenhagen 0 2 * * *` (or `TZ=...`, as cronie and others spell it):
    the zone and the bare expression; (None, expression) without one (UTC)."""
    text = expression.strip()
    for prefix in ("CRON_TZ=", "TZ="):
        if text.startswith(prefix):
            zone, _, rest = text[len(prefix) :].partition(" ")
            return zone, rest.strip()
    return None, text


def _zone(name: str | None) -> tzinfo:
    if name is None:
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except ZoneInfoNotFoundError:
        raise ValueError(name) from None


def _expand(expression: str) -> str:
    text = expression.strip()
    return MACROS.get(text.lower(), text)


def upcoming(options: Mapping[str, Any], now: float | None = None) -> list[str]:
    """For `hygge validate`: a line per scheduled flow with its next run (`options` are the
    flows' FlowOptions, by name)."""
    now = time.time() if now is None else now
    lines = []
    for name, flow_options in options.items():
        schedule = flow_options.scheduled
        if schedule is not None:
            lines.append(
                f"  {name}: {schedule.describe()}, next run {when(schedule.next_after(now))}"
            )
    return lines
