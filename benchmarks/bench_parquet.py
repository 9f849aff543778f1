"""parquet -> parquet: hygge vs a raw pyarrow streaming copy, and memory vs input size.

    python -m benchmarks.bench_parquet                       # SF1 and SF3, 3 runs each
    python -m benchmarks.bench_parquet --scale 1 --repeat 5  # SF1 only

Each run times three commands in turn, each its own process: the limit, a raw pyarrow
streaming copy (benchmarks/raw_pyarrow_copy.py: iter_batches -> one ParquetWriter); hygge as
it was before issue 23 (`writers: 1`, `dictionary: all`, pyarrow's default allocator,
mimalloc); and hygge as it is (two writers encoding at once, a dictionary only for columns
whose values repeat, jemalloc). Figures are medians over the runs (a ratio: the
median of the per-run ratios); peak RSS is of the whole process tree; CPU seconds are the
process's own (wait4), which suffer less than wall time on a shared machine; the load
average is printed next to each figure.

Targets: hygge >= 1.3x the raw copy and its peak RSS <= 1.1x that of hygge before (issue 23);
hygge's peak RSS at SF3 within 1.3x of SF1 (memory bounded by the batch, issue 2).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from benchmarks.common import Measurement, measure, print_table, tpch_lineitem
from tests.helpers import write_flows

BATCH = 100_000
CODEC = "zstd"
# label -> (extra store settings, extra environment)
BEFORE = {"ARROW_DEFAULT_MEMORY_POOL": "mimalloc"}
OLD = ", writers: 1, dictionary: all"
HYGGE = {"hygge before (1 writer, dict all, mimalloc)": (OLD, BEFORE), "hygge": ("", {})}
RAW = "raw pyarrow copy"


def run_once(scale: int, work: Path, source: Path, rows: int) -> dict[str, Measurement]:
    """One run of each command, in turn; every hygge output counted back."""
    out = work / f"raw_sf{scale}.parquet"
    raw_copy = [sys.executable, "-m", "benchmarks.raw_pyarrow_copy"]
    got = {RAW: measure(RAW, [*raw_copy, str(source), str(out), str(BATCH), CODEC], rows)}
    out.unlink()
    for label, (settings, env) in HYGGE.items():
        target = work / f"hygge_sf{scale}"
        flows = write_flows(
            work,
            f"flows:\n  lineitem:\n    home: {{path: {source}, batch_size: {BATCH}}}\n"
            f"    store: {{path: {target}, compression: {CODEC}{settings}}}\n",
            name=f"flows_sf{scale}.yml",
        )
        cli = [sys.executable, "-m", "hygge", "run", "--quiet", str(flows)]
        got[label] = measure(label, cli, rows, env=env)
        check = sum(pq.read_metadata(f).num_rows for f in target.glob("*.parquet"))
        assert check == rows, f"{label} wrote {check} rows, expected {rows}"
        shutil.rmtree(target)
    return got


def median(runs: list[Measurement]) -> Measurement:
    first = runs[0]
    return Measurement(
        first.label,
        statistics.median(r.seconds for r in runs),
        statistics.median(r.peak_rss_mb for r in runs),
        first.rows,
        statistics.median(r.cpu_seconds for r in runs),
        statistics.median(r.load for r in runs),
    )


def bench_scale(scale: int, work: Path, repeat: int) -> list[tuple[str, ...]]:
    source = tpch_lineitem(scale)
    rows = pq.read_metadata(source).num_rows
    runs: list[dict[str, Measurement]] = []
    for i in range(1, repeat + 1):
        run = run_once(scale, work, source, rows)
        runs.append(run)
        print(
            f"SF{scale} run {i}: "
            + "; ".join(
                f"{label} {m.seconds:.2f} s, CPU {m.cpu_seconds:.1f} s, {m.peak_rss_mb:.0f} MB, "
                f"load {m.load:.1f}"
                for label, m in run.items()
            ),
            flush=True,
        )
    before = median([r[next(iter(HYGGE))] for r in runs])
    table = []
    for label in [RAW, *HYGGE]:
        m = median([r[label] for r in runs])
        speed = statistics.median(r[RAW].seconds / r[label].seconds for r in runs)
        table.append(
            (
                f"SF{scale} {label}",
                f"{rows:,}",
                f"{m.seconds:.2f}",
                f"{m.cpu_seconds:.1f}",
                f"{m.peak_rss_mb:.0f}",
                f"{m.load:.1f}",
                f"{speed:.2f}x",
                f"{m.peak_rss_mb / before.peak_rss_mb:.2f}x",
            )
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, action="append", help="TPC-H scale factor(s)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs; medians")
    args = parser.parse_args()
    scales = args.scale or [1, 3]
    table: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory(prefix="hygge-bench-") as tmp:
        for scale in scales:
            table += bench_scale(scale, Path(tmp), args.repeat)
    print_table(
        f"parquet -> parquet ({CODEC}, batch {BATCH:,} rows; medians of {args.repeat} "
        "interleaved runs; targets: hygge >= 1.3x raw, RSS <= 1.1x before)",
        table,
        ("", "rows", "wall s", "CPU s", "peak RSS MB", "load", "speed vs raw", "RSS vs before"),
    )
    hygge = [row for row in table if row[0].endswith(" hygge")]
    if len(hygge) > 1:
        first, last = float(hygge[0][4]), float(hygge[-1][4])
        print(f"\nhygge peak RSS {hygge[-1][0].split()[0]} / SF{scales[0]}: {last / first:.2f}x")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"(machine: {os.cpu_count()} CPUs, load average now {load}: others share the CPUs)")


if __name__ == "__main__":
    main()
