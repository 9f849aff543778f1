"""hygge's original README (shared/seeds/001_*.txt) runs as written: its Python examples
(copied verbatim below, marked `# seed:`) and its flows.yml, against a real PostgreSQL whose
`users` table lives in a database of its own, with DATABASE_URL pointing at it. Outputs are
read back with DuckDB and compared by row count and checksum with what PostgreSQL holds."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import psycopg
import pytest

from hygge import (
    ConfigError,
    Coordinator,
    Flow,
    Home,
    ParquetHome,
    ParquetStore,
    SQLHome,
    Store,
    registry,
)
from hygge.contract import default_path
from tests.checks import fingerprint
from tests.conftest import ROOT

ROWS = 25_000


@pytest.fixture
def database_url(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """DATABASE_URL of a fresh database holding `users` (the seed's table name, kept as is)."""
    name = f"seed_{uuid.uuid4().hex[:10]}"
    admin = postgres_url.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE users AS SELECT g AS id, 'user ' || g AS name,"
            " (g %% 7)::numeric(10, 2) AS score FROM generate_series(1, %s) g",
            (ROWS,),
        )
    monkeypatch.setenv("DATABASE_URL", url)
    try:
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


COLUMNS = "id::bigint AS id, name, score::double AS score"


def _postgres_fingerprint(url: str) -> tuple[int, int]:
    """(rows, checksum) of PostgreSQL's `users`, computed as tests.checks.fingerprint does."""
    import duckdb

    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT id, name, score::float8 FROM users").fetchall()
    frame = pl.DataFrame(rows, schema=["id", "name", "score"], orient="row")  # noqa: F841
    query = f"select count(*), coalesce(sum(hash(t)), 0) from (select {COLUMNS} from frame) t"
    count, checksum = duckdb.connect().sql(query).fetchall()[0]
    return int(count), int(checksum)


def _fingerprint(folder: Path) -> tuple[int, int]:
    return fingerprint(folder, COLUMNS)


def test_home_example(database_url: str) -> None:
    conn = database_url

    async def example() -> list[pl.DataFrame]:
        batches = []
        # seed:
        home = SQLHome("users", connection=conn, options={"batch_size": 10_000})

        async for batch in home.read_batches():
            # Data flows naturally
            batches.append(batch)
        return batches

    batches = asyncio.run(example())
    assert [b.height for b in batches] == [10_000, 10_000, 5_000]
    assert pl.concat(batches)["id"].sort().to_list() == list(range(1, ROWS + 1))


def test_store_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    df = pl.DataFrame({"id": [1, 2, 3], "name": ["a", "b", "c"]})

    async def example() -> None:
        # seed:
        store = ParquetStore("users", path="data/users", options={"compression": "snappy"})

        await store.write(df)  # Data finds its place

    asyncio.run(example())
    import pyarrow.parquet as pq

    files = sorted((tmp_path / "data" / "users").glob("*.parquet"))
    assert len(files) == 1
    assert pq.read_metadata(files[0]).row_group(0).column(0).compression == "SNAPPY"
    assert fingerprint(tmp_path / "data" / "users") == fingerprint_of(df, tmp_path)


def fingerprint_of(df: pl.DataFrame, tmp_path: Path) -> tuple[int, int]:
    expected = tmp_path / "expected.parquet"
    df.write_parquet(expected)
    return fingerprint(expected)


def test_flow_example_with_smart_defaults(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    async def example() -> None:
        # seed:
        flow = Flow(home=SQLHome("users"), store=ParquetStore("users"))

        await flow.start()  # Data moves comfortably

    asyncio.run(example())
    # ParquetStore("users") without a path writes data/users, below the current directory.
    assert default_path("users") == "data/users"
    assert _fingerprint(tmp_path / "data" / "users") == _postgres_fingerprint(database_url)
    # ... and ParquetHome("users") reads it back from there.
    back = Flow(ParquetHome("users"), ParquetStore("copy", path="out/users")).run()
    assert back.rows == ROWS
    assert _fingerprint(tmp_path / "out" / "users") == _postgres_fingerprint(database_url)


def test_coordinator_and_yaml_examples(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    pl.DataFrame({"id": range(100), "name": [f"n{i}" for i in range(100)]}).write_parquet(
        data / "users.parquet"
    )
    # seed: the README's minimal flows.yml, then the project guide's advanced one.
    (tmp_path / "flows.yml").write_text(
        """
flows:
  users_to_parquet:
    home: data/users.parquet
    store: data/lake/users
    # That's it! Everything else uses smart defaults
"""
    )
    (tmp_path / "advanced.yml").write_text(
        """
flows:
  users_to_parquet:
    home:
      type: sql
      table: users
      connection: ${DATABASE_URL}
      options:
        batch_size: 10000
    store:
      type: parquet
      path: data/lake/pg_users
      options:
        compression: snappy
"""
    )
    monkeypatch.chdir(tmp_path)

    async def example() -> None:
        # seed:
        coordinator = Coordinator("flows.yml")
        await coordinator.start()  # Everything works together

    asyncio.run(example())
    assert fingerprint(data / "lake" / "users") == fingerprint(data / "users.parquet")

    # seed: "Run: `python -m hygge.coordinator your_config.yaml`"
    result = subprocess.run(
        [sys.executable, "-m", "hygge.coordinator", "advanced.yml"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert _fingerprint(data / "lake" / "pg_users") == _postgres_fingerprint(database_url)


# seed: the extensibility example (used from Python here; unregistered again at once, so the
# type names "my" stay free for other tests).
with registry.registered("home", "my"), registry.registered("store", "my"):

    class MyHome(Home):
        """A cozy new home for data."""

        async def read_batches(self):
            # Implement your reading logic
            for start in range(0, 30, self.batch_size):
                yield pl.DataFrame({"n": range(start, min(30, start + self.batch_size))})

    class MyStore(Store):
        """A cozy new store for data."""

        async def write(self, df):
            # Implement your writing logic
            self.seen = [*getattr(self, "seen", []), df.height]


def test_extensibility_example() -> None:
    store = MyStore("numbers")
    result = Flow(MyHome("numbers", options={"batch_size": 8}), store).run()
    assert result.rows == 30 and store.seen == [8, 8, 8, 6]


def test_options_given_twice_differently_is_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        ParquetStore("users", compression="zstd", options={"compression": "snappy"})
    assert "store 'users' -> options.compression" in str(caught.value)
    # The same value in both places is fine, as in YAML.
    store = ParquetStore("users", compression="snappy", options={"compression": "snappy"})
    assert store.settings.compression == "snappy"
