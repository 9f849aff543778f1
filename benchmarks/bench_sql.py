"""SQL homes and stores vs the databases' own bulk tools, on TPC-H lineitem, in one run.

    python -m benchmarks.bench_sql               # scale factor 1 (about 6 M rows)
    python -m benchmarks.bench_sql --repeat 3    # medians of three, interleaved with the baselines
    python -m benchmarks.bench_sql --scale 3     # SF3: (d)'s memory must stay flat
    python -m benchmarks.bench_sql --cases a,d   # only those cases (their tables loaded first)
    python -m benchmarks.bench_sql --cases d --keep --suffix _me   # reuse tables across runs
    python -m benchmarks.bench_sql --cases a --compare /tmp/old    # also hygge from another
        checkout (e.g. `git archive HEAD | tar -x -C /tmp/old`), interleaved: before/after

Measured (issues 3, 23), each hygge run as its own process (`hygge run`); every figure is the
median of --repeat runs (default 2) interleaved with the baselines, the ratio the median of
the per-run ratios; peak RSS is of the whole process tree (its processes' own peaks,
VmHWM), CPU seconds from wait4:
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
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.parquet as pq

from benchmarks.common import ROOT, run_sampled, tpch_lineitem
from hygge.homes.sql import SQL_BATCH_SIZE
from tests.helpers import write_flows

PG_URL = os.environ.get("HYGGE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MY_URL = os.environ.get("HYGGE_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
BATCH = 100_000  # the parquet homes'; the SQL homes read at their default (SQL_BATCH_SIZE)


@dataclass(frozen=True)
class Tables:
    """The benchmark's table names (`--suffix` keeps two people's runs apart)."""

    table: str = "bench_sql_lineitem"  # (b)/(c) load it, (a) reads it
    baseline: str = "bench_sql_copy"  # the baselines' loads; (d) reads MariaDB's
    first_1m: str = "bench_sql_1m"  # (d)'s 1 M-row memory reference

    @classmethod
    def suffixed(cls, suffix: str) -> Tables:
        t = cls()
        return cls(t.table + suffix, t.baseline + suffix, t.first_1m + suffix)


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_mb: float
    cpu_seconds: float  # user + system time of the process itself


def timed(command: list[str], stdout: int | None = None, root: Path = ROOT) -> Run:
    """Wall time, the peak RSS of the command's whole process tree (its processes' own peaks,
    read every 0.1 s), and its CPU seconds (wait4), failing loudly."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    code, seconds, peak, cpu = run_sampled(command, env, root, stdout)
    if code != 0:
        raise SystemExit(f"failed: {' '.join(command)}")
    return Run(seconds, peak / 1024, cpu)


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


def sql_flows(work: Path, parquet: Path, t: Tables) -> Path:
    return write_flows(
        work,
        f"""
flows:
  pg_in:
    home: {{type: parquet, path: "{parquet}", batch_size: {BATCH}}}
    store: {{type: sql, connection: "{PG_URL}", table: {t.table}, mode: replace}}
  pg_out:
    home: {{type: sql, connection: "{PG_URL}", table: {t.table}}}
    store: {{type: parquet, path: "{work}/lake"}}
  maria_in:
    home: {{type: parquet, path: "{parquet}", batch_size: {BATCH}}}
    store: {{type: sql, connection: "{MY_URL}", table: {t.table}, mode: replace}}
  maria_out:
    home: {{type: sql, connection: "{MY_URL}", table: {t.baseline}}}
    store: {{type: parquet, path: "{work}/lake_maria"}}
  maria_out_1m:
    home: {{type: sql, connection: "{MY_URL}", table: {t.first_1m}}}
    store: {{type: parquet, path: "{work}/lake_maria_1m"}}
""",
    )


SUMS = "count(*), sum(l_orderkey), sum(l_extendedprice), sum({length}(l_comment))"


def check_content(parquet: Path, work: Path, t: Tables, cases: str) -> None:
    """What landed equals the source: row count and exact sums, read by the databases."""
    import duckdb

    expected = duckdb.execute(f"SELECT {SUMS.format(length='length')} FROM '{parquet}'").fetchone()
    query = f"SELECT {SUMS.format(length='char_length')} FROM "
    checks = []
    if "b" in cases:
        checks.append(("PostgreSQL", sql(psql("-At", "-F", ",", "-c", query + t.table))))
    if "c" in cases:
        checks.append(("MariaDB", sql(mysql("-N", "-B", "-e", query + t.table)).replace("\t", ",")))
    for name, out in checks:
        got = [v.strip() for v in out.split(",")]
        want = [str(v) for v in expected or ()]
        if got != want:
            raise SystemExit(f"{name} content differs from the parquet: {got} != {want}")
    for case, name, lake_dir in (("a", "PostgreSQL", "lake"), ("d", "MariaDB", "lake_maria")):
        if case not in cases:
            continue
        lake = duckdb.execute(
            f"SELECT {SUMS.format(length='length')} FROM '{work}/{lake_dir}/*.parquet'"
        ).fetchone()
        if lake != expected:
            raise SystemExit(f"the parquet written from {name} differs: {lake} != {expected}")


def pg_rows(table: str) -> int | None:
    out = subprocess.run(
        psql("-At", "-c", f"SELECT count(*) FROM {table}"), capture_output=True, text=True
    )
    return int(out.stdout) if out.returncode == 0 else None


def maria_rows(table: str) -> int | None:
    out = subprocess.run(
        mysql("-N", "-B", "-e", f"SELECT count(*) FROM {table}"), capture_output=True, text=True
    )
    return int(out.stdout) if out.returncode == 0 else None


def maria_load_data(csv: Path, t: Tables) -> list[str]:
    """LOAD DATA of the CSV into a fresh copy of (c)'s table: (c)'s baseline, (d)'s source."""
    sql(mysql("-e", f"DROP TABLE IF EXISTS {t.baseline}; CREATE TABLE {t.baseline} LIKE {t.table}"))
    return mysql(
        "-e",
        f"LOAD DATA LOCAL INFILE '{csv}' INTO TABLE {t.baseline} "
        "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' LINES TERMINATED BY '\\n'",
    )


def prepare(cases: str, flows: Path, csv: Path, rows: int, t: Tables) -> None:
    """The tables a case reads when the case that loads them is not run (untimed)."""
    if "a" in cases and "b" not in cases and pg_rows(t.table) != rows:
        print(f"loading {t.table} into PostgreSQL for (a) ...", flush=True)
        timed(hygge(flows, "pg_in"), subprocess.DEVNULL)
    if "d" in cases and "c" not in cases and maria_rows(t.baseline) != rows:
        print(f"loading {t.baseline} into MariaDB for (d) ...", flush=True)
        if maria_rows(t.table) is None:
            timed(hygge(flows, "maria_in"), subprocess.DEVNULL)
        timed(maria_load_data(csv, t))
    if "d" in cases and "c" not in cases and maria_rows(t.first_1m) != 1_000_000:
        sql(mysql("-e", first_1m_sql(t)))


def first_1m_sql(t: Tables) -> str:
    return (
        f"DROP TABLE IF EXISTS {t.first_1m}; CREATE TABLE {t.first_1m} AS "
        f"SELECT * FROM {t.baseline} LIMIT 1000000"
    )


def run_once(
    cases: str,
    flows: Path,
    csv: Path,
    t: Tables,
    keep: Callable[[str, Run], None],
    compare: Path | None = None,
) -> None:
    """One run of each chosen case and its baseline, interleaved (and hygge from the
    `compare` checkout right after hygge from this one)."""

    def ours(label: str, flow: str) -> None:
        keep(label, timed(hygge(flows, flow), subprocess.DEVNULL))
        if compare is not None:
            keep(f"{label} @compare", timed(hygge(flows, flow), subprocess.DEVNULL, compare))

    if "b" in cases:  # parquet -> PostgreSQL
        ours("b hygge", "pg_in")
        sql(
            psql(
                "-c",
                f"DROP TABLE IF EXISTS {t.baseline}",
                "-c",
                f"CREATE TABLE {t.baseline} (LIKE {t.table})",
            )
        )
        keep("b COPY FROM csv", timed(psql("-c", f"\\copy {t.baseline} FROM '{csv}' (FORMAT csv)")))
    if "a" in cases:  # PostgreSQL -> parquet
        ours("a hygge", "pg_out")
        copy = f"COPY (SELECT * FROM {t.table}) TO STDOUT (FORMAT binary)"
        with open(os.devnull, "wb") as null:
            keep("a COPY TO binary", timed(psql("-c", copy), stdout=null.fileno()))
    if "c" in cases:  # parquet -> MariaDB
        ours("c hygge", "maria_in")
        keep("c LOAD DATA csv", timed(maria_load_data(csv, t)))
    if "d" in cases:  # MariaDB -> parquet, from the table LOAD DATA filled
        ours("d hygge", "maria_out")
        dump = mysql("--quick", "-N", "-e", f"SELECT * FROM {t.baseline}")
        with open(os.devnull, "wb") as null:
            keep("d mariadb --quick", timed(dump, null.fileno()))
        if "c" in cases:
            sql(mysql("-e", first_1m_sql(t)))
        ours("d hygge 1M rows", "maria_out_1m")


def drop_tables(t: Tables) -> None:
    sql(psql("-c", f"DROP TABLE IF EXISTS {t.table}", "-c", f"DROP TABLE IF EXISTS {t.baseline}"))
    sql(
        mysql(
            "-e",
            f"DROP TABLE IF EXISTS {t.table}; DROP TABLE IF EXISTS {t.baseline}; "
            f"DROP TABLE IF EXISTS {t.first_1m}",
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs of each case, interleaved; medians kept"
    )
    parser.add_argument("--cases", default="a,b,c,d", help="which cases to run, e.g. a,d")
    parser.add_argument(
        "--keep", action="store_true", help="leave the tables (a later run reuses them)"
    )
    parser.add_argument("--suffix", default="", help="appended to the benchmark's table names")
    parser.add_argument(
        "--compare", type=Path, help="also run hygge from this checkout (before vs after)"
    )
    args = parser.parse_args()
    if not re.fullmatch(r"[a-z0-9_]*", args.suffix):
        # hygge quotes its table names (case kept); psql and mariadb fold an unquoted one
        parser.error("--suffix: lowercase letters, digits and '_' only (e.g. _me)")
    cases = "".join(c for c in "abcd" if c in args.cases)
    t = Tables.suffixed(args.suffix)
    parquet, csv, rows = lineitem(args.scale)
    runs: dict[str, list[Run]] = {}

    def keep(label: str, run: Run) -> None:
        runs.setdefault(label, []).append(run)
        print(
            f"  {label}: {run.seconds:.2f} s, CPU {run.cpu_seconds:.1f} s, "
            f"peak RSS {run.peak_rss_mb:.0f} MB, load {os.getloadavg()[0]:.1f}",
            flush=True,
        )

    with tempfile.TemporaryDirectory(prefix="hygge-bench-sql-") as tmp:
        work = Path(tmp)
        flows = sql_flows(work, parquet, t)
        try:
            prepare(cases, flows, csv, rows, t)
            for attempt in range(args.repeat):
                print(f"run {attempt + 1}/{args.repeat} ({rows:,} rows)", flush=True)
                run_once(cases, flows, csv, t, keep, args.compare)
            check_content(parquet, work, t, cases)
        finally:
            if not args.keep:
                drop_tables(t)
    report(runs, cases, rows, args)


def report(runs: dict[str, list[Run]], cases: str, rows: int, args: argparse.Namespace) -> None:
    all_cases = [
        ("(a) PostgreSQL -> parquet", "a hygge", "a COPY TO binary", 0.85),
        ("(b) parquet -> PostgreSQL", "b hygge", "b COPY FROM csv", 1.3),
        ("(c) parquet -> MariaDB", "c hygge", "c LOAD DATA csv", 1.0),
        ("(d) MariaDB -> parquet", "d hygge", "d mariadb --quick", 0.85),
    ]
    chosen = [c for c in all_cases if c[0][1] in cases]
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
        "baseline CPU s",
        "ratio per run",
    )
    table = []
    best = {label: median(got) for label, got in runs.items()}
    for name, ours, theirs, target in chosen:
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
                f"{b.cpu_seconds:.1f}",
                " ".join(
                    f"{b_.seconds / h_.seconds:.2f}x"
                    for h_, b_ in zip(runs[ours], runs[theirs], strict=True)
                ),
            )
        )
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    print(
        f"\nSQL benchmark, TPC-H lineitem SF{args.scale} ({rows:,} rows), "
        f"batch {BATCH:,} (SQL homes {SQL_BATCH_SIZE:,}), content checked; "
        f"median of {args.repeat} interleaved run(s), "
        f"{os.cpu_count()} cores, load average now {os.getloadavg()[0]:.1f}"
    )
    for r in [header, *table]:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    if args.compare is not None:
        print(f"\nthis checkout vs {args.compare} (median of per-run ratios, interleaved):")
        for name, label, _, _ in chosen:
            now, then = runs[label], runs[f"{label} @compare"]
            speed = statistics.median(b.seconds / a.seconds for a, b in zip(now, then, strict=True))
            cpu = statistics.median(
                a.cpu_seconds / b.cpu_seconds for a, b in zip(now, then, strict=True)
            )
            print(
                f"  {name}: {speed:.2f}x as fast, CPU {cpu:.2f}x "
                f"({median(now).cpu_seconds:.1f} vs {median(then).cpu_seconds:.1f} s), "
                f"peak RSS {median(now).peak_rss_mb:.0f} vs {median(then).peak_rss_mb:.0f} MB"
            )
    if "a" in cases:
        a_rss = best["a hygge"].peak_rss_mb
        met = "met" if a_rss < 400 else "MISSED"
        print(f"(a) peak RSS: {a_rss:.0f} MB (target < 400 MB: {met})")
    if "d" in cases:
        full, first = best["d hygge"].peak_rss_mb, best["d hygge 1M rows"].peak_rss_mb
        print(
            f"(d) peak RSS: {full:.0f} MB for {rows:,} rows vs {first:.0f} MB for 1,000,000 "
            f"rows ({full / first:.2f}x; target <= 1.3x and < 400 MB: "
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
