"""Shared fixtures: real services, sample data, and a helper to run the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import services

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def redis_url() -> str:
    return services.service_url("redis")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return services.service_url("postgres")


@pytest.fixture(scope="session")
def mysql_url() -> str:
    return services.service_url("mysql")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    services.stop_containers()


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `hygge ARGS` as a user would, in a fresh process."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "hygge", *args],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def cli():
    return run_cli
