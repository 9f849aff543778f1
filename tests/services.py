"""Where the real services for tests live: environment first, then local defaults, then
testcontainers where a Docker engine answers. If none works, the test fails (never skips)
with a message saying what to start."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from urllib.parse import urlparse

import pytest

LOCAL_DEFAULTS = {
    "redis": ("HYGGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "postgres": ("HYGGE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    "mysql": ("HYGGE_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
}

START_HINTS = {
    "redis": "start Redis on 127.0.0.1:6379 or set HYGGE_TEST_REDIS_URL",
    "postgres": "start PostgreSQL on 127.0.0.1:5432 (trust auth, database `test`) "
    "or set HYGGE_TEST_POSTGRES_URL",
    "mysql": "start MariaDB/MySQL on 127.0.0.1:3306 (root, database `test`) "
    "or set HYGGE_TEST_MYSQL_URL",
}

_containers: list[object] = []


def reachable(url: str, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections at the URL's host and port."""
    parsed = urlparse(url)
    default_ports = {"redis": 6379, "postgresql": 5432, "mysql": 3306}
    port = parsed.port or default_ports.get(parsed.scheme.split("+")[0], 0)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def _from_container(service: str) -> str | None:
    """Start the service with testcontainers, if a Docker engine is reachable."""
    try:
        import docker  # noqa: F401  (installed with testcontainers)
        from testcontainers.core.docker_client import DockerClient

        DockerClient().client.ping()
    except Exception:
        return None
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    starters: dict[str, Callable[[], str]] = {
        "redis": _redis_container,
        "postgres": _postgres_container,
        "mysql": _mysql_container,
    }
    try:
        return starters[service]()
    except Exception:
        return None


def _redis_container() -> str:
    from testcontainers.redis import RedisContainer

    c = RedisContainer().start()
    _containers.append(c)
    return f"redis://{c.get_container_host_ip()}:{c.get_exposed_port(6379)}/0"


def _postgres_container() -> str:
    from testcontainers.postgres import PostgresContainer

    c = PostgresContainer("postgres:16", dbname="test").start()
    _containers.append(c)
    return c.get_connection_url(driver=None)


def _mysql_container() -> str:
    from testcontainers.mysql import MySqlContainer

    c = MySqlContainer("mariadb:11", dbname="test").start()
    _containers.append(c)
    return c.get_connection_url().replace("mysql+pymysql://", "mysql://")


def service_url(service: str) -> str:
    """The URL of a running `service`, or a failed test saying what to start."""
    variable, default = LOCAL_DEFAULTS[service]
    if os.environ.get(variable):
        url = os.environ[variable]
        if not reachable(url):
            pytest.fail(f"{variable}={url} is set but nothing answers there", pytrace=False)
        return url
    if reachable(default):
        return default
    url = _from_container(service)
    if url:
        return url
    pytest.fail(
        f"{service} is needed for this test and none was found: {START_HINTS[service]}",
        pytrace=False,
    )


def stop_containers() -> None:
    for c in _containers:
        c.stop()  # type: ignore[attr-defined]
