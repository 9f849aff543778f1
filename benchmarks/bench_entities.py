"""One entity flow over a schema vs. the same tables as separate flows, PostgreSQL -> parquet.

    python -m benchmarks.bench_entities               # 50 tables x 100,000 rows
    python -m benchmarks.bench_entities --tables 10 --rows 20000

Creates a schema of its own (dropped at the end) with `--tables` tables of mixed types, then
runs, each with `--concurrency 4`, best of two:
  (1) one definition `tables: ["<schema>.*"]` -> `lake/{entity}` (entities found in the catalog);
  (2) the same tables written out as that many separate flows in one flows.yml.
Prints both times, their ratio (target: within 1.1x), the discovery time (`hygge validate`
reports it per definition) and checks every output's row count with DuckDB.
Server: $HYGGE_TEST_POSTGRES_URL or the local PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import duckdb

from benchmarks.common import PG_URL, ROOT, print_table, psql


def create(schema: str, tables: int, rows: int) -> None:
    psql(f"CREATE SCHEMA {schema}")
    for i in range(tables):
        psql(
            f"CREATE TABLE {schema}.t{i:02d} AS SELECT g AS id, 'name ' || g AS name, "
            "(g * 1.25)::numeric(12, 2) AS amount, g % 2 = 0 AS flag, "
            "timestamptz '2024-01-01' + g * interval '1 s' AS updated_at "
            f"FROM generate_series(1, {rows}) g"
        )


def hygge(work: Path, command: str, *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "hygge", command, "flows.yml", *args],
        cwd=work,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "300"},
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - started, done.stdout


def entity_file(schema: str) -> str:
    return (
        "flows:\n  crm:\n"
        f'    home: {{type: sql, connection: "{PG_URL}", tables: ["{schema}.*"]}}\n'
        '    store: {type: parquet, path: "lake/{entity}"}\n'
    )


def separate_file(schema: str, tables: int) -> str:
    flows = "".join(
        f"  t{i:02d}:\n"
        f'    home: {{type: sql, connection: "{PG_URL}", schema: {schema}, table: t{i:02d}}}\n'
        f"    store: {{type: parquet, path: lake/t{i:02d}}}\n"
        for i in range(tables)
    )
    return "flows:\n" + flows


def best_of_two(work: Path, text: str) -> float:
    (work / "flows.yml").write_text(text)
    times = []
    for _ in range(2):
        shutil.rmtree(work / "lake", ignore_errors=True)
        times.append(hygge(work, "run", "--concurrency", "4")[0])
    return min(times)


def check(work: Path, tables: int, rows: int) -> None:
    with duckdb.connect() as con:
        for i in range(tables):
            got = con.execute(
                f"SELECT count(*) FROM read_parquet('{work}/lake/t{i:02d}/*.parquet')"
            ).fetchone()[0]
            assert got == rows, f"t{i:02d}: {got} rows, expected {rows}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=50)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    schema = f"bench_ent_{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="hygge-bench-entities-"))
    print(f"creating {args.tables} tables x {args.rows:,} rows in {schema} ...", file=sys.stderr)
    create(schema, args.tables, args.rows)
    try:
        entity = best_of_two(work, entity_file(schema))
        check(work, args.tables, args.rows)
        separate = best_of_two(work, separate_file(schema, args.tables))
        check(work, args.tables, args.rows)
        (work / "flows.yml").write_text(entity_file(schema))
        validate_entity, out = hygge(work, "validate")
        found = float(re.search(r"found in ([0-9.]+) s", out).group(1))
        (work / "flows.yml").write_text(separate_file(schema, args.tables))
        validate_separate, _ = hygge(work, "validate")
    finally:
        psql(f"DROP SCHEMA {schema} CASCADE")
        shutil.rmtree(work, ignore_errors=True)
    total = args.tables * args.rows
    print_table(
        f"{args.tables} tables x {args.rows:,} rows, PostgreSQL -> parquet, --concurrency 4 "
        "(best of two)",
        [
            ("one entity flow", f"{entity:.2f}", f"{total / entity:,.0f}"),
            (f"{args.tables} separate flows", f"{separate:.2f}", f"{total / separate:,.0f}"),
        ],
        ("case", "seconds", "rows/s"),
    )
    print(f"\nratio entity / separate: {entity / separate:.3f}x (target: within 1.1x)")
    print(
        f"discovery: {found:.3f} s in the catalog; `hygge validate` {validate_entity:.2f} s "
        f"(entities) vs {validate_separate:.2f} s (separate flows)"
    )


if __name__ == "__main__":
    main()
