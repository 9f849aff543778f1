"""Test-only homes that workers load through HYGGE_PLUGINS=tests.distributed_plugins.

- `slow`: `rows` rows (id 0..rows-1) in batches, sleeping `delay` seconds between batches,
  so a test can watch progress or kill the worker mid-flow. `connection` is held and never
  shown, like a database URL would be; `fail_loudly` raises an error that quotes it.
- `flaky`: fails with a connection reset the first `fail_times` reads (counted in a file,
  shared by every worker), then yields its rows: a transient fault that heals.
- `pieces`: `slow` that splits into partitions (logging each part's reads; one can fail).
"""

from __future__ import annotations

import asyncio
import fcntl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import polars as pl

from hygge.contract import Home, HomeSettings, SplittableHome
from hygge.errors import HomeError


class SlowSettings(HomeSettings):
    rows: int = 1000
    delay: float = 0.0
    connection: str | None = None
    fail_loudly: bool = False


class SlowHome(Home):
    type_name = "slow"
    Settings = SlowSettings

    async def estimate_rows(self) -> int | None:
        return self.settings.rows  # known exactly: the progress bar has a total

    async def read_batches(self) -> AsyncIterator[pl.DataFrame]:
        s = self.settings
        if s.fail_loudly:
            raise HomeError(f"cannot connect to {s.connection}: password authentication failed")
        for start in range(0, s.rows, s.batch_size):
            stop = min(start + s.batch_size, s.rows)
            yield pl.DataFrame({"id": pl.int_range(start, stop, eager=True, dtype=pl.Int64)})
            if s.delay:
                await asyncio.sleep(s.delay)


class FlakySettings(HomeSettings):
    rows: int = 100
    fail_times: int = 2
    counter: str  # a file counting the reads, shared by every worker


class FlakyHome(Home):
    type_name = "flaky"
    Settings = FlakySettings

    async def read_batches(self) -> AsyncIterator[pl.DataFrame]:
        if _bump(Path(self.settings.counter)) <= self.settings.fail_times:
            raise ConnectionResetError(104, "Connection reset by peer")
        yield pl.DataFrame({"id": pl.int_range(0, self.settings.rows, eager=True)})


def _bump(path: Path) -> int:
    with path.open("a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        count = int(f.read() or 0) + 1
        f.seek(0)
        f.truncate()
        f.write(str(count))
        return count


class CrashSettings(HomeSettings):
    counter: str  # a file counting the attempts


class CrashHome(Home):
    """Kills the process reading it (like the out-of-memory killer would), every time."""

    type_name = "crash"
    Settings = CrashSettings

    async def read_batches(self) -> AsyncIterator[pl.DataFrame]:
        import os
        import signal

        _bump(Path(self.settings.counter))
        yield pl.DataFrame({"id": [1]})
        os.kill(os.getpid(), signal.SIGKILL)


class PiecesSettings(HomeSettings):
    rows: int = 1000
    delay: float = 0.0  # seconds between batches
    log: str  # a file where every read of a part appends its part number (all workers)
    fail_part: int | None = None  # this part fails for good


class PiecesHome(SplittableHome, Home):
    """`slow`, splittable: ids 0..rows-1 cut into equal ranges, one per partition."""

    type_name = "pieces"
    Settings = PiecesSettings
    share: tuple[int, int, int] | None = None  # (part, start, stop)

    async def plan_parts(self, count: Any, ranges: Any = None) -> list[dict[str, Any]]:
        n, rows = int(count), self.settings.rows
        return [{"part": i, "start": rows * i // n, "stop": rows * (i + 1) // n} for i in range(n)]

    def part(self, descriptor: dict[str, Any]) -> PiecesHome:
        home = PiecesHome(self.name, self.settings)
        home.share = (descriptor["part"], descriptor["start"], descriptor["stop"])
        return home

    async def read_batches(self) -> AsyncIterator[pl.DataFrame]:
        assert self.share is not None
        part, first, end = self.share
        s = self.settings
        with open(s.log, "a") as log:  # one short line, appended atomically
            log.write(f"{part}\n")
        if part == s.fail_part:
            raise HomeError(f"part {part} is broken")
        for start in range(first, end, s.batch_size):
            stop = min(start + s.batch_size, end)
            yield pl.DataFrame({"id": pl.int_range(start, stop, eager=True, dtype=pl.Int64)})
            if s.delay:
                await asyncio.sleep(s.delay)
