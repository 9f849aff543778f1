"""TPC-H lineitem into an Open Mirroring landing zone vs into a plain parquet dataset.

    python -m benchmarks.bench_mirroring             # scale factor 1 (6,001,215 rows)
    python -m benchmarks.bench_mirroring --repeat 7

The same flow (parquet home, same batch size and codec) into `type: parquet` (the baseline,
measured in the same run) and into `type: open_mirroring` in two modes: `replace` (the
documented reset, then an initial load without row markers) and `snapshot` (upserts with
`__rowMarker__`, plus the keys recorded for delete detection). Target (issue 22): the landing
zone at >= 0.9x the parquet dataset's rows/s. The cases run interleaved (each round runs
every case, in a rotating order); the table shows medians, the speed ratio as the median of
each round's pair, and the CPU seconds (user + system), which load moves less than wall
time. Each run's output is checked by row count.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from statistics import median

import pyarrow.parquet as pq

from benchmarks.common import Measurement, measure, print_table, tpch_lineitem
from tests.helpers import write_flows

BATCH = 100_000
CODEC = "snappy"
KEY = "[l_orderkey, l_linenumber]"
STORES = {
    "parquet dataset": f"{{type: parquet, path: OUT, compression: {CODEC}}}",
    "landing zone, replace": (
        f"{{type: open_mirroring, path: OUT, table: lineitem, key: {KEY}, compression: {CODEC}}}"
    ),
    "landing zone, snapshot": (
        f"{{type: open_mirroring, path: OUT, table: lineitem, key: {KEY}, compression: {CODEC},"
        " mode: snapshot}"
    ),
}


def rows_written(out: Path) -> int:
    files = [f for f in out.rglob("*.parquet") if "_hygge" not in f.parts]
    return sum(pq.read_metadata(f).num_rows for f in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    source = tpch_lineitem(args.scale)
    rows = pq.read_metadata(source).num_rows
    runs: dict[str, list[Measurement]] = {label: [] for label in STORES}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="hygge-bench-") as tmp:
        work = Path(tmp)
        labels = list(STORES)
        for r in range(args.repeat):  # interleaved: every round runs each case once
            # a different order each round: no case always runs after the same one (the
            # previous run's files are still being written back to disk)
            for label in labels[r % len(labels) :] + labels[: r % len(labels)]:
                store = STORES[label]
                out = work / "out"
                flows = write_flows(
                    work,
                    f"flows:\n  lineitem:\n    home: {{path: {source}, batch_size: {BATCH}}}\n"
                    f"    store: {store.replace('OUT', str(out))}\n",
                )
                got = measure(label, [sys.executable, "-m", "hygge", "run", str(flows)], rows)
                written = rows_written(out)
                assert written == rows, f"{label}: wrote {written} rows, expected {rows}"
                shutil.rmtree(out)
                runs[label].append(got)
    load_after = os.getloadavg()[0]
    base = runs["parquet dataset"]
    table = []
    for label, got in runs.items():
        seconds = median(m.seconds for m in got)
        cpu = median(m.cpu_seconds for m in got)
        # the ratio of each round's pair (measured side by side), then their median
        pair = median(b.seconds / m.seconds for b, m in zip(base, got, strict=True))
        table.append(
            (
                label,
                f"{seconds:.2f}",
                f"{rows / seconds:,.0f}",
                f"{cpu:.2f}",
                f"{max(m.peak_rss_mb for m in got):.0f}",
                f"{pair:.2f}x",
                f"{median(m.cpu_seconds for m in base) / cpu:.2f}x",
            )
        )
    print_table(
        f"TPC-H lineitem SF{args.scale} ({rows:,} rows, {CODEC}, batch {BATCH:,}; median of "
        f"{args.repeat} interleaved rounds; load average {load_before:.1f} -> {load_after:.1f})",
        table,
        ("into", "seconds", "rows/s", "CPU s", "peak RSS MB", "vs parquet", "CPU vs parquet"),
    )
    print("\ntarget: each landing zone >= 0.90x the parquet dataset (speed: parquet's time / its)")


if __name__ == "__main__":
    main()
