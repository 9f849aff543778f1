"""The test cache (~/.cache/hygge-tests): tools the tests install on first use (Azurite from
npm, DuckDB's delta extension in a venv of its own), kept between runs."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hygge-tests"


@contextlib.contextmanager
def installing(tool: str) -> Iterator[None]:
    """Held while `tool` is checked for and installed: test processes running at once
    (`pytest -n`) install it once; the others wait here, then find it installed."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{tool}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield
