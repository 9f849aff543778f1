"""Real parts for the distributed tests: a Redis database of our own, `hygge worker` and
`hygge flower` processes, and a Celery event recorder. Every process started here is stopped
by the fixture that started it, whatever the test's outcome."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import pytest
import redis

from tests.conftest import ROOT, run_cli
from tests.helpers import wait_for

SECRET = "s3cr3t-Pa55word"
SECRET_URL = f"postgresql://app:{SECRET}@db.internal:5432/prod"
PLUGINS = "tests.distributed_plugins"
FLOWER_USER, FLOWER_PASSWORD = "hygge-test", "flower-Pa55word"


def claim_db(base_url: str) -> str:
    """A URL for an empty Redis database (1..15) that this run owns; FLUSHDB it when done."""
    parsed = urlparse(base_url)
    numbers = list(range(1, 16))
    random.shuffle(numbers)
    for number in numbers:
        url = urlunparse(parsed._replace(path=f"/{number}"))
        client = redis.Redis.from_url(url)
        if client.set("hygge-test:owner", os.getpid(), nx=True, ex=3600) and client.dbsize() == 1:
            return url
        client.close()
    raise RuntimeError("no empty Redis database among 1..15; flush one you do not need")


def flush(url: str) -> None:
    redis.Redis.from_url(url).flushdb()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server of our own on a free port, to kill and restart at the same port (never
    the machine's shared Redis). `persistent` keeps an append-only file in `folder`."""

    def __init__(self, folder: Path, persistent: bool) -> None:
        self.folder = folder
        self.persistent = persistent
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "yes" if self.persistent else "no", "--dir", str(self.folder)]
        log = (self.folder / "redis.log").open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)

        def answers() -> bool:
            assert self.proc is not None and self.proc.poll() is None, "redis-server exited"
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_for(answers, 30, f"redis-server on port {self.port}")
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM: a service restart (an append-only file is flushed); SIGKILL: a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)
        self.proc = None


class Cluster:
    """Workers and Flower on one Redis database, as separate real processes."""

    def __init__(self, broker_url: str, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.broker_url = broker_url
        self.workdir = workdir
        self.redis = redis.Redis.from_url(broker_url)
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "HYGGE_BROKER_URL": broker_url,
            "HYGGE_PLUGINS": PLUGINS,
            "HYGGE_SAMPLES_LAKE": str(workdir / "lake"),
            "HYGGE_TEST_SECRET_URL": SECRET_URL,
            "COLUMNS": "200",
            **(env or {}),
        }
        self.env.pop("HYGGE_TEST_MISSING_DIR", None)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.flower_port = 0

    # -- processes ------------------------------------------------------------------------
    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "hygge", *args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill the worker and its children
        )

    def start_worker(self, name: str, concurrency: int = 2, loglevel: str | None = None) -> str:
        node = f"{name}@test"
        level = ["--loglevel", loglevel] if loglevel else []
        self._spawn(name, ["worker", "-n", node, "-c", str(concurrency), *level], self.env)
        wait_for(
            lambda: self.redis.exists(f"hygge:worker:{node}") or self._died(name),
            60,
            f"worker {node} to be ready (log: {self.workdir / (name + '.log')})",
        )
        assert self.procs[name].poll() is None, self.log(name)
        return node

    def start_flower(self) -> str:
        """Flower with basic auth (from the environment, as the container passes it)."""
        self.flower_port = free_port()
        env = {**self.env, "FLOWER_BASIC_AUTH": f"{FLOWER_USER}:{FLOWER_PASSWORD}"}
        self._spawn("flower", ["flower", f"--port={self.flower_port}"], env)
        wait_for(
            lambda: self.flower("/api/workers") is not None or self._died("flower"),
            60,
            "flower to answer",
        )
        assert self.procs["flower"].poll() is None, self.log("flower")
        url = f"http://127.0.0.1:{self.flower_port}"
        self.env["HYGGE_FLOWER_URL"] = url  # `hygge enqueue` names a Flower only if it answers
        return url

    def start_scheduler(self, name: str, flows_file: Path, **env: str) -> None:
        """`hygge scheduler FLOWS_FILE` as its own process (`env` added to the cluster's)."""
        self._spawn(name, ["scheduler", str(flows_file)], {**self.env, **env})

    def _died(self, name: str) -> bool:
        return self.procs[name].poll() is not None

    def log(self, name: str, tail: int = 5000) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")[-tail:]

    def kill(self, name: str) -> None:
        """SIGKILL a worker and its pool processes at once, like a machine dying."""
        proc = self.procs[name]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)

    # -- talking to it --------------------------------------------------------------------
    def flower(self, path: str) -> Any:
        """GET a Flower page with our credentials, as JSON (None if it does not answer)."""
        try:
            with urllib.request.urlopen(flower_request(self.flower_port, path), timeout=5) as r:
                return json.loads(r.read())
        except (urllib.error.URLError, OSError, json.JSONDecodeError):
            return None

    def flower_task(self, task_id: str) -> dict[str, Any]:
        return self.flower(f"/api/task/info/{task_id}") or {}

    def queue_drained(self) -> bool:
        """Every message sent was taken and acknowledged (acks come after the task ends)."""
        return self.redis.llen("hygge") == 0 and self.redis.hlen("unacked") == 0

    def cli(self, *args: str, timeout: float = 180, **env: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, env={**self.env, **env}, timeout=timeout)

    def status(self, run_id: str) -> dict[str, dict[str, str]]:
        flows = json.loads(self.redis.hget(f"hygge:run:{run_id}", "flows"))
        return {
            f: {
                k.decode(): v.decode()
                for k, v in self.redis.hgetall(f"hygge:run:{run_id}:flow:{f}").items()
            }
            for f in flows
        }


def flower_request(
    port: int, path: str, credentials: tuple[str, str] | None = (FLOWER_USER, FLOWER_PASSWORD)
) -> urllib.request.Request:
    """A request for Flower on 127.0.0.1:`port`, with basic auth unless `credentials` is None."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if credentials is not None:
        import base64

        token = base64.b64encode(":".join(credentials).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    return request


def parse_enqueue(stdout: str) -> tuple[str, dict[str, str]]:
    """The run id and flow -> task id that `hygge enqueue` printed."""
    run_id = ""
    tasks: dict[str, str] = {}
    for line in stdout.splitlines():
        if line.startswith("run id:"):
            run_id = line.split(":", 1)[1].strip()
        elif ": task " in line:
            name, rest = line.strip().split(": task ", 1)
            tasks[name] = rest.split()[0]
    assert run_id, stdout
    return run_id, tasks


def everything_in(client: redis.Redis) -> str:
    """Every key and value of a Redis database as text (to search for secrets)."""
    parts: list[str] = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        parts.append(key.decode(errors="replace"))
        if kind == "string":
            values = [client.get(key)]
        elif kind == "list":
            values = client.lrange(key, 0, -1)
        elif kind == "hash":
            values = [x for kv in client.hgetall(key).items() for x in kv]
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "zset":
            values = [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
        else:
            values = []
        for value in values:
            text = (value or b"").decode(errors="replace")
            parts += [text, *decoded_message(text)]
    return "\n".join(parts)


def decoded_message(text: str) -> list[str]:
    """A kombu message keeps its body base64-encoded: the decoded body, to search it too."""
    import base64

    try:
        message = json.loads(text)
        if isinstance(message, list):  # the unacked hash keeps [message, exchange, key]
            message = message[0]
        body = message["body"]
        if message["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body).decode()
        return [body]
    except (ValueError, KeyError, TypeError, AttributeError):
        return []


class EventLog(threading.Thread):
    """Records every Celery event of a broker (what Flower builds its view from)."""

    def __init__(self, broker_url: str) -> None:
        super().__init__(daemon=True)
        from celery import Celery

        self.app = Celery(broker=broker_url)
        self.app.conf.accept_content = ["json"]
        self.events: list[dict[str, Any]] = []
        self.receiver: Any = None
        self.ready = threading.Event()

    def run(self) -> None:
        with self.app.connection() as conn:
            self.receiver = self.app.events.Receiver(conn, handlers={"*": self.events.append})
            self.ready.set()
            self.receiver.capture(limit=None, timeout=None, wakeup=False)

    def wait_until_live(self, timeout: float = 10) -> None:
        """Send probe events until one comes back: only then is the subscription live."""
        with self.app.connection() as conn:
            dispatcher = self.app.events.Dispatcher(conn)

            def probe_seen() -> bool:
                dispatcher.send("hygge-probe")
                return any(e.get("type") == "hygge-probe" for e in list(self.events))

            wait_for(probe_seen, timeout, "the event subscription to be live")

    def types(self, task_id: str) -> list[str]:
        return [e["type"] for e in list(self.events) if e.get("uuid") == task_id]

    def stop(self) -> None:
        if self.receiver is not None:
            self.receiver.should_stop = True


@contextlib.contextmanager
def event_log(broker_url: str) -> Iterator[EventLog]:
    log = EventLog(broker_url)
    log.start()
    log.ready.wait(10)
    log.wait_until_live()
    try:
        yield log
    finally:
        log.stop()


# -- fixtures shared by the distributed test modules (import them by name) ------------------


@pytest.fixture
def db(redis_url: str) -> Iterator[str]:
    url = claim_db(redis_url)
    yield url
    flush(url)


@pytest.fixture
def make_cluster(db: str, tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    clusters: list[Cluster] = []

    def make(**env: str) -> Cluster:
        c = Cluster(db, tmp_path / f"cluster{len(clusters)}", env)
        c.workdir.mkdir()
        clusters.append(c)
        return c

    yield make
    for c in clusters:
        c.stop()


def cloud_cluster(scheme: str, **env: str) -> Any:
    """A `cluster` fixture for a test module whose workers reach one object-store emulator
    (`scheme`: s3, az, gs) with its endpoint and credentials only, plus `env`:
    `cluster = cloud_cluster("s3", HYGGE_LEASE_SECONDS="4")`. The workers get a Redis
    database of their own, flushed and stopped whatever the test's outcome."""

    @pytest.fixture
    def cluster(redis_url: str, tmp_path: Path, emulators: Any) -> Iterator[Cluster]:
        url = claim_db(redis_url)
        c = Cluster(url, tmp_path / "cluster", {**emulators[scheme].env, **env})
        c.workdir.mkdir()
        try:
            yield c
        finally:
            c.stop()
            flush(url)

    return cluster
