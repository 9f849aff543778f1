"""Scaling out: 8 parquet flows of TPC-H lineitem (SF1 in 8 parts) on 1 worker, then on 2.

    python -m benchmarks.bench_scaling          # SF1: 6,001,215 rows in 8 files
    python -m benchmarks.bench_scaling --scale 2

Each worker runs one flow at a time (`--concurrency 1`) and is pinned to a CPU of its own,
standing in for a one-core machine: the comparison is about adding workers (machines). On this
2-core box an unpinned worker already uses both cores (Arrow reads, compresses and writes on
several threads), so `--no-pin` shows how little a second worker adds on the same machine.
Every output is counted back with pyarrow.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq

from benchmarks.cluster import redis_db, workers
from benchmarks.common import DATA, print_table, tpch_lineitem
from tests.helpers import write_flows

PARTS = 8


def lineitem_parts(scale: int) -> list[Path]:
    """TPC-H lineitem in PARTS parquet files, generated once with tpchgen-cli and cached."""
    return sorted(tpch_lineitem(scale, parts=PARTS).glob("*.parquet"))


def run_flows(files: list[Path], work: Path) -> tuple[float, int]:
    """Enqueue one flow per file, wait for all; seconds and rows written."""
    from celery.result import AsyncResult, ResultSet

    from worker import client
    from worker.app import app

    shutil.rmtree(work / "out", ignore_errors=True)
    flows = write_flows(
        work,
        "flows:\n"
        + "".join(
            f"  part{i}:\n    home: {f}\n    store: {work / 'out' / f'part{i}'}\n"
            for i, f in enumerate(files)
        ),
    )
    started = time.perf_counter()
    run = client.enqueue(flows)
    ResultSet([AsyncResult(t, app=app) for t in run.task_ids.values()]).join_native(
        timeout=3600, propagate=True
    )
    seconds = time.perf_counter() - started
    rows = ds.dataset(work / "out", format="parquet").count_rows()
    return seconds, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--no-pin", action="store_true", help="let workers share all CPUs")
    parser.add_argument("--repeat", type=int, default=2, help="alternate runs; keep the best")
    args = parser.parse_args()
    files = lineitem_parts(args.scale)
    expected = sum(pq.read_metadata(f).num_rows for f in files)
    results: dict[int, tuple[float, int]] = {}
    with redis_db() as url, tempfile.TemporaryDirectory(dir=DATA) as tmp:
        os.environ["HYGGE_BROKER_URL"] = url
        for _ in range(args.repeat):  # alternate, so load from elsewhere hits both alike
            for count in (1, 2):
                with workers(url, count, concurrency=1, pin=not args.no_pin):
                    seconds, rows = run_flows(files, Path(tmp))
                if rows != expected:
                    raise SystemExit(f"{count} worker(s) wrote {rows:,} rows, not {expected:,}")
                if count not in results or seconds < results[count][0]:
                    results[count] = (seconds, rows)
    print_table(
        f"scaling: {PARTS} parquet flows, TPC-H lineitem SF{args.scale} ({expected:,} rows), "
        + ("workers share all CPUs" if args.no_pin else "one CPU per worker"),
        [
            (f"{n} worker{'s' if n > 1 else ''}", f"{s:.2f}", f"{r / s:,.0f}")
            for n, (s, r) in results.items()
        ],
        ("", "seconds", "rows/s"),
    )
    print(f"\nspeed-up with 2 workers: {results[1][0] / results[2][0]:.2f}x")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"(machine: {os.cpu_count()} CPUs, load average {load}: other work shares the CPUs)")


if __name__ == "__main__":
    main()
