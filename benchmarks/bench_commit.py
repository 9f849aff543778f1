"""The commit step of partitioned flows: its share of the wall time (issue 18, Speed b/c).

    python -m benchmarks.bench_commit                 # (c) PostgreSQL, (m) MariaDB, (b), (s)
    python -m benchmarks.bench_commit --only m --repeat 3

(c) PostgreSQL -> PostgreSQL, 4,000,000 rows (bigint, int, text, timestamp, float8),
    `partitions: 4`, `mode: replace`, `hygge run`: after, every part loads one shared table
    that the commit renames into place (no copy); before, a table per part, all copied into
    one staging table at the commit; interleaved in one run. And an append (after: the
    parts' rows inserted straight into the target). Numeric columns would add the same
    text -> numeric rewrite to both (PostgreSQL stages numerics as text, unpartitioned too).
(m) MariaDB -> MariaDB, 1,000,000 rows of the same columns, `partitions: 4`, `mode: append`
    into an existing table: after, the commit inserts every part's rows straight into the
    target; before, it copied them into one staging table first; interleaved in one run.
(b) TPC-H lineitem SF1 parquet -> Delta table (local), `partitions: 2`: one Delta commit
    adds every part's data files (target: commit under 5% of the wall time).
(s) the same into an S3 parquet dataset on moto (parts staged as open multipart uploads,
    completed by the commit).
Every output is counted back. The load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from benchmarks.common import DATA, PG_URL, ROOT, print_table, psql, tpch_lineitem

SOURCE = "bench_commit_source"
TARGET = "bench_commit_target"
ROWS = 4_000_000
MARIADB_ROWS = 1_000_000


def share(flows: Path, *flags: str, env: dict[str, str] | None = None) -> dict[str, float]:
    """Run flows.yml in a child process; its wall, commit and CPU seconds."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.commit_share", str(flows), *flags],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def row(label: str, runs: list[dict[str, float]]) -> tuple[str, ...]:
    wall = statistics.median(r["wall"] for r in runs)
    commit = statistics.median(r["commit"] for r in runs)
    cpu = statistics.median(r["cpu"] for r in runs)
    share_ = statistics.median(r["commit"] / r["wall"] for r in runs)
    return (label, f"{wall:.1f}", f"{commit:.2f}", f"{share_:.1%}", f"{cpu:.1f}")


def bench_postgres(work: Path, repeat: int) -> list[tuple[str, ...]]:
    psql(f"DROP TABLE IF EXISTS {SOURCE}")
    psql(
        f"CREATE TABLE {SOURCE} AS SELECT g AS id, g % 1000 AS k, md5(g::text) AS s, "
        "timestamp '2026-01-01' + g * interval '1 second' AS ts, "
        f"g * 1.5::float8 AS amount FROM generate_series(1, {ROWS}) g"
    )
    psql(f"ANALYZE {SOURCE}")
    flows = {}
    for mode in ("replace", "append"):
        flows[mode] = work / f"pg_{mode}.yml"
        flows[mode].write_text(
            f"flows:\n  copy:\n"
            f"    home: {{type: sql, connection: '{PG_URL}', table: {SOURCE}, partition_on: id}}\n"
            f"    store: {{type: sql, connection: '{PG_URL}', table: {TARGET}, mode: {mode}}}\n"
            "    options: {partitions: 4}\n"
        )
    runs: dict[str, list[dict[str, float]]] = {
        "before": [],
        "after": [],
        "append before": [],
        "append": [],
    }
    try:
        for _ in range(repeat):
            for label, flags in (("before", ["--gather"]), ("after", [])):
                runs[label].append(share(flows["replace"], *flags))
                if int(psql(f"SELECT count(*) FROM {TARGET}")) != ROWS:
                    raise SystemExit(f"(c) {label}: the target does not hold {ROWS:,} rows")
            for label, flags in (("append before", ["--gather"]), ("append", [])):
                before = int(psql(f"SELECT count(*) FROM {TARGET}"))
                runs[label].append(share(flows["append"], *flags))
                if int(psql(f"SELECT count(*) FROM {TARGET}")) != before + ROWS:
                    raise SystemExit(f"(c) {label}: rows lost or doubled")
    finally:
        psql(f"DROP TABLE IF EXISTS {TARGET}")
        psql(f"DROP TABLE IF EXISTS {SOURCE}")
    return [
        row("(c) PG->PG 4 M rows, 4 parts, replace: before (gather copy)", runs["before"]),
        row("(c) the same, replace: after (shared table)", runs["after"]),
        row("(c) the same, append: before (gather copy)", runs["append before"]),
        row("(c) the same, append: after (parts -> target)", runs["append"]),
    ]


def bench_mariadb(work: Path, repeat: int) -> list[tuple[str, ...]]:
    from benchmarks.bench_sql import MY_URL, mysql, sql

    def run(statement: str) -> str:
        return sql(mysql("-N", "-B", "-e", statement))

    run(f"DROP TABLE IF EXISTS {SOURCE}, {TARGET}")
    run(f"CREATE TABLE {SOURCE} (id bigint, k int, s varchar(32), ts datetime, amount double)")
    run(
        f"INSERT INTO {SOURCE} SELECT seq, seq % 1000, md5(seq), "
        f"'2026-01-01' + INTERVAL seq SECOND, seq * 1.5 FROM seq_1_to_{MARIADB_ROWS}"
    )
    run(f"CREATE TABLE {TARGET} LIKE {SOURCE}")
    flows = work / "my_append.yml"
    flows.write_text(
        f"flows:\n  copy:\n"
        f"    home: {{type: sql, connection: '{MY_URL}', table: {SOURCE}, partition_on: id}}\n"
        f"    store: {{type: sql, connection: '{MY_URL}', table: {TARGET}, mode: append}}\n"
        "    options: {partitions: 4}\n"
    )
    runs: dict[str, list[dict[str, float]]] = {"append before": [], "append": []}
    try:
        for _ in range(repeat):
            for label, flags in (("append before", ["--gather"]), ("append", [])):
                before = int(run(f"SELECT count(*) FROM {TARGET}"))
                runs[label].append(share(flows, *flags))
                if int(run(f"SELECT count(*) FROM {TARGET}")) != before + MARIADB_ROWS:
                    raise SystemExit(f"(m) {label}: rows lost or doubled")
    finally:
        run(f"DROP TABLE IF EXISTS {SOURCE}, {TARGET}")
    return [
        row(
            "(m) MariaDB->MariaDB 1 M rows, 4 parts, append: before (gather copy)",
            runs["append before"],
        ),
        row("(m) the same, append: after (parts -> target)", runs["append"]),
    ]


def bench_delta(work: Path, repeat: int) -> list[tuple[str, ...]]:
    source = tpch_lineitem(1)
    rows = pq.read_metadata(source).num_rows
    flows = work / "delta.yml"
    runs = []
    for i in range(repeat):
        target = work / f"delta_{i}"
        flows.write_text(
            f"flows:\n  lineitem:\n    home: {source}\n"
            f"    store: {{type: delta, path: {target}}}\n"
            "    options: {partitions: 2}\n"
        )
        runs.append(share(flows))
        from deltalake import DeltaTable

        got = DeltaTable(str(target)).to_pyarrow_dataset().count_rows()
        if got != rows:
            raise SystemExit(f"(b) Delta holds {got:,} rows, not {rows:,}")
    return [row("(b) lineitem SF1 parquet -> Delta (local), 2 parts", runs)]


def bench_s3(work: Path, repeat: int) -> list[tuple[str, ...]]:
    from tests.objectstore import emulator

    source = tpch_lineitem(1)
    rows = pq.read_metadata(source).num_rows
    emu = emulator("s3")
    runs = []
    try:
        for _ in range(repeat):
            bucket = emu.new_bucket()
            flows = work / "s3.yml"
            flows.write_text(
                f"flows:\n  lineitem:\n    home: {source}\n"
                f"    store: '{bucket}/lake/lineitem'\n"
                "    options: {partitions: 2}\n"
            )
            runs.append(share(flows, env=emu.env))
            fs = emu.filesystem()
            import pyarrow.dataset as ds

            got = ds.dataset(
                f"{bucket.split('://', 1)[1]}/lake/lineitem", filesystem=fs, format="parquet"
            ).count_rows()
            if got != rows:
                raise SystemExit(f"(s) the S3 dataset holds {got:,} rows, not {rows:,}")
            fs.delete_dir(bucket.split("://", 1)[1])
    finally:
        emu.stop()
    return [row("(s) lineitem SF1 parquet -> S3 dataset (moto), 2 parts", runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["c", "m", "b", "s"], action="append")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each (median)")
    args = parser.parse_args()
    only = args.only or ["c", "m", "b", "s"]
    DATA.mkdir(parents=True, exist_ok=True)
    benches = {"c": bench_postgres, "m": bench_mariadb, "b": bench_delta, "s": bench_s3}
    with tempfile.TemporaryDirectory(dir=DATA) as tmp:
        for key in only:
            done = benches[key](Path(tmp), args.repeat)
            print_table(
                f"({key}) load average {os.getloadavg()[0]:.2f}",
                done,
                ("", "wall s", "commit s", "commit share", "CPU s (hygge)"),
            )
            sys.stdout.flush()


if __name__ == "__main__":
    main()
