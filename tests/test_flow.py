"""Flow: batches move home -> store, verified and committed atomically, or not at all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from hygge import (
    CsvHome,
    CsvStore,
    Flow,
    FlowError,
    FlowReport,
    HomeError,
    NdjsonHome,
    ParquetHome,
    ParquetStore,
    Store,
    StoreError,
)
from hygge.contract import Home
from hygge.stores.parquet import DECIMALS_AS_INTEGERS
from tests.checks import fingerprint, tree_digest


def make_parquet(path: Path, rows: int, start: int = 0) -> Path:
    df = pl.DataFrame(
        {
            "id": range(start, start + rows),
            "name": [f"n{i}" for i in range(start, start + rows)],
            "score": [i * 0.5 for i in range(start, start + rows)],
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    df.write_parquet(path, row_group_size=1000)
    return path


class FailingHome(Home):
    """Yields `good` batches, then fails: to prove a failed flow publishes nothing."""

    type_name = "test_failing"

    async def read_batches(self) -> AsyncIterator[pl.DataFrame]:
        for i in range(3):
            yield pl.DataFrame({"id": [i], "name": ["x"], "score": [1.0]})
        raise HomeError("the source went away")


def test_parquet_to_parquet_keeps_every_row(tmp_path: Path):
    src = make_parquet(tmp_path / "in.parquet", 25_000)
    events: list[FlowReport] = []
    flow = Flow(
        ParquetHome("in", path=str(src), batch_size=4_000),
        ParquetStore("out", path=str(tmp_path / "out")),
        on_progress=events.append,
    )
    result = flow.run()
    assert result.ok and result.rows == 25_000 and result.batches == 7
    assert fingerprint(src) == fingerprint(tmp_path / "out")
    assert [e.rows for e in events if e.state == "running"][-1] == 25_000
    assert events[-1].state == "success"


def test_folder_and_glob_homes_read_every_file(tmp_path: Path):
    for i in range(3):
        make_parquet(tmp_path / "in" / f"part{i}.parquet", 1_000, start=i * 1_000)
    make_parquet(tmp_path / "in" / "_hidden" / "skip.parquet", 10)
    for path in (tmp_path / "in", tmp_path / "in" / "part*.parquet"):
        out = tmp_path / f"out{len(str(path))}"
        result = Flow(ParquetHome("in", path=str(path)), ParquetStore("o", path=str(out))).run()
        assert result.rows == 3_000
        assert fingerprint(out) == fingerprint(tmp_path / "in" / "part*.parquet")


def test_column_projection(tmp_path: Path):
    src = make_parquet(tmp_path / "in.parquet", 100)
    Flow(
        ParquetHome("in", path=str(src), columns=["id"]),
        ParquetStore("o", path=str(tmp_path / "o")),
    ).run()
    files = list((tmp_path / "o").glob("*.parquet"))
    assert pq.read_schema(files[0]).names == ["id"]


def test_csv_and_ndjson_homes(tmp_path: Path):
    df = pl.DataFrame({"id": range(5_000), "city": ["Århus", "Odense"] * 2_500})
    df.write_csv(tmp_path / "a.csv")
    df.write_ndjson(tmp_path / "a.ndjson")
    for home in (
        CsvHome("c", path=str(tmp_path / "a.csv"), batch_size=999),
        NdjsonHome("n", path=str(tmp_path / "a.ndjson"), batch_size=999),
    ):
        out = tmp_path / home.name
        result = Flow(home, ParquetStore("o", path=str(out))).run()
        assert result.rows == 5_000 and result.batches == 6
        assert fingerprint(out) == fingerprint(tmp_path / "a.csv")


def test_csv_store_round_trips(tmp_path: Path):
    src = make_parquet(tmp_path / "in.parquet", 3_000)
    Flow(ParquetHome("in", path=str(src)), CsvStore("o", path=str(tmp_path / "csv"))).run()
    assert fingerprint(tmp_path / "csv") == fingerprint(src)


def test_replace_swaps_the_whole_dataset(tmp_path: Path):
    out = tmp_path / "out"
    Flow(
        ParquetHome("a", path=str(make_parquet(tmp_path / "a.parquet", 500))),
        ParquetStore("o", path=str(out)),
    ).run()
    Flow(
        ParquetHome("b", path=str(make_parquet(tmp_path / "b.parquet", 70, start=9_000))),
        ParquetStore("o", path=str(out)),
    ).run()
    assert fingerprint(out) == fingerprint(tmp_path / "b.parquet")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_append_adds_and_rolls_files_by_rows(tmp_path: Path):
    out = tmp_path / "out"
    a = make_parquet(tmp_path / "a" / "a.parquet", 2_500)
    b = make_parquet(tmp_path / "a" / "b.parquet", 1_000, start=2_500)
    store_settings = {"path": str(out), "mode": "append", "max_rows_per_file": 1_000}
    Flow(ParquetHome("a", path=str(a)), ParquetStore("o", **store_settings)).run()
    Flow(ParquetHome("b", path=str(b)), ParquetStore("o", **store_settings)).run()
    assert fingerprint(out) == fingerprint(tmp_path / "a")
    files = sorted(out.glob("*.parquet"))
    assert len(files) == 4
    assert max(pq.read_metadata(f).num_rows for f in files) == 1_000
    # No journal left behind; only the markers of the two landed commits (one per run).
    assert not list((out / "_hygge").glob("journal/*"))
    assert len(list((out / "_hygge").glob("commits/*.json"))) == 2


@pytest.mark.parametrize("mode", ["replace", "append"])
def test_failed_flow_leaves_destination_untouched(tmp_path: Path, mode: str):
    out = tmp_path / "out"
    Flow(
        ParquetHome("a", path=str(make_parquet(tmp_path / "a.parquet", 100))),
        ParquetStore("o", path=str(out)),
    ).run()
    before = tree_digest(out)
    flow = Flow(FailingHome("bad"), ParquetStore("o", path=str(out), mode=mode))
    with pytest.raises(HomeError, match="went away"):
        flow.run()
    assert tree_digest(out) == before
    assert [p.name for p in tmp_path.iterdir() if "staging" in p.name] == []


class LyingStore(ParquetStore):
    """Counts one row fewer than it wrote: the flow must refuse to commit."""

    type_name = "test_lying"

    async def staged_rows(self) -> int | None:
        counted = await super().staged_rows()
        return None if counted is None else counted - 1


def test_row_count_mismatch_fails_and_commits_nothing(tmp_path: Path):
    src = make_parquet(tmp_path / "in.parquet", 1_000)
    with pytest.raises(FlowError, match="read 1,000 rows but the store holds 999"):
        Flow(ParquetHome("a", path=str(src)), LyingStore("o", path=str(tmp_path / "o"))).run()
    assert not (tmp_path / "o").exists()


class FlakyHome(Home):
    """Fails transiently `failures` times, then works."""

    type_name = "test_flaky"
    calls = 0

    async def read_batches(self) -> AsyncIterator[pl.DataFrame]:
        FlakyHome.calls += 1
        yield pl.DataFrame({"id": [1, 2]})
        if FlakyHome.calls <= 2:
            raise ConnectionResetError("connection reset by peer")
        yield pl.DataFrame({"id": [3]})


def test_transient_faults_are_retried_then_succeed(tmp_path: Path):
    FlakyHome.calls = 0
    states: list[str] = []
    flow = Flow(
        FlakyHome("f"),
        ParquetStore("o", path=str(tmp_path / "o")),
        retries=3,
        retry_delay=0.01,
        on_progress=lambda p: states.append(p.state),
    )
    result = flow.run()
    assert result.ok and result.rows == 3 and result.attempt == 3
    assert states.count("retrying") == 2
    assert fingerprint(tmp_path / "o") == (3, fingerprint(tmp_path / "o")[1])


def test_permanent_faults_are_not_retried(tmp_path: Path):
    calls = []

    class Broken(Home):
        type_name = "test_broken"

        async def read_batches(self) -> AsyncIterator[pl.DataFrame]:
            calls.append(1)
            raise HomeError("table users does not exist")
            yield

    with pytest.raises(HomeError):
        Flow(Broken("b"), ParquetStore("o", path=str(tmp_path / "o")), retries=5).run()
    assert len(calls) == 1


def test_minimal_custom_store_only_implements_write(tmp_path: Path):
    seen: list[int] = []

    class ListStore(Store):
        type_name = "test_list"

        async def write(self, df: pl.DataFrame) -> None:
            seen.append(df.height)

    src = make_parquet(tmp_path / "in.parquet", 2_500)
    result = Flow(ParquetHome("a", path=str(src), batch_size=1_000), ListStore("l")).run()
    assert seen == [1_000, 1_000, 500] and result.rows == 2_500


@pytest.mark.parametrize("ahead", [0, 1, 5])
def test_reading_and_writing_overlap_with_bounded_queue(tmp_path: Path, ahead: int):
    """The home runs ahead of a slow store by at most queue_size batches (backpressure),
    less what it reads ahead on its own (`Home.reads_ahead`), but at least one."""
    produced: list[int] = []
    written: list[int] = []

    class Counting(Home):
        type_name = f"test_counting_{ahead}"

        @property
        def reads_ahead(self) -> int:
            return ahead

        async def read_batches(self) -> AsyncIterator[pl.DataFrame]:
            for i in range(20):
                produced.append(i)
                yield pl.DataFrame({"i": [i]})

    class Slow(Store):
        type_name = f"test_slow_{ahead}"
        lead: list[int] = []

        async def write(self, df: pl.DataFrame) -> None:
            Slow.lead.append(len(produced) - len(written))
            await asyncio.sleep(0.005)
            written.append(df.height)

    Flow(Counting("c"), Slow("s"), queue_size=3).run()
    assert len(written) == 20
    queue = max(1, 3 - ahead)
    # the queue plus one in the producer's hand and one being written
    assert max(Slow.lead) == queue + 2


def test_two_writers_interleave_batches_and_keep_every_row(tmp_path: Path):
    """Past the first file's worth of rows, batches go to two writers in turn (each encoding
    its own file on its own thread): every row lands once, no file exceeds its limit."""
    src = make_parquet(tmp_path / "in.parquet", 25_000)
    out = tmp_path / "out"
    flow = Flow(
        ParquetHome("in", path=str(src), batch_size=2_000),
        ParquetStore("out", path=str(out), max_rows_per_file=5_000),
    )
    assert flow.run().rows == 25_000
    assert fingerprint(src) == fingerprint(out)
    files = sorted(out.glob("*.parquet"))
    ids = [pq.read_table(f, columns=["id"]).column("id").to_pylist() for f in files]
    assert all(len(i) <= 5_000 for i in ids) and sum(map(len, ids)) == 25_000
    # The first file is the first rows, in order; later files hold every other batch.
    assert ids[0] == list(range(5_000))
    assert any(max(i) - min(i) + 1 > len(i) for i in ids[1:])


def test_one_writer_keeps_read_order_and_small_outputs_stay_one_file(tmp_path: Path):
    src = make_parquet(tmp_path / "in.parquet", 12_000)
    one = tmp_path / "one"
    Flow(
        ParquetHome("in", path=str(src), batch_size=1_000),
        ParquetStore("one", path=str(one), max_rows_per_file=5_000, writers=1),
    ).run()
    files = sorted(one.glob("*.parquet"))
    ids = [pq.read_table(f, columns=["id"]).column("id").to_pylist() for f in files]
    assert [i for f in ids for i in f] == list(range(12_000))
    small = tmp_path / "small"
    Flow(
        ParquetHome("in", path=str(src), batch_size=1_000), ParquetStore("s", path=str(small))
    ).run()
    assert len(list(small.glob("*.parquet"))) == 1 and fingerprint(small) == fingerprint(src)


class SwitchingHome(Home):
    """Ten batches of 500 rows; the eighth has another type: a writer must refuse it."""

    type_name = "test_switching"

    async def read_batches(self) -> AsyncIterator[pl.DataFrame]:
        for i in range(10):
            ids = range(i * 500, (i + 1) * 500)
            yield pl.DataFrame({"id": [str(x) for x in ids] if i == 7 else list(ids)})


@pytest.mark.parametrize("mode", ["replace", "append"])
def test_a_writer_failing_while_the_other_writes_publishes_nothing(tmp_path: Path, mode: str):
    out = tmp_path / "out"
    Flow(
        ParquetHome("a", path=str(make_parquet(tmp_path / "a.parquet", 100))),
        ParquetStore("o", path=str(out)),
    ).run()
    before = tree_digest(out)
    store = ParquetStore("o", path=str(out), mode=mode, max_rows_per_file=1_000)
    with pytest.raises(StoreError, match="cannot write a batch"):
        Flow(SwitchingHome("switching"), store).run()
    assert tree_digest(out) == before
    assert [p.name for p in tmp_path.iterdir() if "staging" in p.name] == []


def test_parquet_store_uses_a_dictionary_only_for_repeating_columns(tmp_path: Path):
    """Mostly distinct values are written plain (a dictionary costs there, saves nothing);
    repeating ones with a dictionary. What a reader gets is the same either way."""
    rows = 20_000
    src = tmp_path / "in.parquet"
    pl.DataFrame(
        {
            "id": range(rows),
            "comment": [f"comment number {i}" for i in range(rows)],
            "flag": [("A", "B", "C")[i % 3] for i in range(rows)],
        }
    ).write_parquet(src)
    out = tmp_path / "out"
    Flow(ParquetHome("in", path=str(src)), ParquetStore("out", path=str(out))).run()
    assert fingerprint(src) == fingerprint(out)
    (written,) = out.glob("*.parquet")
    group = pq.read_metadata(written).row_group(0)
    encodings = {group.column(i).path_in_schema: group.column(i).encodings for i in range(3)}
    assert "RLE_DICTIONARY" in encodings["flag"]
    assert "RLE_DICTIONARY" not in encodings["id"]
    assert "RLE_DICTIONARY" not in encodings["comment"]


def test_parquet_store_writes_the_bytes_pyarrow_writes_for_the_large_types(tmp_path: Path):
    """The store hands polars' string/binary views to the writer without copying them into
    large_string/large_binary, yet the file (its declared Arrow schema included) is the one
    pyarrow writes from the large types: readers get exactly what they got before."""
    import datetime
    import decimal
    import filecmp

    rows = 30
    df = pl.DataFrame(
        {
            "s": ["a", "bb", None] * 10,
            "b": [b"x", None, b"yz"] * 10,
            "cat": pl.Series(["u", "v", "u"] * 10, dtype=pl.Categorical),
            "enum": pl.Series(["p", "q", "p"] * 10, dtype=pl.Enum(["p", "q"])),
            "ls": [["a", "b"], [], None] * 10,
            "st": [{"x": "k", "y": 1}, {"x": None, "y": 2}, None] * 10,
            "arr": pl.Series([[1, 2], [3, 4], [5, 6]] * 10, dtype=pl.Array(pl.Int64, 2)),
            "dt": [datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)] * rows,
            "dec": pl.Series([decimal.Decimal("1.23")] * rows, dtype=pl.Decimal(10, 2)),
            "n": [None] * rows,
            "d": [datetime.date(2024, 1, 1)] * rows,
        }
    )
    expected = tmp_path / "pyarrow.parquet"
    table = df.to_arrow(compat_level=pl.CompatLevel.oldest())
    # with the store's own choice of decimal encoding (parquet's INT64 for p <= 18)
    pq.write_table(table, expected, compression="zstd", **DECIMALS_AS_INTEGERS)
    asyncio.run(ParquetStore("o", path=str(tmp_path / "o"), dictionary="all").write(df))
    (written,) = (tmp_path / "o").glob("*.parquet")
    assert filecmp.cmp(expected, written, shallow=False)
    assert pq.read_schema(written).field("s").type == "large_string"
