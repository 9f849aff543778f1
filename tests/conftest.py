"""Shared fixtures: real services, sample data, and a helper to run the real CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
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


def kill_run_when(project: Path, ready: Callable[[], bool], timeout: float = 60) -> None:
    """Start `hygge run flows.yml` in `project` and SIGKILL it as soon as `ready()` is true:
    a crash at a chosen point of the run."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "hygge", "run", "flows.yml"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert proc.poll() is None, "the flow ended before the point to kill it"
            assert time.monotonic() < deadline, "the flow never reached the point to kill it"
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def staging_has_data(staging_parent: Path) -> bool:
    """True when a file store's staging folder under `staging_parent` holds data."""
    folders = staging_parent.iterdir() if staging_parent.exists() else []
    return any(p.is_dir() and "hygge-staging" in p.name and any(p.iterdir()) for p in folders)


def kill_run_while_staging(project: Path, staging_parent: Path, timeout: float = 60) -> None:
    """SIGKILL `hygge run` once it stages data under `staging_parent` (mid-write)."""
    kill_run_when(project, lambda: staging_has_data(staging_parent), timeout)


_emulators: dict[str, object] = {}


@pytest.fixture(scope="session")
def emulators():
    """Object-store emulators by scheme (s3, az, gs), started on first use, stopped at the end."""
    from tests import objectstore

    class Lazy:
        def __getitem__(self, scheme: str) -> objectstore.Emulator:
            if scheme not in _emulators:
                _emulators[scheme] = objectstore.emulator(scheme)
            return _emulators[scheme]  # type: ignore[return-value]

    yield Lazy()
    for e in _emulators.values():
        e.stop()  # type: ignore[attr-defined]
    _emulators.clear()


@pytest.fixture
def cloud_env(monkeypatch):
    """Point this process (and `hygge` subprocesses) at an emulator: `cloud_env(emulator)`."""

    def apply(emu) -> dict[str, str]:
        for key, value in emu.env.items():
            monkeypatch.setenv(key, value)
        return emu.env

    return apply
