"""parquet -> parquet with `shape:` and `checks:` vs the same flow without them.

    python -m benchmarks.bench_shape              # TPC-H lineitem SF1
    python -m benchmarks.bench_shape --scale 1 --repeat 3

With: `naming: snake_case`, two audit columns (loaded_at: now, run_id: run), a hash key over
(l_orderkey, l_linenumber), and `not_null` + `unique` on (l_orderkey, l_linenumber).
Targets (issue 21): at most 1.25x the time and 1.2x the peak RSS of the flow without them.
Both flows run in the same invocation, alternating, best of `--repeat` each.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

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
    got = measure(label, [sys.executable, "-m", "hygge", "run", str(flows)], rows)
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
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    source = tpch_lineitem(args.scale)
    rows = pq.read_metadata(source).num_rows
    seconds: dict[str, float] = {}
    rss: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="hygge-bench-shape-") as tmp:
        work = Path(tmp)
        plain = flows_file(work, source, "plain", "")
        shaped = flows_file(work, source, "shaped", SHAPED)
        for _ in range(args.repeat):  # alternate: both see the same (busy) machine
            for label, flows, is_shaped in (("plain", plain, False), ("shaped", shaped, True)):
                m = run_once(label, flows, work / label, rows, is_shaped)
                seconds[label] = min(seconds.get(label, m.seconds), m.seconds)
                rss[label] = max(rss.get(label, 0.0), m.peak_rss_mb)
    base, with_shape = (Measurement(n, seconds[n], rss[n], rows) for n in ("plain", "shaped"))
    print_table(
        f"TPC-H lineitem SF{args.scale} ({rows:,} rows), parquet -> parquet: best time of "
        f"{args.repeat}, highest peak RSS",
        [
            (m.label, f"{m.seconds:.2f}", f"{m.rows_per_second:,.0f}", f"{m.peak_rss_mb:.0f}")
            for m in (base, with_shape)
        ],
        ("flow", "seconds", "rows/s", "peak RSS MB"),
    )
    time_ratio = with_shape.seconds / base.seconds
    rss_ratio = with_shape.peak_rss_mb / base.peak_rss_mb
    print(f"\ntime ratio {time_ratio:.2f}x (target <= 1.25x)")
    print(f"peak RSS ratio {rss_ratio:.2f}x (target <= 1.2x)")


if __name__ == "__main__":
    main()
