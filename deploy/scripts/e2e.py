"""End-to-end check of the container stack, on a real Docker engine.

    python deploy/scripts/e2e.py [--workers 4]

What it does, in order, and what must hold:
1. makes sure an engine answers (starts `dockerd` itself if none does, and stops it at the end),
   builds the local base images when missing (no registry is reachable here) and the hygge image;
2. Flower without credentials refuses to start, with a clear message;
3. a worker whose Redis is not there yet retries, logs the broker URL with the password masked,
   and turns healthy once that Redis appears;
4. `up --scale worker=N`, `run --rm worker hygge enqueue samples/flows.yml --wait`: every output
   (written to the stack's S3 object store: the workers share no folder) read back by DuckDB
   equals its source (row count and content), and Flower's API (with auth; 401 without) shows
   every flow SUCCESS, run by more than one worker; then samples/partitioned.yml: a flow in
   partitions into an S3 parquet dataset and one into a Delta table on S3, exact;
5. the workers stopped while a long flow runs: the warm shutdown lets it finish and commit;
6. the workers stopped with `-t 1` while a long flow runs (killed): no output appears for it,
   and the outputs committed before are untouched; after `up` again the flow runs again and
   commits every row once (Redis and the object store stay up: the emulator keeps its
   objects in memory);
7. `down -v`, and the engine stopped if this script started it.

Exit 0: passed (figures on the last line). Exit 1: failed. Exit 3: did NOT run (no engine can
start here) -- never a pass. Container traffic stays on the stack's network; Flower is published
on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "deploy" / "scripts"
NOT_RUN = 3
BUCKET = "hygge-lake"  # the compose stack's object store creates it (HYGGE_BUCKETS)
# flow -> (output folder in the lake, file pattern, DuckDB query of its source)
SAMPLE_FLOWS = {
    "users_to_parquet": ("users", "*.parquet", "read_parquet('{src}/users.parquet')"),
    "orders_to_parquet": ("orders", "*.parquet", "read_csv_auto('{src}/orders.csv')"),
    "events_to_parquet": ("events", "*.parquet", "read_json_auto('{src}/events.ndjson')"),
    "active_users_to_csv": (
        "users_csv",
        "*.csv",
        "(SELECT user_id, name, city FROM read_parquet('{src}/users.parquet'))",
    ),
}


class NotRun(Exception):
    """The check could not run on this machine (not a failure of hygge, never a pass)."""


class Failed(Exception):
    """The stack did not do what it promises."""


def log(message: str) -> None:
    print(f"e2e: {message}", flush=True)


def sh(*args: str, timeout: float = 600, check: bool = True, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    if check and result.returncode != 0:
        raise Failed(
            f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
        )
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, predicate, timeout: float, interval: float = 1.0):
    """Poll `predicate` until it returns something truthy; Failed after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Stack:
    """One Compose project of docker-compose.yml, with its own name, Flower port and object
    store port (published on loopback by an override file, for reading outputs back)."""

    def __init__(self, workdir: Path, workers: int) -> None:
        self.project = f"hygge-e2e-{os.getpid()}"
        self.workers = workers
        self.workdir = workdir
        self.lake = workdir / "lake"  # a local copy of s3://hygge-lake/samples, for DuckDB
        self.password = secrets.token_urlsafe(12)
        self.flower_port = free_port()
        self.s3_port = free_port()
        self.s3_secret = secrets.token_urlsafe(12)
        uid, gid = "10001", "10001"
        self.env_file = workdir / "e2e.env"
        settings = {
            "HYGGE_BASE_IMAGE": os.environ.get("HYGGE_BASE_IMAGE", "hygge-base:bookworm"),
            "REDIS_IMAGE": os.environ.get("HYGGE_REDIS_IMAGE", "hygge-redis:bookworm"),
            "HYGGE_IMAGE": "hygge:e2e",
            "HYGGE_OBJECTSTORE_IMAGE": "hygge-objectstore:e2e",
            "AWS_ENDPOINT_URL": "http://objectstore:9000",
            "AWS_ACCESS_KEY_ID": "e2e",
            "AWS_SECRET_ACCESS_KEY": self.s3_secret,
            "HYGGE_SAMPLES_LAKE": f"s3://{BUCKET}/samples",
            "FLOWER_BASIC_AUTH": f"e2e:{self.password}",
            "FLOWER_BIND": "127.0.0.1",
            "FLOWER_HOST_PORT": str(self.flower_port),
            "HYGGE_FLOWER_URL": f"http://127.0.0.1:{self.flower_port}",
            "HYGGE_UID": uid,
            "HYGGE_GID": gid,
            "HYGGE_STOP_GRACE_PERIOD": "120s",
        }
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        override = os.environ.get("HYGGE_E2E_COMPOSE")
        if override:
            tool = override.split()
        elif sh("docker", "compose", "version", check=False).returncode == 0:
            tool = ["docker", "compose"]
        else:
            tool = ["docker-compose"]
        self.tool = " ".join(tool)
        self.base = [*tool, "-p", self.project, "--env-file", str(self.env_file)]
        override = workdir / "e2e.override.yml"
        override.write_text(
            f"services:\n  objectstore:\n    ports: ['127.0.0.1:{self.s3_port}:9000']\n"
        )
        self.base += ["-f", str(ROOT / "docker-compose.yml"), "-f", str(override)]
        self.extra_containers: list[str] = []

    def compose(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return sh(*self.base, *args, **kw)

    def s3(self):  # pyarrow imported lazily: the script starts without it
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(
            access_key="e2e",
            secret_key=self.s3_secret,
            endpoint_override=f"http://127.0.0.1:{self.s3_port}",
            region="us-east-1",
        )

    def s3_options(self) -> dict[str, str]:
        """deltalake's options for reading the stack's object store from this machine."""
        return {
            "aws_endpoint_url": f"http://127.0.0.1:{self.s3_port}",
            "aws_access_key_id": "e2e",
            "aws_secret_access_key": self.s3_secret,
            "aws_region": "us-east-1",
            "aws_allow_http": "true",
        }

    def sync(self) -> Path:
        """Copy s3://hygge-lake/samples/ into `self.lake` (fresh each time), for DuckDB."""
        import pyarrow.fs as pafs

        shutil.rmtree(self.lake, ignore_errors=True)
        self.lake.mkdir(parents=True)
        fs = self.s3()
        prefix = f"{BUCKET}/samples"
        for info in fs.get_file_info(
            pafs.FileSelector(prefix, recursive=True, allow_not_found=True)
        ):
            if info.type != pafs.FileType.File or not info.size:
                continue
            target = self.lake / info.path[len(prefix) + 1 :]
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with fs.open_input_stream(info.path) as f:
                    target.write_bytes(f.read())
            except OSError as exc:
                # A running flow moves its staged objects and lock between our listing and
                # our read; a vanished object is simply not part of this copy.
                # (S3 says NO_SUCH_KEY, or RESOURCE_NOT_FOUND for a GET of one just deleted)
                gone = any(code in str(exc) for code in ("NO_SUCH_KEY", "RESOURCE_NOT_FOUND"))
                if not isinstance(exc, FileNotFoundError) and not gone:
                    raise
                target.unlink(missing_ok=True)
        return self.lake

    def put(self, local: Path, key: str) -> None:
        with self.s3().open_output_stream(f"{BUCKET}/{key}") as out:
            out.write(local.read_bytes())

    def containers(self, service: str) -> list[str]:
        out = sh(
            "docker", "ps", "-q",
            "--filter", f"label=com.docker.compose.project={self.project}",
            "--filter", f"label=com.docker.compose.service={service}",
            "--filter", "label=com.docker.compose.oneoff=False",
        ).stdout  # fmt: skip
        return out.split()

    def health(self, container: str) -> str:
        fmt = "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}"
        return sh("docker", "inspect", "-f", fmt, container, check=False).stdout.strip()

    def flower(self, path: str, auth: bool = True) -> tuple[int, object]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.flower_port}{path}")
        if auth:
            token = base64.b64encode(f"e2e:{self.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, None
        except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
            return 0, None

    def down(self, *extra: str) -> None:
        for name in self.extra_containers:
            sh("docker", "rm", "-f", name, check=False)
        self.extra_containers.clear()
        self.compose("down", "--remove-orphans", *extra, timeout=300, check=False)


def start_engine() -> bool:
    """True when this script started dockerd (and so must stop it)."""
    result = sh("bash", str(SCRIPTS / "docker-engine.sh"), "start", check=False, timeout=600)
    if result.returncode != 0:
        reason = result.stderr.strip().splitlines()[-12:] or ["docker-engine.sh failed"]
        raise NotRun("no Docker engine could be started here:\n  " + "\n  ".join(reason))
    return result.stdout.strip().endswith("started")


def build(stack: Stack, figures: dict) -> None:
    t = time.monotonic()
    result = sh("bash", str(SCRIPTS / "base-image.sh"), timeout=1800, check=False)
    if result.returncode != 0:
        raise NotRun(f"the local base image could not be built:\n{result.stderr[-2000:]}")
    figures["base_image_s"] = round(time.monotonic() - t, 1)
    t, started = time.monotonic(), int(time.time())
    stack.compose("build", "worker", "objectstore", timeout=1800)
    figures["image_build_s"] = round(time.monotonic() - t, 1)
    # Images of earlier builds, now untagged, would fill the disk run after run; this build's
    # own stages stay (they are the layer cache of the next build).
    sh(
        "docker", "image", "prune", "-f",
        "--filter", "label=org.opencontainers.image.title=hygge",
        "--filter", f"until={started}",
    )  # fmt: skip
    log(f"images ready (base {figures['base_image_s']} s, hygge {figures['image_build_s']} s)")


def check_flower_refuses(stack: Stack) -> None:
    args = ["run", "--rm", "-T", "--no-deps", "-e", "FLOWER_BASIC_AUTH=", "flower"]
    result = stack.compose(*args, check=False, timeout=120)
    text = result.stdout + result.stderr
    if result.returncode != 64 or "refusing to start: FLOWER_BASIC_AUTH is not set" not in text:
        raise Failed(
            f"Flower without credentials did not refuse (exit {result.returncode}):\n{text}"
        )
    log("Flower without credentials refuses to start (exit 64, clear message)")


def check_worker_waits_for_redis(stack: Stack) -> float:
    """A worker started before its (password-protected) Redis: retries, masks, turns healthy."""
    secret = "e2e-" + secrets.token_hex(8)
    redis_name, worker_name = f"{stack.project}-lateredis", f"{stack.project}-earlyworker"
    url = f"redis://:{secret}@{redis_name}:6379"
    stack.extra_containers += [worker_name, redis_name]
    stack.compose(
        "run", "-d", "--no-deps", "--name", worker_name,
        "-e", f"HYGGE_BROKER_URL={url}/0", "-e", f"HYGGE_RESULT_BACKEND={url}/1", "worker",
    )  # fmt: skip
    wait_for(
        "the worker to log a retry",
        lambda: "Trying again" in sh("docker", "logs", worker_name, check=False).stderr,
        timeout=60,
    )
    logs = sh("docker", "logs", worker_name, check=False)
    text = logs.stdout + logs.stderr
    if secret in text:
        raise Failed("the worker logged the broker password in clear")
    if f"redis://:**@{redis_name}:6379/0" not in text:
        raise Failed(f"the worker's retry message does not show the masked URL:\n{text[-2000:]}")
    if stack.health(worker_name) == "healthy":
        raise Failed("the worker claims to be healthy without a broker")
    log("worker without Redis retries and logs redis://:**@... (password masked), not healthy")
    t = time.monotonic()
    stack.compose(
        "run", "-d", "--no-deps", "--name", redis_name,
        "redis", "redis-server", "--requirepass", secret,
    )  # fmt: skip
    wait_for(
        "the early worker to turn healthy", lambda: stack.health(worker_name) == "healthy", 120
    )
    seconds = round(time.monotonic() - t, 1)
    log(f"Redis appeared; the worker turned healthy {seconds} s later")
    for name in (worker_name, redis_name):
        sh("docker", "rm", "-f", name, check=False)
    stack.extra_containers.clear()
    return seconds


def up(stack: Stack) -> float:
    t = time.monotonic()
    stack.compose("up", "-d", "--scale", f"worker={stack.workers}", timeout=300)

    def ready() -> bool:
        workers = stack.containers("worker")
        healthy = [c for c in workers if stack.health(c) == "healthy"]
        return len(healthy) == stack.workers and stack.flower("/api/workers")[0] == 200

    wait_for(f"{stack.workers} healthy workers and Flower", ready, timeout=180, interval=2)
    return round(time.monotonic() - t, 1)


def enqueue(stack: Stack, flows: str | Path, wait: bool = True) -> subprocess.CompletedProcess:
    """`hygge enqueue` in a one-off container: a samples file in the image by its path, or a
    file of this machine (mounted read-only into that container only: workers get the flow
    from the queue)."""
    mount: list[str] = []
    if isinstance(flows, Path):
        mount = ["-v", f"{flows}:/app/e2e/{flows.parent.name}.yml:ro"]
        flows = f"/app/e2e/{flows.parent.name}.yml"
    args = ["run", "--rm", "-T", *mount, "worker", "hygge", "enqueue", flows]
    return stack.compose(*(args + (["--wait"] if wait else [])), timeout=600, check=False)


def duckdb_rows(query: str) -> list[tuple]:
    import duckdb

    with duckdb.connect() as con:
        return con.execute(query).fetchall()


def reference_lake(workdir: Path) -> Path:
    """The same samples/flows.yml run by the embedded engine on this machine: what the
    containers must have written, value for value."""
    lake = workdir / "reference-lake"
    env = {**os.environ, "HYGGE_SAMPLES_LAKE": str(lake), "PYTHONPATH": str(ROOT)}
    sh(sys.executable, "-m", "hygge", "run", str(ROOT / "samples" / "flows.yml"), env=env)
    return lake


def check_outputs(stack: Stack, reference: Path) -> dict[str, int]:
    """Each sample output has its source's row count and equals, row for row and value for
    value, what the embedded engine writes from the same flows.yml."""
    src = ROOT / "samples" / "data"
    stack.sync()
    counts = {}
    for flow, (folder, pattern, source) in SAMPLE_FLOWS.items():
        if not list((stack.lake / folder).glob(pattern)):
            raise Failed(f"{flow}: no {pattern} in {stack.lake / folder}")
        reader = "read_parquet" if pattern.endswith("parquet") else "read_csv_auto"
        out = f"{reader}('{stack.lake / folder}/{pattern}')"
        ref = f"{reader}('{reference / folder}/{pattern}')"
        (n_out,) = duckdb_rows(f"SELECT count(*) FROM {out}")[0]
        (n_src,) = duckdb_rows(f"SELECT count(*) FROM {source.format(src=src)}")[0]
        missing, extra = (
            duckdb_rows(f"SELECT count(*) FROM (FROM {a} EXCEPT ALL FROM {b})")[0][0]
            for a, b in ((ref, out), (out, ref))
        )
        if n_out != n_src or missing or extra:
            raise Failed(
                f"{flow}: {n_out} rows written, {n_src} in the source; against the embedded "
                f"engine's output {missing} rows missing, {extra} rows extra"
            )
        counts[flow] = n_out
    return counts


def check_partitioned(stack: Stack) -> dict:
    """samples/partitioned.yml through the workers: a parquet dataset and a Delta table on S3,
    each written in partitions by several workers and committed once, equal to the source."""
    from deltalake import DeltaTable

    result = enqueue(stack, "samples/partitioned.yml")
    if result.returncode != 0:
        raise Failed(f"enqueue of samples/partitioned.yml failed:\n{result.stdout}{result.stderr}")
    lake = stack.sync()
    source = f"read_csv_auto('{ROOT / 'samples' / 'data' / 'orders.csv'}')"
    (want,) = duckdb_rows(f"SELECT count(*) FROM {source}")[0]
    out = f"read_parquet('{lake / 'orders_in_parts'}/*.parquet')"
    differ = duckdb_rows(
        f"SELECT (SELECT count(*) FROM (FROM {source} EXCEPT ALL FROM {out})) + "
        f"(SELECT count(*) FROM (FROM {out} EXCEPT ALL FROM {source}))"
    )[0][0]
    (got,) = duckdb_rows(f"SELECT count(*) FROM {out}")[0]
    if got != want or differ:
        raise Failed(f"orders_in_parts: {got} rows (source {want}), {differ} rows differ")
    table = DeltaTable(f"s3://{BUCKET}/samples/orders_delta", storage_options=stack.s3_options())
    rows = table.to_pyarrow_table()
    if rows.num_rows != want or table.version() != 0:
        raise Failed(
            f"orders_to_delta_in_parts: {rows.num_rows} rows (source {want}), "
            f"version {table.version()} (one commit expected)"
        )
    import duckdb

    with duckdb.connect() as con:
        con.register("delta_rows", rows)
        differ = con.execute(
            f"SELECT (SELECT count(*) FROM (FROM {source} EXCEPT ALL FROM delta_rows)) + "
            f"(SELECT count(*) FROM (FROM delta_rows EXCEPT ALL FROM {source}))"
        ).fetchall()[0][0]
    if differ:
        raise Failed(f"orders_to_delta_in_parts: {differ} rows differ from the source")
    log(f"partitioned flows into S3 parquet and Delta on S3: {want} rows each, exact, one commit")
    return {"partitioned_rows": 2 * want}


def check_flower_tasks(stack: Stack, flows: set[str]) -> set[str]:
    """Every flow SUCCESS in Flower's API (which must refuse anonymous calls); returns the
    workers that ran them."""
    status, _ = stack.flower("/api/tasks", auth=False)
    if status != 401:
        raise Failed(f"Flower's API answered {status} without credentials (expected 401)")
    seen: dict[str, str] = {}

    def all_succeeded() -> dict[str, str] | None:
        status, tasks = stack.flower("/api/tasks")
        if status != 200 or not isinstance(tasks, dict):
            return None
        seen.clear()
        ran_by = {}
        for task in tasks.values():
            for flow in flows:
                if task.get("args") == repr((flow,)):  # argsrepr: the flow's name only
                    seen[flow] = str(task.get("state"))
                    if task.get("state") == "SUCCESS":
                        ran_by[flow] = str(task.get("worker"))
        return ran_by if set(ran_by) == flows else None

    try:
        ran_by = wait_for("Flower to show every flow SUCCESS", all_succeeded, 60, 2)
    except Failed as exc:
        raise Failed(f"{exc}; Flower shows {seen}") from None
    return set(ran_by.values())


def write_slow_flow(stack: Stack, name: str, rows: int) -> Path:
    """A flow long enough to be interrupted: `rows` rows read 250 at a time, from S3 to S3.
    Returns its flows.yml on this machine (mounted into the one-off enqueuing container)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = stack.workdir / name
    folder.mkdir()
    pq.write_table(pa.table({"id": pa.array(range(rows), pa.int64())}), folder / "big.parquet")
    stack.put(folder / "big.parquet", f"e2e/{name}/big.parquet")
    flows = folder / "flows.yml"
    flows.write_text(
        f"flows:\n  {name}:\n"
        f"    home: {{type: parquet, path: 's3://{BUCKET}/e2e/{name}/big.parquet', "
        "batch_size: 250}\n"
        # Files of 50,000 rows: an object store shows a staged file only once it is whole,
        # so the flow's staging becomes visible (to tell that it runs) after 200 batches.
        f"    store: {{type: parquet, path: 's3://{BUCKET}/samples/{name}', "
        "max_rows_per_file: 50000}\n"
    )
    flows.chmod(0o644)
    return flows


def slow_output_complete(stack: Stack, name: str, rows: int) -> bool:
    """The long flow's output is there, with every row once (count and sum of ids).

    An S3 commit makes its files visible one completion at a time (docs/objectstore.md:
    a plain-prefix reader sees an append part by part while the commit runs), so fewer rows
    than expected means "not yet": the caller's wait ends in a failure if they never all
    come. More rows, or all of them with a wrong checksum, fails at once."""
    stack.sync()
    if not list((stack.lake / name).glob("*.parquet")):
        return False
    query = f"SELECT count(*), sum(id) FROM read_parquet('{stack.lake / name}/*.parquet')"
    found = duckdb_rows(query)[0]
    if found[0] < rows:
        log(f"{name}: {found[0]} of {rows} rows visible so far (the commit is under way)")
        return False
    if found != (rows, rows * (rows - 1) // 2):
        raise Failed(f"{name}: committed (rows, sum) {found}, expected ({rows}, checksum)")
    return True


def staging_dirs(stack: Stack, name: str) -> list[Path]:
    stack.sync()
    return list(stack.lake.glob(f".{name}.hygge-staging-*"))


def check_down_during_flow(stack: Stack, reference: Path, rows: int, figures: dict) -> None:
    committed = check_outputs(stack, reference)  # what must survive

    # Warm: `down` (grace period 120 s) while the flow runs -> it finishes and commits.
    flows = write_slow_flow(stack, "slow_warm", rows)
    result = enqueue(stack, flows, wait=False)
    if result.returncode != 0:
        raise Failed(f"enqueue of the long flow failed:\n{result.stdout}{result.stderr}")
    wait_for("the long flow to start", lambda: staging_dirs(stack, "slow_warm"), 60, 0.2)
    t = time.monotonic()
    stack.compose("stop", "worker", timeout=300)  # the grace period of the compose file
    figures["warm_down_s"] = round(time.monotonic() - t, 1)
    if not slow_output_complete(stack, "slow_warm", rows):
        raise Failed("workers stopped during a flow: the warm shutdown did not let it commit")
    log(
        f"workers stopped during a flow: warm shutdown finished it, {rows} rows committed, "
        f"stop took {figures['warm_down_s']} s"
    )

    # Killed: `down -t 1` while the flow runs -> nothing of it appears, older outputs intact.
    up(stack)
    flows = write_slow_flow(stack, "slow_killed", rows)
    result = enqueue(stack, flows, wait=False)
    if result.returncode != 0:
        raise Failed(f"enqueue of the long flow failed:\n{result.stdout}{result.stderr}")
    wait_for("the long flow to start", lambda: staging_dirs(stack, "slow_killed"), 60, 0.2)
    stack.compose("stop", "-t", "1", "worker", timeout=300)
    stack.sync()
    if (stack.lake / "slow_killed").exists():
        raise Failed("a flow killed by `stop -t 1` left output at its destination")
    if check_outputs(stack, reference) != committed:
        raise Failed("outputs committed before `down` changed")
    figures["staging_left_after_kill"] = len(staging_dirs(stack, "slow_killed"))
    log(
        "`stop -t 1` killed a running flow: no output for it, committed outputs intact "
        f"({figures['staging_left_after_kill']} hidden staging folder(s) left for the next run)"
    )

    # Resumed: the killed flow's message was never acknowledged; once workers are back, it
    # runs again (hygge re-sends a flow whose lease expired) and commits once.
    t = time.monotonic()
    up(stack)
    wait_for(
        "the killed flow to run again and commit",
        lambda: slow_output_complete(stack, "slow_killed", rows),
        timeout=300,
        interval=2,
    )
    figures["killed_flow_recommitted_s"] = round(time.monotonic() - t, 1)
    figures["staging_left_after_rerun"] = len(staging_dirs(stack, "slow_killed"))
    log(
        f"after `up`, the killed flow ran again and committed its {rows} rows once, "
        f"{figures['killed_flow_recommitted_s']} s after `up` "
        f"({figures['staging_left_after_rerun']} stale staging folder(s) left)"
    )


def run(workers: int, rows: int) -> dict:
    figures: dict = {"workers": workers}
    start = time.monotonic()
    started_engine = start_engine()
    workdir = Path(tempfile.mkdtemp(prefix="hygge-e2e-"))
    stack = Stack(workdir, workers)
    log(
        f"engine {'started by this script' if started_engine else 'already running'}; "
        f"compose tool: {stack.tool}; project {stack.project}"
    )
    try:
        build(stack, figures)
        check_flower_refuses(stack)
        figures["healthy_after_redis_s"] = check_worker_waits_for_redis(stack)
        figures["up_s"] = up(stack)
        log(f"up --scale worker={workers}: all healthy in {figures['up_s']} s")
        t = time.monotonic()
        result = enqueue(stack, "samples/flows.yml")
        figures["enqueue_wait_s"] = round(time.monotonic() - t, 1)
        if result.returncode != 0:
            raise Failed(f"hygge enqueue --wait failed:\n{result.stdout}{result.stderr}")
        counts = check_outputs(stack, reference_lake(workdir))
        figures["flows_done"] = len(counts)
        figures["rows"] = sum(counts.values())
        ran_by = check_flower_tasks(stack, set(SAMPLE_FLOWS))
        figures["workers_seen"] = len(ran_by)
        if len(ran_by) < 2:
            raise Failed(f"all flows ran on one worker ({ran_by}); expected more than one")
        log(
            f"{len(counts)} flows SUCCESS in Flower, outputs equal their sources in DuckDB, "
            f"run by {len(ran_by)} workers; enqueue --wait took {figures['enqueue_wait_s']} s"
        )
        figures.update(check_partitioned(stack))
        check_down_during_flow(stack, workdir / "reference-lake", rows, figures)
    finally:
        stack.down("-v", "-t", "10")
        shutil.rmtree(workdir, ignore_errors=True)
        if started_engine:
            sh("bash", str(SCRIPTS / "docker-engine.sh"), "stop", check=False)
    figures["seconds"] = round(time.monotonic() - start, 1)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rows", type=int, default=4_000_000, help="rows of the long flow")
    args = parser.parse_args()
    try:
        figures = run(args.workers, args.rows)
    except NotRun as exc:
        print(f"end-to-end check did NOT run: {exc}", flush=True)
        return NOT_RUN
    except Failed as exc:
        print(f"end-to-end check FAILED: {exc}", flush=True)
        return 1
    print("end-to-end check PASSED: " + json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
