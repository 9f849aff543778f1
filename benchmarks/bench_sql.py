"""SQL homes and stores vs the databases' own bulk tools, on TPC-H lineitem, in one run.

    python -m benchmarks.bench_sql               # scale factor 1 (about 6 M rows)
    python -m benchmarks.bench_sql --repeat 3    # medians of three, interleaved with the baselines
    python -m benchmarks.bench_sql --scale 3     # SF3: (d)'s memory must stay flat

Measured (issues 3, 23), each hygge run as its own process (`hygge run`); every figure is the
median of --repeat runs (default 2) interleaved with the baselines, the ratio the median of
the per-run ratios; peak RSS is of the whole process tree (sampled), CPU seconds from wait4:
  (a) PostgreSQL -> parquet   vs  psql COPY (SELECT * ...) TO STDOUT (FORMAT binary) > /dev/null
  (b) parquet -> PostgreSQL   vs  psql \\copy ... FROM the same rows as CSV   (mode replace)
  (c) parquet -> MariaDB      vs  mysql LOAD DATA LOCAL INFILE of the same CSV
  (d) MariaDB -> parquet      vs  mariadb --quick -N -e "select * ..." > /dev/null, reading the
      table (c)'s LOAD DATA filled; and the peak RSS of (d) on its first 1 M rows, to show
      memory is bounded by the batch, not the table
Targets (issue 23): (a) >= 0.85x COPY's rows/s with peak RSS < 400 MB; (b) >= 1.3x;
(c) >= 1.0x; (d) >= 0.85x with peak RSS < 400 MB, and at most 1.3x the 1 M-row run's (run
--scale 3 to see it flat at SF3).
Servers: $HYGGE_TEST_POSTGRES_URL / $HYGGE_TEST_MYSQL_URL, else the local defaults.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.parquet as pq

from benchmarks.common import ROOT, tpch_lineitem, tree_rss_kb
from tests.helpers import write_flows

PG_URL = os.environ.get("HYGGE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MY_URL = os.environ.get("HYGGE_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
TABLE, BASELINE, FIRST_1M = "bench_sql_lineitem", "bench_sql_copy", "bench_sql_1m"
BATCH = 100_000


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_mb: float
    cpu_seconds: float  # user + system time of the process itself


def timed(command: list[str], stdout: int | None = None) -> Run:
    """Wall time, the peak RSS of the command's whole process tree (sampled every 0.1 s),
    and its CPU seconds (wait4), failing loudly."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=stdout)
    peak = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, tree_rss_kb(proc.pid))
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}")
    peak = max(peak, usage.ru_maxrss)  # a run shorter than one sample
    return Run(seconds, peak / 1024, usage.ru_utime + usage.ru_stime)


def lineitem(scale: int) -> tuple[Path, Path, int]:
    """TPC-H lineitem as parquet (tpchgen-cli) and the same rows as CSV, generated once."""
    parquet = tpch_lineitem(scale)
    csv = parquet.with_suffix(".csv")
    if not csv.exists():
        import duckdb

        tmp = csv.with_suffix(".tmp")
        duckdb.sql(f"COPY (SELECT * FROM '{parquet}') TO '{tmp}' (FORMAT csv, HEADER false)")
        tmp.rename(csv)
    return parquet, csv, pq.read_metadata(parquet).num_rows


def psql(*args: str) -> list[str]:
    return ["psql", PG_URL, "-X", "-q", "-v", "ON_ERROR_STOP=1", *args]


def mysql(*args: str) -> list[str]:
    u = urlparse(MY_URL)
    cmd = [
        "mysql",
        "--local-infile=1",
        "-h",
        u.hostname or "127.0.0.1",
        "-P",
        str(u.port or 3306),
        "-u",
        u.username or "root",
    ]
    if u.password:
        cmd.append(f"-p{u.password}")
    return [*cmd, u.path.lstrip("/"), *args]


def sql(command: list[str]) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def hygge(flows: Path, flow: str) -> list[str]:
    return [sys.executable, "-m", "hygge", "run", str(flows), "--flow", flow]


def sql_flows(work: Path, parquet: Path) -> Path:
    return write_flows(
        work,
        f"""
flows:
  pg_in:
    home: {{type: parquet, path: "{parquet}", batch_size: {BATCH}}}
    store: {{type: sql, connection: "{PG_URL}", table: {TABLE}, mode: replace}}
  pg_out:
    home: {{type: sql, connection: "{PG_URL}", table: {TABLE}, batch_size: {BATCH}}}
    store: {{type: parquet, path: "{work}/lake"}}
  maria_in:
    home: {{type: parquet, path: "{parquet}", batch_size: {BATCH}}}
    store: {{type: sql, connection: "{MY_URL}", table: {TABLE}, mode: replace}}
  maria_out:
    home: {{type: sql, connection: "{MY_URL}", table: {BASELINE}, batch_size: {BATCH}}}
    store: {{type: parquet, path: "{work}/lake_maria"}}
  maria_out_1m:
    home: {{type: sql, connection: "{MY_URL}", table: {FIRST_1M}, batch_size: {BATCH}}}
    store: {{type: parquet, path: "{work}/lake_maria_1m"}}
""",
    )


def check_content(rows: int, parquet: Path, work: Path) -> None:
    """What landed equals the source: row count and exact sums, read by the databases."""
    import duckdb

    expected = duckdb.execute(
        f"SELECT count(*), sum(l_orderkey), sum(l_extendedprice), "
        f"sum(length(l_comment)) FROM '{parquet}'"
    ).fetchone()
    query = (
        "SELECT count(*), sum(l_orderkey), sum(l_extendedprice), "
        f"sum(char_length(l_comment)) FROM {TABLE}"
    )
    for name, out in (
        ("PostgreSQL", sql(psql("-At", "-F", ",", "-c", query))),
        ("MariaDB", sql(mysql("-N", "-B", "-e", query)).replace("\t", ",")),
    ):
        got = [v.strip() for v in out.split(",")]
        want = [str(v) for v in expected]
        if got != want:
            raise SystemExit(f"{name} content differs from the parquet: {got} != {want}")
    for name, lake_dir in (("PostgreSQL", "lake"), ("MariaDB", "lake_maria")):
        lake = duckdb.execute(
            f"SELECT count(*), sum(l_orderkey), sum(l_extendedprice), sum(length(l_comment)) "
            f"FROM '{work}/{lake_dir}/*.parquet'"
        ).fetchone()
        if lake != expected:
            raise SystemExit(f"the parquet written from {name} differs: {lake} != {expected}")
    assert expected[0] == rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs of each case, interleaved; medians kept"
    )
    args = parser.parse_args()
    parquet, csv, rows = lineitem(args.scale)
    runs: dict[str, list[Run]] = {}

    def keep(label: str, run: Run) -> None:
        runs.setdefault(label, []).append(run)
        print(
            f"  {label}: {run.seconds:.2f} s, CPU {run.cpu_seconds:.1f} s, "
            f"peak RSS {run.peak_rss_mb:.0f} MB",
            flush=True,
        )

    with tempfile.TemporaryDirectory(prefix="hygge-bench-sql-") as tmp:
        work = Path(tmp)
        flows = sql_flows(work, parquet)
        try:
            for attempt in range(args.repeat):
                print(f"run {attempt + 1}/{args.repeat} ({rows:,} rows)", flush=True)
                # (b) parquet -> PostgreSQL
                keep("b hygge", timed(hygge(flows, "pg_in")))
                sql(
                    psql(
                        "-c",
                        f"DROP TABLE IF EXISTS {BASELINE}",
                        "-c",
                        f"CREATE TABLE {BASELINE} (LIKE {TABLE})",
                    )
                )
                keep(
                    "b COPY FROM csv",
                    timed(psql("-c", f"\\copy {BASELINE} FROM '{csv}' (FORMAT csv)")),
                )
                # (a) PostgreSQL -> parquet
                keep("a hygge", timed(hygge(flows, "pg_out")))
                with open(os.devnull, "wb") as null:
                    keep(
                        "a COPY TO binary",
                        timed(
                            psql("-c", f"COPY (SELECT * FROM {TABLE}) TO STDOUT (FORMAT binary)"),
                            stdout=null.fileno(),
                        ),
                    )
                # (c) parquet -> MariaDB
                keep("c hygge", timed(hygge(flows, "maria_in")))
                sql(
                    mysql(
                        "-e",
                        f"DROP TABLE IF EXISTS {BASELINE}; CREATE TABLE {BASELINE} LIKE {TABLE}",
                    )
                )
                keep(
                    "c LOAD DATA csv",
                    timed(
                        mysql(
                            "-e",
                            (
                                f"LOAD DATA LOCAL INFILE '{csv}' INTO TABLE {BASELINE} "
                                "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' "
                                "LINES TERMINATED BY '\\n'"
                            ),
                        )
                    ),
                )
                # (d) MariaDB -> parquet, from the table LOAD DATA just filled
                keep("d hygge", timed(hygge(flows, "maria_out")))
                with open(os.devnull, "wb") as null:
                    keep(
                        "d mariadb --quick",
                        timed(
                            mysql("--quick", "-N", "-e", f"SELECT * FROM {BASELINE}"), null.fileno()
                        ),
                    )
                sql(
                    mysql(
                        "-e",
                        f"DROP TABLE IF EXISTS {FIRST_1M}; CREATE TABLE {FIRST_1M} AS "
                        f"SELECT * FROM {BASELINE} LIMIT 1000000",
                    )
                )
                keep("d hygge 1M rows", timed(hygge(flows, "maria_out_1m")))
            check_content(rows, parquet, work)
        finally:
            sql(
                psql(
                    "-c", f"DROP TABLE IF EXISTS {TABLE}", "-c", f"DROP TABLE IF EXISTS {BASELINE}"
                )
            )
            sql(
                mysql(
                    "-e",
                    f"DROP TABLE IF EXISTS {TABLE}; DROP TABLE IF EXISTS {BASELINE}; "
                    f"DROP TABLE IF EXISTS {FIRST_1M}",
                )
            )

    cases = [
        ("(a) PostgreSQL -> parquet", "a hygge", "a COPY TO binary", 0.85),
        ("(b) parquet -> PostgreSQL", "b hygge", "b COPY FROM csv", 1.3),
        ("(c) parquet -> MariaDB", "c hygge", "c LOAD DATA csv", 1.0),
        ("(d) MariaDB -> parquet", "d hygge", "d mariadb --quick", 0.85),
    ]
    header = (
        "case",
        "hygge s",
        "hygge rows/s",
        "baseline s",
        "baseline rows/s",
        "ratio",
        "target",
        "hygge tree peak RSS",
        "hygge CPU s",
        "ratio per run",
    )
    table = []
    best = {label: median(got) for label, got in runs.items()}
    for name, ours, theirs, target in cases:
        h, b = best[ours], best[theirs]
        ratio = statistics.median(
            b_.seconds / h_.seconds for h_, b_ in zip(runs[ours], runs[theirs], strict=True)
        )
        table.append(
            (
                name,
                f"{h.seconds:.2f}",
                f"{rows / h.seconds:,.0f}",
                f"{b.seconds:.2f}",
                f"{rows / b.seconds:,.0f}",
                f"{ratio:.2f}x",
                f">= {target}x {'met' if ratio >= target else 'MISSED'}",
                f"{h.peak_rss_mb:.0f} MB",
                f"{h.cpu_seconds:.1f}",
                " ".join(
                    f"{b_.seconds / h_.seconds:.2f}x"
                    for h_, b_ in zip(runs[ours], runs[theirs], strict=True)
                ),
            )
        )
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    print(
        f"\nSQL benchmark, TPC-H lineitem SF{args.scale} ({rows:,} rows), "
        f"batch {BATCH:,}, content checked; median of {args.repeat} interleaved run(s), "
        f"{os.cpu_count()} cores, load average now {os.getloadavg()[0]:.1f}"
    )
    for r in [header, *table]:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    a_rss = best["a hygge"].peak_rss_mb
    print(f"(a) peak RSS: {a_rss:.0f} MB (target < 400 MB: {'met' if a_rss < 400 else 'MISSED'})")
    full, first = best["d hygge"].peak_rss_mb, best["d hygge 1M rows"].peak_rss_mb
    print(
        f"(d) peak RSS: {full:.0f} MB for {rows:,} rows vs {first:.0f} MB for 1,000,000 rows "
        f"({full / first:.2f}x; target <= 1.3x and < 400 MB: "
        f"{'met' if full / first <= 1.3 and full < 400 else 'MISSED'})"
    )


def median(got: list[Run]) -> Run:
    """Each figure's median over the runs (the ratio is the median of per-run ratios)."""
    return Run(
        statistics.median(r.seconds for r in got),
        statistics.median(r.peak_rss_mb for r in got),
        statistics.median(r.cpu_seconds for r in got),
    )


if __name__ == "__main__":
    main()
