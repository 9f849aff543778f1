"""The package layout holds: `hygge` is the library and never loads the distributed engine
(`worker`, Celery, redis) unless a command that starts or talks to workers is called."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.checks import fingerprint
from tests.conftest import ROOT

HEAVY = ("worker", "celery", "redis")


def python(code: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_hygge_loads_no_distributed_code() -> None:
    done = python(
        "import hygge, hygge.cli, sys; assert 'worker' not in sys.modules and "
        "'celery' not in sys.modules and 'redis' not in sys.modules"
    )
    assert done.returncode == 0, done.stderr


def test_hygge_run_loads_no_distributed_code(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    code = (
        "import sys\n"
        "from hygge.cli import app\n"
        "try:\n"
        "    app(['run', 'samples/flows.yml', '-f', 'users_to_parquet'], prog_name='hygge')\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        f"loaded = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    done = python(code, HYGGE_SAMPLES_LAKE=str(lake))
    assert done.returncode == 0, done.stdout + done.stderr
    assert fingerprint(lake / "users")[0] == 1000  # it did run


def test_the_library_never_imports_the_engine_at_module_level() -> None:
    """Only the CLI commands that start or talk to workers import `worker`, when called."""
    offenders = []
    for path in sorted((ROOT / "hygge").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.startswith(("import worker", "from worker")):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line}")
    assert not offenders, offenders
