"""parquet -> parquet: hygge vs a raw pyarrow streaming copy, and memory vs input size.

    python -m benchmarks.bench_parquet            # scale factors 1 and 3
    python -m benchmarks.bench_parquet --scale 1  # quicker

Targets (issue 2): hygge >= 0.9x raw pyarrow's rows/s; hygge's peak RSS at SF3 within 1.3x
of SF1 (memory bounded by batch size, not input size).
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


def bench_scale(scale: int, work: Path, repeat: int) -> tuple[Measurement, Measurement]:
    source = tpch_lineitem(scale)
    rows = pq.read_metadata(source).num_rows
    flows = write_flows(
        work,
        f"flows:\n  lineitem:\n    home: {{path: {source}, batch_size: {BATCH}}}\n"
        f"    store: {{path: {work}/hygge_sf{scale}, compression: {CODEC}}}\n",
        name=f"flows_sf{scale}.yml",
    )
    best_raw = best_hygge = None
    for _ in range(repeat):  # alternate, keep the best of each: less noise from the machine
        out = work / f"raw_sf{scale}.parquet"
        raw = measure(
            f"raw pyarrow SF{scale}",
            [
                sys.executable,
                "-m",
                "benchmarks.raw_pyarrow_copy",
                str(source),
                str(out),
                str(BATCH),
                CODEC,
            ],
            rows,
        )
        out.unlink()
        hyg = measure(f"hygge SF{scale}", [sys.executable, "-m", "hygge", "run", str(flows)], rows)
        check = sum(pq.read_metadata(f).num_rows for f in (work / f"hygge_sf{scale}").glob("*"))
        assert check == rows, f"hygge wrote {check} rows, expected {rows}"
        shutil.rmtree(work / f"hygge_sf{scale}")
        best_raw = raw if best_raw is None or raw.seconds < best_raw.seconds else best_raw
        best_hygge = hyg if best_hygge is None or hyg.seconds < best_hygge.seconds else best_hygge
    assert best_raw and best_hygge
    return best_raw, best_hygge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, action="append", help="TPC-H scale factor(s)")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    scales = args.scale or [1, 3]
    results = []
    with tempfile.TemporaryDirectory(prefix="hygge-bench-") as tmp:
        for scale in scales:
            results.append((scale, *bench_scale(scale, Path(tmp), args.repeat)))
    table = []
    for scale, raw, hyg in results:
        table.append(
            (
                f"SF{scale}",
                f"{raw.rows:,}",
                f"{raw.seconds:.2f}",
                f"{raw.rows_per_second:,.0f}",
                f"{raw.peak_rss_mb:.0f}",
                f"{hyg.seconds:.2f}",
                f"{hyg.rows_per_second:,.0f}",
                f"{hyg.peak_rss_mb:.0f}",
                f"{hyg.rows_per_second / raw.rows_per_second:.2f}x",
            )
        )
    print_table(
        f"parquet -> parquet ({CODEC}, batch {BATCH:,} rows; best of {args.repeat})",
        table,
        (
            "scale",
            "rows",
            "raw s",
            "raw rows/s",
            "raw RSS MB",
            "hygge s",
            "hygge rows/s",
            "hygge RSS MB",
            "hygge/raw",
        ),
    )
    if len(results) > 1:
        first, last = results[0][2], results[-1][2]
        print(
            f"\nhygge peak RSS SF{results[-1][0]} / SF{results[0][0]}: "
            f"{last.peak_rss_mb / first.peak_rss_mb:.2f}x (target <= 1.3x)"
        )


if __name__ == "__main__":
    main()
