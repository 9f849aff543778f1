"""parquet -> parquet with `shape:` and `checks:` vs the same flow without them.

    python -m benchmarks.bench_shape              # TPC-H lineitem SF1
    python -m benchmarks.bench_shape --scale 1 --repeat 7

With: `naming: snake_case`, two audit columns (loaded_at: now, run_id: run), a hash key over
(l_orderkey, l_linenumber), and `not_null` + `unique` on (l_orderkey, l_linenumber).
Targets (issue 21): at most 1.25x the time and 1.2x the peak RSS of the flow without them.
Both flows run in the same invocation, in `--repeat` interleaved pairs (each first in turn);
the ratios are the medians of the pairs' ratios (wall and CPU seconds), with the load average.
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
CODEC = "zstd"
SHAPED = """
    shape:
      naming: snake_case
      add: {loaded_at: now, run_id: run}
      hash_key: {name: row_key, columns: [l_orderkey, l_linenumber]}
    checks:
      - not_null: [l_orderkey, l_linenumber]
      - unique: [l_orderkey, l_linenumber]
"""


def flows_file(work: Path, source: Path, name: str, extra: str) -> Path:
    return write_flows(
        work,
        f"flows:\n  lineitem:\n    home: {{path: {source}, batch_size: {BATCH}}}\n"
        f"    store: {{path: {work}/{name}, compression: {CODEC}}}\n{extra}",
        name=f"{name}.yml",
    )


def run_once(label: str, flows: Path, out: Path, rows: int, shaped: bool) -> Measurement:
    got = measure(label, [sys.executable, "-m", "hygge", "run", str(flows), "--quiet"], rows)
    files = list(out.glob("*.parquet"))
    written = sum(pq.read_metadata(f).num_rows for f in files)
    assert written == rows, f"{label}: wrote {written} rows, expected {rows}"
    names = pq.read_schema(files[0]).names
    assert ("row_key" in names and "run_id" in names) == shaped, names
    shutil.rmtree(out)
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1, help="TPC-H scale factor")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    source = tpch_lineitem(args.scale)
    rows = pq.read_metadata(source).num_rows
    pairs: list[tuple[Measurement, Measurement]] = []
    with tempfile.TemporaryDirectory(prefix="hygge-bench-shape-") as tmp:
        work = Path(tmp)
        plain = flows_file(work, source, "plain", "")
        shaped = flows_file(work, source, "shaped", SHAPED)
        for i in range(args.repeat):  # interleaved, each first in turn: both see the same load
            load = os.getloadavg()[0]
            runs = [("plain", plain, False), ("shaped", shaped, True)]
            got = {
                label: run_once(label, flows, work / label, rows, is_shaped)
                for label, flows, is_shaped in (runs if i % 2 == 0 else runs[::-1])
            }
            pairs.append((got["plain"], got["shaped"]))
            print(
                f"pair {i + 1}: plain {got['plain'].seconds:.1f} s, shaped "
                f"{got['shaped'].seconds:.1f} s, ratio "
                f"{got['shaped'].seconds / got['plain'].seconds:.2f}x (load {load:.1f})",
                flush=True,
            )
    table = []
    for n, label in enumerate(("plain", "shaped")):
        seconds = median(p[n].seconds for p in pairs)
        table.append(
            (
                label,
                f"{seconds:.2f}",
                f"{median(p[n].cpu_seconds for p in pairs):.2f}",
                f"{rows / seconds:,.0f}",
                f"{max(p[n].peak_rss_mb for p in pairs):.0f}",
            )
        )
    print_table(
        f"TPC-H lineitem SF{args.scale} ({rows:,} rows), parquet -> parquet: medians of "
        f"{args.repeat} interleaved pairs, highest peak RSS",
        table,
        ("flow", "seconds", "CPU seconds", "rows/s", "peak RSS MB"),
    )
    time_ratio = median(s.seconds / p.seconds for p, s in pairs)
    cpu_ratio = median(s.cpu_seconds / p.cpu_seconds for p, s in pairs)
    rss_ratio = max(s.peak_rss_mb for _, s in pairs) / max(p.peak_rss_mb for p, _ in pairs)
    print(f"\ntime ratio {time_ratio:.2f}x, median of the pairs' (target <= 1.25x)")
    print(f"CPU ratio {cpu_ratio:.2f}x, median of the pairs'")
    print(f"peak RSS ratio {rss_ratio:.2f}x (target <= 1.2x)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (2 CPUs)")


if __name__ == "__main__":
    main()
