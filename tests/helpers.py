"""Inputs that tests and benchmarks write: a flows.yml, a parquet file. One way each, so a
test reads the same everywhere (the read-back side is tests/checks.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def write_flows(folder: Path, body: str, name: str = "flows.yml") -> Path:
    """`folder/flows.yml` (or `name`) holding `body`; returns its path."""
    path = folder / name
    path.write_text(body)
    return path


def parquet_file(folder: Path, name: str, data: dict[str, Any] | pa.Table) -> str:
    """`folder/NAME.parquet` holding `data` (columns by name, or a table); returns its path."""
    path = folder / f"{name}.parquet"
    pq.write_table(data if isinstance(data, pa.Table) else pa.table(data), path)
    return str(path)


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll `check` until it returns something true (and return that): tests wait for a
    condition they can observe, never for a fixed time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
