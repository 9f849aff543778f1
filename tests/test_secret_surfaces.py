"""A test password searched for in every surface a user or an operator reads: stdout,
stderr, --verbose tracebacks and logs, Redis keys, worker logs (issue 19, item 4)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tests.conftest import run_cli
from tests.distributed_support import SECRET, db, everything_in, make_cluster  # noqa: F401
from tests.helpers import parquet_file, write_flows

PG_WITH_SECRET = f"postgresql://app:{SECRET}@127.0.0.1:5432/test"


def _leaks(*outputs: str) -> list[str]:
    return [o for o in outputs if SECRET in o]


@pytest.mark.parametrize("verbose", [(), ("--verbose",)])
@pytest.mark.parametrize(
    "store",
    [
        # (a) merge without key: the model's error used to echo every setting
        "{type: sql, connection: '${HYGGE_TEST_PG}', table: t, mode: merge}",
        f"{{type: sql, connection: '{PG_WITH_SECRET}', table: t, mode: merge}}",
        # (b) pydantic's "Input should be ... (got ...)" of a string, a list, a mapping value
        "{type: parquet, path: s3://bucket-x/t, storage_options: '${HYGGE_TEST_SECRET}'}",
        "{type: parquet, path: s3://bucket-x/t, "
        "storage_options: {secret: ['${HYGGE_TEST_SECRET}']}}",
        "{type: sql, connection: '${HYGGE_TEST_PG}', table: t, mode: merge, "
        "key: ['${HYGGE_TEST_SECRET}', [1]]}",
        "{type: sql, connection: ['${HYGGE_TEST_PG}'], table: t}",
    ],
)
def test_validation_errors_never_echo_a_secret(tmp_path: Path, store: str, verbose: tuple) -> None:
    home = parquet_file(tmp_path, "in", {"id": [1]})
    flows = write_flows(tmp_path, f"flows:\n  f:\n    home: {home}\n    store: {store}\n")
    env = {"HYGGE_TEST_PG": PG_WITH_SECRET, "HYGGE_TEST_SECRET": SECRET}
    for command in ("validate", "run"):
        result = run_cli(command, str(flows), *verbose, env=env)
        assert result.returncode != 0, result.stdout + result.stderr
        assert "flow 'f'" in result.stderr, result.stderr  # still says where
        assert not _leaks(result.stdout, result.stderr), result.stderr


def test_delta_endpoint_password_is_masked_under_verbose(tmp_path: Path, emulators) -> None:
    emu = emulators["s3"]
    host = emu.endpoint.removeprefix("http://")
    flows = write_flows(
        tmp_path,
        "flows:\n  f:\n"
        f"    home: {parquet_file(tmp_path, 'in', {'id': [1, 2]})}\n"
        "    store: {type: delta, path: s3://no-such-bucket-hygge/t, storage_options: "
        "{endpoint: '${HYGGE_TEST_ENDPOINT}', access_key_id: testing, "
        "secret_access_key: '${HYGGE_TEST_SECRET}'}}\n",
    )
    env = {"HYGGE_TEST_ENDPOINT": f"http://user:{SECRET}@{host}", "HYGGE_TEST_SECRET": SECRET}
    result = run_cli("run", str(flows), "--verbose", env=env)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" in result.stderr  # --verbose did show the traceback
    assert not _leaks(result.stdout, result.stderr), result.stderr


def test_enqueue_refuses_a_password_written_in_flows_yml(tmp_path: Path, db: str) -> None:  # noqa: F811
    flows = write_flows(
        tmp_path,
        "homes:\n"
        f"  pg: {{type: sql, connection: '{PG_WITH_SECRET}', table: t}}\n"
        "flows:\n"
        "  f:\n"
        "    home: pg\n"
        f"    store: {tmp_path / 'out'}\n",
    )
    result = run_cli("enqueue", str(flows), env={"HYGGE_BROKER_URL": db})
    assert result.returncode != 0, result.stdout + result.stderr
    assert "flow 'f'" in result.stderr and "${VAR}" in result.stderr, result.stderr
    assert "nothing was enqueued" in result.stderr
    assert not _leaks(result.stdout, result.stderr, everything_in(redis.Redis.from_url(db)))


def test_worker_logs_at_debug_mask_a_drivers_url(
    make_cluster,  # noqa: F811
    tmp_path: Path,
    emulators,
) -> None:
    """A worker logging at debug level writes the failure's traceback: masked too."""
    emu = emulators["s3"]
    host = emu.endpoint.removeprefix("http://")
    cluster = make_cluster(
        HYGGE_TEST_ENDPOINT=f"http://user:{SECRET}@{host}", HYGGE_TEST_SECRET=SECRET
    )
    cluster.start_worker("w1", loglevel="DEBUG")
    flows = write_flows(
        tmp_path,
        "flows:\n  f:\n"
        f"    home: {parquet_file(tmp_path, 'in', {'id': [1, 2]})}\n"
        "    store: {type: delta, path: s3://no-such-bucket-hygge/t, storage_options: "
        "{endpoint: '${HYGGE_TEST_ENDPOINT}', access_key_id: testing, "
        "secret_access_key: '${HYGGE_TEST_SECRET}'}}\n"
        "    options: {retries: 0}\n",
    )
    result = cluster.cli("enqueue", str(flows), "--wait", "--verbose")
    assert result.returncode != 0, result.stdout + result.stderr
    log = cluster.log("w1", tail=10**9)
    assert "DEBUG" in log and "no-such-bucket-hygge" in log  # the failure was logged
    assert not _leaks(result.stdout, result.stderr, log, everything_in(cluster.redis)), log[-3000:]
