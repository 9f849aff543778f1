"""An independent replayer of an Open Mirroring landing zone table folder, as Fabric's
replicator applies it (Microsoft's "open mirroring landing zone format"): data files in
sequence order, rows in file order, `__rowMarker__` 0 insert, 1 update, 2 delete, 4 upsert,
a file without the column read as inserts. No hygge code: DuckDB reads the files.

It also checks the format on the way: `_metadata.json` with `keyColumns`, 20-digit names in
a continuous sequence from 1, the marker as the last column with documented values only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import duckdb

MARKER = "__rowMarker__"
NAME = re.compile(r"^\d{20}\.parquet$")


def check_names(names: list[str]) -> list[str]:
    """The data file names, checked: 20 digits, continuous from 1; sorted by number."""
    data = sorted(n for n in names if n.endswith(".parquet") and not n.startswith(("_", ".")))
    for n in data:
        assert NAME.match(n), f"data file {n} is not named by a 20-digit number"
    numbers = [int(n[:20]) for n in data]
    assert numbers == list(range(1, len(numbers) + 1)), f"not a continuous sequence: {numbers}"
    return data


def replay_files(
    files: list[Path], key: list[str], columns: list[str]
) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Apply data files in order; the table as {key: row of `columns`}."""
    table: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    con = duckdb.connect()
    for f in files:
        rel = con.sql(f"select * from read_parquet('{f}')")
        names = rel.columns
        if MARKER in names:
            assert names[-1] == MARKER, f"{f.name}: {MARKER} is not the last column: {names}"
        for values in rel.fetchall():
            row = dict(zip(names, values, strict=True))
            marker = row.get(MARKER, 0)
            assert marker in (0, 1, 2, 4), f"{f.name}: marker {marker} is not documented"
            k = tuple(row[c] for c in key)
            if marker == 2:
                table.pop(k, None)
            else:  # insert, update, upsert: the row with this key is now this one
                table[k] = tuple(row.get(c) for c in columns)
    con.close()
    return table


def replay(table_dir: Path, columns: list[str]) -> tuple[list[str], set[tuple[Any, ...]]]:
    """(keyColumns, the table's rows of `columns`) of a local table folder."""
    metadata = json.loads((table_dir / "_metadata.json").read_text())
    key = metadata["keyColumns"]
    names = check_names([p.name for p in table_dir.iterdir() if p.is_file()])
    rows = replay_files([table_dir / n for n in names], key, columns)
    return key, set(rows.values())
