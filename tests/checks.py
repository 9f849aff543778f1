"""Independent read-back of outputs (DuckDB), for row counts and content checksums."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb


def scan(source: str | Path) -> str:
    """A DuckDB table expression for a file, folder (globbed as readers do) or glob."""
    text = str(source)
    p = Path(text)
    if p.is_dir():
        suffixes = {f.suffix for f in p.rglob("*") if f.is_file()}
        suffix = next((s for s in (".parquet", ".csv", ".ndjson") if s in suffixes), ".parquet")
        text = f"{text}/**/*{suffix}"
    if text.endswith((".csv", "*.csv")):
        return f"read_csv('{text}', header=true)"
    if text.endswith((".ndjson", "*.ndjson", ".jsonl")):
        return f"read_json('{text}', format='newline_delimited')"
    return f"read_parquet('{text}')"


def fingerprint(source: str | Path, columns: str = "*") -> tuple[int, int]:
    """(row count, order-independent checksum of every row's content)."""
    con = duckdb.connect()
    query = (
        f"select count(*), coalesce(sum(hash(t)), 0) from (select {columns} from {scan(source)}) t"
    )
    rows, checksum = con.sql(query).fetchall()[0]
    return int(rows), int(checksum)


def tree_digest(folder: Path) -> str:
    """A digest of every file's path and bytes below `folder` (to prove it is untouched)."""
    digest = hashlib.sha256()
    if folder.exists():
        for f in sorted(folder.rglob("*")):
            digest.update(str(f.relative_to(folder)).encode())
            if f.is_file():
                digest.update(f.read_bytes())
    return digest.hexdigest()


def count_and_sum(dataset: str | Path) -> tuple[int, int, int]:
    """(rows, distinct ids, sum of ids) of a dataset with an `id` column: a row lost or
    written twice changes one of them."""
    with duckdb.connect() as con:
        found = con.sql(f"select count(*), count(distinct id), sum(id) from {scan(dataset)}")
        rows, distinct, total = found.fetchall()[0]
    return int(rows), int(distinct), int(total or 0)
