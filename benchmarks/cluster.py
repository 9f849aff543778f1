"""Real `hygge worker` processes on a Redis database of their own, for the distributed
benchmarks. Every process started here is stopped on exit."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from benchmarks.common import ROOT
from tests.distributed_support import claim_db, flush

REDIS_URL = os.environ.get("HYGGE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


@contextlib.contextmanager
def redis_db() -> Iterator[str]:
    """An empty Redis database (1..15) for this run, flushed afterwards (as the tests do)."""
    try:
        url = claim_db(REDIS_URL)
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    try:
        yield url
    finally:
        flush(url)


@contextlib.contextmanager
def workers(
    broker_url: str,
    count: int,
    concurrency: int,
    env: dict[str, str] | None = None,
    pin: bool = False,
    pids: list[int] | None = None,
) -> Iterator[list[str]]:
    """Start `count` workers and wait until each is ready; stop them all on exit. With `pin`,
    worker i runs on CPU i only: each stands in for a one-core machine. `pids`, if given,
    receives each worker's process id (to read its CPU time)."""
    full_env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HYGGE_BROKER_URL": broker_url,
        **(env or {}),
    }
    logs = Path(tempfile.mkdtemp(prefix="hygge-bench-"))
    client = redis.Redis.from_url(broker_url)
    procs: list[subprocess.Popen[bytes]] = []
    names = [f"bench{i}@bench" for i in range(1, count + 1)]
    try:
        for index, name in enumerate(names):
            log = (logs / f"{name}.log").open("wb")
            command = [sys.executable, "-m", "hygge", "worker", "-n", name, "-c", str(concurrency)]
            command += ["--loglevel", "WARNING", "--without-mingle", "--without-gossip"]
            procs.append(
                subprocess.Popen(
                    command,
                    env=full_env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_pin_to(index % (os.cpu_count() or 1)) if pin else None,
                )
            )
        if pids is not None:
            pids.extend(p.pid for p in procs)
        deadline = time.monotonic() + 60
        while not all(client.exists(f"hygge:worker:{n}") for n in names):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise SystemExit(f"workers did not start; see logs in {logs}")
            time.sleep(0.1)
        yield names
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def _pin_to(cpu: int):
    def pin() -> None:
        os.sched_setaffinity(0, {cpu})

    return pin
