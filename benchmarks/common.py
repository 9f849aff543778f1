"""Shared benchmark plumbing: TPC-H data, timing a command with its own peak RSS, tables."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
PG_URL = os.environ.get("HYGGE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Measurement:
    label: str
    seconds: float
    peak_rss_mb: float
    rows: int
    cpu_seconds: float = 0.0  # user + system time of the process: less moved by load

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


def psql(sql: str) -> str:
    """Run one statement with psql on PG_URL; its output, unaligned."""
    done = subprocess.run(
        ["psql", PG_URL, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def tpch_lineitem(scale: int, parts: int | None = None) -> Path:
    """TPC-H lineitem at `scale` as parquet, generated once with tpchgen-cli and cached.

    One file (`.../lineitem.parquet`), or with `parts` a folder of that many files."""
    out = DATA / (f"sf{scale}" if parts is None else f"sf{scale}-parts{parts}")
    target = out / ("lineitem.parquet" if parts is None else "lineitem")
    have = target.exists() if parts is None else len(list(target.glob("*.parquet"))) == parts
    if not have:
        out.mkdir(parents=True, exist_ok=True)
        print(f"generating TPC-H lineitem at scale factor {scale} ...", file=sys.stderr)
        split = [] if parts is None else ["--parts", str(parts)]
        subprocess.run(
            [
                "tpchgen-cli",
                "parquet",
                "-s",
                str(scale),
                "--tables",
                "lineitem",
                *split,
                "--output-dir",
                str(out),
            ],
            check=True,
        )
    return target


def measure(
    label: str,
    command: list[str],
    rows: int,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Measurement:
    """Run `command` once; wall time, the peak RSS (wait4: the largest of the process and
    the children it waited for) and CPU seconds."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        command, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, cwd=cwd or ROOT
    )
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{label}: command failed: {' '.join(command)}")
    cpu = usage.ru_utime + usage.ru_stime
    return Measurement(label, seconds, usage.ru_maxrss / 1024, rows, cpu)


def print_table(title: str, rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    for r in [header, *rows]:
        print(
            "  ".join(
                str(c).rjust(w) if i else str(c).ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
