"""DuckDB's own delta extension as an independent reader of Delta tables.

DuckDB downloads extensions at run time, which this machine cannot do; the extension binary
is also published on PyPI (`duckdb-extension-delta`), pinned to one DuckDB release. It is
installed on first use, with that DuckDB, into a venv of its own under the test cache, so
the project's DuckDB version stays free. Queries run in a subprocess of that venv.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cache import CACHE, installing

DUCKDB_VERSION = "1.5.5"
VENV = CACHE / f"duckdb-delta-{DUCKDB_VERSION}"

_QUERY = """
import duckdb, duckdb_extension_delta, json, pathlib, sys
ext = next(pathlib.Path(duckdb_extension_delta.__file__).parent.rglob("*.duckdb_extension"))
con = duckdb.connect()
con.execute(f"LOAD '{ext}'")
print(json.dumps(con.sql(sys.argv[1]).fetchall(), default=str))
"""


def _python() -> Path:
    python = VENV / "bin" / "python"
    ready = VENV / "installed"  # written last: a venv without it is half made
    with installing(VENV.name):
        if not ready.exists():
            _install(python)
            ready.touch()
    return python


def _install(python: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    done = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            f"duckdb=={DUCKDB_VERSION}",
            f"duckdb-extension-delta=={DUCKDB_VERSION}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        pytest.fail(
            f"installing DuckDB's delta extension failed: {done.stderr[-2000:]}", pytrace=False
        )


def query(sql: str) -> list[list]:
    """Run `sql` in DuckDB with the delta extension loaded (use `delta_scan('PATH')`)."""
    done = subprocess.run(
        [str(_python()), "-c", _QUERY, sql], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def fingerprint(table_path: str | Path, columns: str = "*") -> tuple[int, int]:
    """(rows, order-independent checksum) of a local Delta table, as DuckDB reads it."""
    rows, checksum = query(
        f"select count(*), coalesce(sum(hash(t)), 0) from "
        f"(select {columns} from delta_scan('{table_path}')) t"
    )[0]
    return int(rows), int(checksum)
