"""Dispatch overhead of distributed runs: 1,000 trivial hygge flows vs 1,000 no-op Celery tasks.

    python -m benchmarks.bench_dispatch              # 1,000 of each, 2 workers x 2 processes
    python -m benchmarks.bench_dispatch --count 300  # quicker

Both go through the same two `hygge worker` processes, the same Redis and the same Celery
settings (late acks, prefetch 1, events on), in the same run. A trivial flow reads one row and
writes it nowhere, so what is measured is hygge's cost per flow: validating flows.yml, the run
plan in Redis, the lease, resolving the config on the worker, progress and status.
Target (issue 4): hygge's flows/s >= 0.5x the no-op tasks/s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from benchmarks.cluster import redis_db, workers
from benchmarks.common import print_table
from tests.helpers import write_flows

PLUGINS = "benchmarks.dispatch_plugins"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="alternate runs; keep the best")
    args = parser.parse_args()
    with redis_db() as url:
        os.environ["HYGGE_BROKER_URL"] = url
        os.environ["HYGGE_PLUGINS"] = "benchmarks.dispatch_plugins"
        with workers(
            url, args.workers, args.concurrency, {"HYGGE_PLUGINS": "benchmarks.dispatch_plugins"}
        ):
            bench_noop(args.count // 20)  # warm up
            noop_seconds = hygge_seconds = float("inf")
            for _ in range(args.repeat):  # alternate, so load from elsewhere hits both alike
                noop_seconds = min(noop_seconds, bench_noop(args.count))
                hygge_seconds = min(hygge_seconds, bench_flows(args.count))
    noop_rate = args.count / noop_seconds
    hygge_rate = args.count / hygge_seconds
    print_table(
        f"dispatch: {args.count:,} tasks on {args.workers} workers x {args.concurrency} processes",
        [
            ("no-op Celery tasks", f"{noop_seconds:.2f}", f"{noop_rate:,.0f}"),
            ("trivial hygge flows", f"{hygge_seconds:.2f}", f"{hygge_rate:,.0f}"),
        ],
        ("", "seconds", "per second"),
    )
    ratio = hygge_rate / noop_rate
    verdict = "OK" if ratio >= 0.5 else "MISSED"
    print(f"\nratio hygge / no-op: {ratio:.2f}x (target >= 0.5x): {verdict}")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"(machine: {os.cpu_count()} CPUs, load average {load})")


def bench_noop(count: int) -> float:
    from celery.result import ResultSet

    from worker.app import app
    from worker.contract import NOOP_TASK_NAME

    started = time.perf_counter()
    results = ResultSet([app.send_task(NOOP_TASK_NAME) for _ in range(count)])
    results.join_native(timeout=600, propagate=True)
    return time.perf_counter() - started


def bench_flows(count: int) -> float:
    from celery.result import AsyncResult, ResultSet

    from worker import client
    from worker.app import app

    with tempfile.TemporaryDirectory() as tmp:
        path = write_flows(
            Path(tmp),
            "flows:\n"
            + "".join(
                f"  f{i:05d}: {{home: {{type: one_row}}, store: {{type: discard}}}}\n"
                for i in range(count)
            ),
        )
        started = time.perf_counter()
        run = client.enqueue(path)
        results = ResultSet([AsyncResult(t, app=app) for t in run.task_ids.values()])
        results.join_native(timeout=600, propagate=True)
        seconds = time.perf_counter() - started
        status = client.status(run.run_id)
        failed = [f.flow for f in status.flows if f.state != "success"]
        if failed:
            raise SystemExit(f"{len(failed)} flows did not succeed, e.g. {failed[:3]}")
        return seconds


if __name__ == "__main__":
    main()
