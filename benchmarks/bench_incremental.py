"""Incremental vs full load from PostgreSQL, on TPC-H lineitem with an `updated_at` column.

    python -m benchmarks.bench_incremental            # scale factor 1 (about 6 M rows)
    python -m benchmarks.bench_incremental --scale 1 --changed 0.01

In one run: load lineitem (+ updated_at, indexed) into PostgreSQL with hygge itself, then
  (1) full load:   `hygge run --full-refresh` of an incremental flow, PostgreSQL -> parquet;
  (2) change 1% of the rows (UPDATE ... updated_at = later), and
  (3) incremental: `hygge run` of the same flow, which reads `updated_at >= mark - lag`.
Prints both times, the rows each moved (from the committed state, cross-checked by counting
the parquet output with DuckDB) and the ratio. Server: $HYGGE_TEST_POSTGRES_URL or local.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from benchmarks.common import ROOT, print_table, tpch_lineitem
from tests.helpers import write_flows

PG_URL = os.environ.get("HYGGE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
TABLE = "bench_incr_lineitem"


def psql(sql: str) -> str:
    done = subprocess.run(
        ["psql", PG_URL, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def hygge(work: Path, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "hygge", "run", "flows.yml", *args],
        cwd=work,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def committed_rows(work: Path) -> int:
    """Rows of the last run, from the state committed with the data."""
    sys.path.insert(0, str(ROOT))
    from hygge import config

    store = config.load(work / "flows.yml").flows["lineitem"].store.build()
    state = asyncio.run(store.read_state("lineitem"))
    assert state is not None
    return int(state["rows"])


def parquet_rows(folder: Path) -> int:
    query = f"SELECT count(*) FROM read_parquet('{folder}/*.parquet')"
    return int(duckdb.sql(query).fetchall()[0][0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--changed", type=float, default=0.01, help="fraction of rows updated")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="hygge_bench_incr_"))
    try:
        source = work / "lineitem_ts.parquet"
        duckdb.sql(
            f"COPY (SELECT *, TIMESTAMPTZ '2024-01-01 00:00:00+00' + "
            f"to_seconds(l_orderkey * 8 + l_linenumber) AS updated_at "
            f"FROM read_parquet('{tpch_lineitem(args.scale)}')) TO '{source}' (FORMAT parquet)"
        )
        write_flows(
            work,
            f"flows:\n"
            f"  load_source:\n"
            f"    home: {source}\n"
            f"    store: {{type: sql, connection: '{PG_URL}', table: {TABLE}}}\n"
            f"  lineitem:\n"
            f"    home: {{type: sql, connection: '{PG_URL}', table: {TABLE}, cursor: updated_at,"
            f" lag: 10m}}\n"
            f"    store: {{path: lake/lineitem}}\n"
            f"    options: {{incremental: true}}\n",
        )
        print("loading the source table into PostgreSQL ...", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "hygge", "run", "flows.yml", "--flow", "load_source"],
            cwd=work,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=True,
            stdout=subprocess.DEVNULL,
        )
        psql(f"CREATE INDEX ON {TABLE} (updated_at); ANALYZE {TABLE}")
        total = int(psql(f"SELECT count(*) FROM {TABLE}"))

        full = hygge(work, "--flow", "lineitem", "--full-refresh")
        full_rows = committed_rows(work)
        assert full_rows == total == parquet_rows(work / "lake" / "lineitem")

        every = round(1 / args.changed)
        changed = int(
            psql(
                f"WITH u AS (UPDATE {TABLE} SET l_comment = 'changed', updated_at = "
                f"(SELECT max(updated_at) FROM {TABLE}) + interval '1 hour' "
                f"WHERE abs(hashtext(l_orderkey || '-' || l_linenumber)) % {every} = 0 "
                "RETURNING 1) "
                "SELECT count(*) FROM u"
            )
        )
        psql(f"VACUUM ANALYZE {TABLE}")
        incremental = hygge(work, "--flow", "lineitem")
        moved = committed_rows(work)
        assert moved == changed, f"the incremental run moved {moved:,} rows, {changed:,} changed"
        assert parquet_rows(work / "lake" / "lineitem") == total + changed

        print_table(
            f"PostgreSQL lineitem SF{args.scale} ({total:,} rows) -> parquet, "
            f"{changed:,} rows changed ({changed / total:.2%})",
            [
                ("full load (--full-refresh)", f"{full:.2f}", f"{full_rows:,}"),
                ("incremental run", f"{incremental:.2f}", f"{moved:,}"),
            ],
            ("run", "seconds", "rows moved"),
        )
        print(f"\nincremental run is {full / incremental:.1f}x faster than the full load")
    finally:
        subprocess.run(
            ["psql", PG_URL, "-X", "-q", "-c", f"DROP TABLE IF EXISTS {TABLE}"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
