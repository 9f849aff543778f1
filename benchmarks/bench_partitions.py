"""Partitioned flows: one big flow over workers and cores, and what a partition costs.

    python -m benchmarks.bench_partitions              # (a) at SF3, (b) at SF1, (c) 64 parts
    python -m benchmarks.bench_partitions --scale 1    # (a) at SF1 (quicker)
    python -m benchmarks.bench_partitions --only a

(a) parquet -> parquet, TPC-H lineitem as one file, one flow with `partitions: 2` (split by
    row groups), enqueued on 1 worker vs 2 workers, each pinned to a CPU of its own
    (`--concurrency 1`): adding a machine to one big flow. Target: >= 1.7x.
(b) PostgreSQL -> parquet, lineitem SF1, `hygge run` with `partitions: 2` (on l_orderkey) vs
    the same flow unpartitioned vs `COPY ... TO STDOUT (FORMAT binary)` into /dev/null by psql.
(c) dispatch: 64 partitions of a trivial flow (one row each) vs 64 no-op Celery tasks, on
    2 workers x 2 processes.
Every output is counted back with pyarrow. The machine may be shared: the load average is
printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from benchmarks.cluster import redis_db, workers
from benchmarks.common import DATA, ROOT, print_table, tpch_lineitem, tree_cpu_seconds

PG_URL = os.environ.get("HYGGE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
TABLE = "bench_partitions_lineitem"


def rows_in(folder: Path) -> int:
    return ds.dataset(folder, format="parquet").count_rows()


def enqueue_and_wait(flows: Path) -> float:
    from celery.result import AsyncResult

    from worker import client
    from worker.app import app

    started = time.perf_counter()
    run = client.enqueue(flows)
    # the commit step keeps the flow's name and ends last
    commit = next(t for name, t in run.task_ids.items() if "#" not in name)
    deadline = time.monotonic() + 3600
    while not AsyncResult(commit, app=app).ready():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.05)
    AsyncResult(commit, app=app).get(propagate=True)
    return time.perf_counter() - started


def bench_workers(scale: int, work: Path, repeat: int, url: str) -> list[tuple[str, ...]]:
    """(a): 1 vs 2 pinned workers, interleaved; medians of wall time and of the workers' CPU
    seconds (each worker's process tree, read from /proc before and after the flow)."""
    source = tpch_lineitem(scale)
    expected = pq.read_metadata(source).num_rows
    out = work / "out"
    flows = work / "flows_a.yml"
    flows.write_text(
        f"flows:\n  lineitem:\n    home: {source}\n"
        f"    store: {{path: {out}, shared_volume: true}}\n"
        "    options: {partitions: 2}\n"
    )
    walls: dict[int, list[float]] = {1: [], 2: []}
    cpus: dict[int, list[list[float]]] = {1: [], 2: []}
    speedups: list[float] = []
    for run in range(repeat):
        for count in (1, 2):
            shutil.rmtree(out, ignore_errors=True)
            pids: list[int] = []
            with workers(url, count, concurrency=1, pin=True, pids=pids):
                before = [tree_cpu_seconds(p) for p in pids]
                seconds = enqueue_and_wait(flows)
                used = [tree_cpu_seconds(p) - b for p, b in zip(pids, before, strict=True)]
            if rows_in(out) != expected:
                raise SystemExit(f"(a) {count} worker(s) wrote {rows_in(out):,} rows")
            walls[count].append(seconds)
            cpus[count].append(used)
            print(
                f"(a) run {run + 1}, {count} worker(s): {seconds:.2f} s, CPU "
                + " + ".join(f"{u:.1f}" for u in used)
                + f" s, load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
        speedups.append(walls[1][-1] / walls[2][-1])
    rows = []
    for n in (1, 2):
        cpu = " + ".join(f"{statistics.median(run[i] for run in cpus[n]):.1f}" for i in range(n))
        wall = statistics.median(walls[n])
        rows.append(
            (f"(a) 1 flow, 2 partitions, {n} worker(s)", f"{wall:.2f}", f"{expected / wall:,.0f}")
        )
        rows.append((f"(a)   CPU s of each worker, {n} worker(s)", cpu, ""))
    rows.append(
        ("(a) speed-up 2 workers vs 1 (target >= 1.7x)", f"{statistics.median(speedups):.2f}x", "")
    )
    # Load-proof: the one worker's CPU over the busiest of the two (what the wall time would
    # show if each worker had its core to itself).
    bound = statistics.median(
        sum(one) / max(two) for one, two in zip(cpus[1], cpus[2], strict=True)
    )
    rows.append(("(a) CPU-bound speed-up: 1 worker's CPU / busiest of 2", f"{bound:.2f}x", ""))
    return rows


def run_cli(flows: Path, flow: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "hygge", "run", str(flows), "--flow", flow],
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def bench_postgres(work: Path, repeat: int) -> list[tuple[str, ...]]:
    source = tpch_lineitem(1)
    expected = pq.read_metadata(source).num_rows
    flows = work / "flows_b.yml"
    home = f"{{type: sql, connection: '{PG_URL}', table: {TABLE}, partition_on: l_orderkey}}"
    flows.write_text(f"""flows:
  load:
    home: {source}
    store: {{type: sql, connection: '{PG_URL}', table: {TABLE}, mode: replace}}
  whole:
    home: {{type: sql, connection: '{PG_URL}', table: {TABLE}}}
    store: {work / "whole"}
  split:
    home: {home}
    store: {work / "split"}
    options: {{partitions: 2}}
""")
    run_cli(flows, "load")
    copy = ["psql", PG_URL, "-X", "-q", "-c", f"COPY {TABLE} TO STDOUT (FORMAT binary)"]
    best = {"whole": float("inf"), "split": float("inf"), "copy": float("inf")}
    for _ in range(repeat):
        for label in best:
            if label == "copy":
                started = time.perf_counter()
                with open(os.devnull, "wb") as sink:
                    subprocess.run(copy, check=True, stdout=sink)
                seconds = time.perf_counter() - started
            else:
                shutil.rmtree(work / label, ignore_errors=True)
                seconds = run_cli(flows, label)
                if rows_in(work / label) != expected:
                    raise SystemExit(f"(b) {label} wrote {rows_in(work / label):,} rows")
            best[label] = min(best[label], seconds)
    subprocess.run(["psql", PG_URL, "-X", "-q", "-c", f"DROP TABLE {TABLE}"], check=True)
    names = {
        "whole": "(b) PostgreSQL -> parquet, unpartitioned",
        "split": "(b) PostgreSQL -> parquet, partitions: 2",
        "copy": "(b) psql COPY binary -> /dev/null",
    }
    rows = [(names[k], f"{s:.2f}", f"{expected / s:,.0f}") for k, s in best.items()]
    rows.append(("(b) partitions: 2 vs unpartitioned", f"{best['whole'] / best['split']:.2f}x", ""))
    rows.append(("(b) partitions: 2 vs COPY binary", f"{best['copy'] / best['split']:.2f}x", ""))
    return rows


def bench_dispatch(work: Path, repeat: int, url: str) -> list[tuple[str, ...]]:
    from celery.result import ResultSet

    from worker.app import app
    from worker.contract import NOOP_TASK_NAME

    tiny = work / "tiny.parquet"
    pq.write_table(pa.table({"id": list(range(64))}), tiny, row_group_size=1)
    flows = work / "flows_c.yml"
    flows.write_text(
        f"flows:\n  tiny:\n    home: {tiny}\n"
        f"    store: {{path: {work / 'tiny_out'}, shared_volume: true}}\n"
        "    options: {partitions: 64}\n"
    )
    noop = parts = float("inf")
    with workers(url, 2, 2):
        for _ in range(repeat):
            started = time.perf_counter()
            ResultSet([app.send_task(NOOP_TASK_NAME) for _ in range(64)]).join_native(
                timeout=600, propagate=True
            )
            noop = min(noop, time.perf_counter() - started)
            parts = min(parts, enqueue_and_wait(flows))
            if rows_in(work / "tiny_out") != 64:
                raise SystemExit("(c) the partitioned flow lost rows")
    return [
        ("(c) 64 no-op Celery tasks", f"{noop:.2f}", f"{64 / noop:,.1f} tasks/s"),
        ("(c) 64 partitions of one flow + commit", f"{parts:.2f}", f"{64 / parts:,.1f} parts/s"),
        ("(c) overhead per partition", f"{(parts - noop) / 64 * 1000:.0f} ms", ""),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=3, help="scale factor of (a)")
    parser.add_argument("--only", choices=["a", "b", "c"], action="append")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each ((a): medians; (b), (c): the best)"
    )
    args = parser.parse_args()
    only = set(args.only or "abc")
    DATA.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, ...]] = []
    # One Redis database for everything: worker.app binds its broker URL when first imported.
    with tempfile.TemporaryDirectory(dir=DATA) as tmp, redis_db() as url:
        os.environ["HYGGE_BROKER_URL"] = url
        work = Path(tmp)
        for key, bench in (
            ("a", lambda: bench_workers(args.scale, work, args.repeat, url)),
            ("b", lambda: bench_postgres(work, args.repeat)),
            ("c", lambda: bench_dispatch(work, args.repeat, url)),
        ):
            if key in only:
                done = bench()
                print_table(f"({key})", done, ("", "seconds", "rate"))
                sys.stdout.flush()
                rows += done
    print_table("partitioned flows", rows, ("", "seconds", "rate"))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n(machine: {os.cpu_count()} CPUs, load average {load}: other work shares the CPUs)")


if __name__ == "__main__":
    main()
