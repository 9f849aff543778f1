"""`hygge run`, `validate`, `schema` and `python -m hygge.coordinator`, as a user types them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.checks import fingerprint
from tests.conftest import ROOT, run_cli

SAMPLES = ROOT / "samples"


def test_samples_run_end_to_end(tmp_path: Path):
    lake = tmp_path / "lake"
    done = run_cli("run", "samples/flows.yml", env={"HYGGE_SAMPLES_LAKE": str(lake)})
    assert done.returncode == 0, done.stderr
    assert "hygge run summary" in done.stdout
    data = SAMPLES / "data"
    assert fingerprint(lake / "users") == fingerprint(data / "users.parquet")
    assert fingerprint(lake / "orders") == fingerprint(data / "orders.csv")
    assert fingerprint(lake / "events") == fingerprint(data / "events.ndjson")
    assert fingerprint(lake / "users_csv") == fingerprint(
        data / "users.parquet", "user_id, name, city"
    )
    assert fingerprint(lake / "users")[0] == 1000


def test_run_from_another_directory_uses_paths_relative_to_the_file(tmp_path: Path):
    lake = tmp_path / "lake"
    done = run_cli(
        "run",
        str(SAMPLES / "flows.yml"),
        "--flow",
        "users_to_parquet",
        cwd=tmp_path,
        env={"HYGGE_SAMPLES_LAKE": str(lake)},
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in lake.iterdir()) == ["users"]


def test_python_dash_m_coordinator_is_the_same_as_run(tmp_path: Path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYGGE_SAMPLES_LAKE": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "hygge.coordinator", "samples/flows.yml", "-f", "orders_to_parquet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert fingerprint(tmp_path / "orders") == fingerprint(SAMPLES / "data" / "orders.csv")


def test_dry_run_moves_nothing(tmp_path: Path):
    done = run_cli(
        "run", "samples/flows.yml", "--dry-run", env={"HYGGE_SAMPLES_LAKE": str(tmp_path)}
    )
    assert done.returncode == 0, done.stderr
    assert "wave 1" in done.stdout and "wave 2: active_users_to_csv" in done.stdout
    assert list(tmp_path.iterdir()) == []


def test_validate_checks_and_moves_nothing(tmp_path: Path):
    done = run_cli("validate", "samples/flows.yml", env={"HYGGE_SAMPLES_LAKE": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert "4 flow(s) valid" in done.stdout
    assert list(tmp_path.iterdir()) == []


def test_unknown_flow_name(tmp_path: Path):
    done = run_cli("run", "samples/flows.yml", "--flow", "users_to_parquett")
    assert done.returncode == 2  # usage: nothing was moved
    assert "no flow named 'users_to_parquett'" in done.stderr
    assert "did you mean 'users_to_parquet'" in done.stderr


def test_schema_is_json_schema_for_every_type():
    done = run_cli("schema")
    assert done.returncode == 0
    schema = json.loads(done.stdout)
    assert schema["title"] == "hygge flows.yml"
    text = json.dumps(schema)
    for name in ("ParquetHome", "CsvHome", "NdjsonHome", "ParquetStore", "CsvStore"):
        assert name in text
    assert "compression" in text and "depends_on" in text


def test_failed_flow_exits_1_others_still_run_and_dependants_are_skipped(tmp_path: Path):
    (tmp_path / "flows.yml").write_text(
        f"""
flows:
  good:
    home: {SAMPLES / "data" / "users.parquet"}
    store: out/good
  bad:
    home: missing.parquet
    store: out/bad
  after_bad:
    home: {SAMPLES / "data" / "users.parquet"}
    store: out/after
    options: {{depends_on: bad}}
"""
    )
    done = run_cli("run", "flows.yml", cwd=tmp_path)
    assert done.returncode == 1
    assert "input not found" in done.stderr and "missing.parquet" in done.stderr
    assert "skipped: depends on bad" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert fingerprint(tmp_path / "out" / "good")[0] == 1000
    assert not (tmp_path / "out" / "bad").exists() and not (tmp_path / "out" / "after").exists()


@pytest.mark.parametrize("flag", ["--verbose", "-v"])
def test_verbose_shows_the_traceback(tmp_path: Path, flag: str):
    (tmp_path / "flows.yml").write_text("flows: {f: {home: missing.parquet, store: out}}")
    done = run_cli("run", "flows.yml", flag, cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" in done.stderr


def test_advanced_samples_run(tmp_path: Path):
    env = {"HYGGE_SAMPLES_LAKE": str(tmp_path)}
    for _ in range(2):  # append twice: the log holds the orders twice
        done = run_cli("run", "samples/advanced.yml", env=env)
        assert done.returncode == 0, done.stderr
    orders = fingerprint(SAMPLES / "data" / "orders.csv")
    log = fingerprint(tmp_path / "advanced" / "orders_log")
    assert log[0] == 2 * orders[0] and log[1] == 2 * orders[1]
    assert len(list((tmp_path / "advanced" / "orders_log").glob("*.parquet"))) == 6
    lines = (next((tmp_path / "advanced" / "user_cities").glob("*.csv"))).read_text().splitlines()
    assert len(lines) == 1000 and lines[0].count(";") == 1 and not lines[0].startswith('"user')
    assert fingerprint(tmp_path / "advanced" / "events") == fingerprint(
        SAMPLES / "data" / "events.ndjson"
    )
