"""Shared benchmark plumbing: TPC-H data, timing a command with its own peak RSS, tables."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
PG_URL = os.environ.get("HYGGE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Measurement:
    label: str
    seconds: float
    peak_rss_mb: float  # of the whole process tree, sampled (at least the largest process's)
    rows: int
    cpu_seconds: float = 0.0  # user + system of the process and the children it waited for
    load: float = 0.0  # the 1-minute load average when it ended

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
        # the venv's own tpchgen-cli, so `.venv/bin/python -m benchmarks...` works unactivated
        tpchgen = shutil.which("tpchgen-cli", path=str(Path(sys.executable).parent))
        subprocess.run(
            [
                tpchgen or "tpchgen-cli",
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


def _tree_sum(pid: int, value: Callable[[int, list[str]], float]) -> float:
    """The sum of `value(pid, stat fields)` over `pid` and all its descendants now, from
    /proc (0 once it is gone); `value` is asked only for the tree's processes."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        stats[int(entry)] = fields
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        if p in stats:
            total += value(p, stats[p])
        todo.extend(children.get(p, []))
    return total


def tree_rss_kb(pid: int) -> int:
    """The summed RSS of `pid` and all its descendants now, from /proc (0 once it is gone)."""
    page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
    return int(_tree_sum(pid, lambda _, fields: int(fields[21]) * page_kb))


def tree_peak_rss_kb(pid: int) -> int:
    """The summed own peaks (VmHWM, since each one's exec) of `pid` and its descendants:
    exact for one process and at most a little high for a tree (the small relay's peak
    need not fall at the same moment), where sampling RSS every 0.1 s misses short peaks
    (on MariaDB -> parquet SF1 the sampler read 341-344 MB where VmHWM said 357-476)."""
    return int(_tree_sum(pid, lambda p, _: peak_rss_kb(p)))


def peak_rss_kb(pid: int | str = "self") -> int:
    """A process's peak RSS so far (VmHWM), in KB; 0 once it is gone."""
    with contextlib.suppress(OSError, StopIteration), open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return 0


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by `pid`, its descendants and the children
    they have reaped, from /proc (0 once it is gone)."""
    tick = os.sysconf("SC_CLK_TCK")
    return _tree_sum(pid, lambda _, fields: sum(int(x) for x in fields[11:15]) / tick)


def run_sampled(
    command: list[str], env: dict[str, str], cwd: Path, stdout: int | None = None
) -> tuple[int, float, float, float]:
    """Run `command` to its end: (exit code, wall seconds, peak RSS in KB of its process tree
    (the summed own peaks of its processes, read every 0.1 s: `tree_peak_rss_kb`, and at
    least the largest process's own peak from wait4), CPU seconds from wait4)."""
    # Linux starts a child's peak (wait4's ru_maxrss) at this process's own peak when it
    # forks (the copied memory map keeps its high-water mark), so that peak says something
    # only where it is above ours (after generating SF1 data here, every child "peaked" at
    # this process's 747 MB)
    forked_at = peak_rss_kb()
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=stdout)
    peak = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, tree_rss_kb(proc.pid), tree_peak_rss_kb(proc.pid))
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    if usage.ru_maxrss > forked_at:  # a run shorter than one sample, a peak between two
        peak = max(peak, usage.ru_maxrss)
    return (
        os.waitstatus_to_exitcode(status),
        seconds,
        peak,
        usage.ru_utime + usage.ru_stime,
    )


def measure(
    label: str,
    command: list[str],
    rows: int,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Measurement:
    """Run `command` once: wall time, the peak RSS of its process tree (its processes' own
    peaks, read every 0.1 s, and at least the largest one's from wait4), its CPU seconds
    (wait4)."""
    code, seconds, peak_kb, cpu = run_sampled(
        command, {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, cwd or ROOT
    )
    if code != 0:
        raise SystemExit(f"{label}: command failed: {' '.join(command)}")
    return Measurement(label, seconds, peak_kb / 1024, rows, cpu, os.getloadavg()[0])


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
