"""The pure parts of `shape:` and `checks:`: naming, the Shaper's plan and errors, each check
passing and failing, the accumulator's merge and its JSON form, the key set's spill."""

from __future__ import annotations

import json
import struct
from datetime import UTC, date, datetime, timedelta

import polars as pl
import polars_hash as plh
import pytest

from hygge.check_spec import CheckSpecError, parse_age, parse_checks
from hygge.gate import ChecksFailed, Quality
from hygge.keyset import KeySet
from hygge.logs import JsonFormatter
from hygge.quality import CheckAccumulator
from hygge.rowhash import HashTypeError, hash_expr, row_hash
from hygge.shape import AuditValues, ShapeError, Shaper, ShapeSpec, normalise

AUDIT = AuditValues("run42", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))


@pytest.mark.parametrize(
    ("name", "snake", "camel", "pascal"),
    [
        ("Customer Name", "customer_name", "customerName", "CustomerName"),
        ("CustNo", "cust_no", "custNo", "CustNo"),
        ("HTTPCode2", "http_code2", "httpCode2", "HttpCode2"),
        ("order-id", "order_id", "orderId", "OrderId"),
        ("l_orderkey", "l_orderkey", "lOrderkey", "LOrderkey"),
        ("  weird__name ", "weird_name", "weirdName", "WeirdName"),
    ],
)
def test_naming(name: str, snake: str, camel: str, pascal: str) -> None:
    assert normalise(name, "snake_case") == snake
    assert normalise(name, "camel") == camel
    assert normalise(name, "pascal") == pascal
    assert normalise(name, "keep") == name


def shaper(**spec: object) -> Shaper:
    return Shaper(ShapeSpec.model_validate(spec), "customers", AUDIT)


def test_shape_applies_in_order_and_keeps_hash_and_audit_columns() -> None:
    df = pl.DataFrame({"CustNo": ["1", "2"], "Customer Name": ["a", None], "Secret": ["x", "y"]})
    s = shaper(
        naming="snake_case",
        rename={"cust_no": "customer_id"},
        cast={"customer_id": "int64"},
        select=["customer_id", "customer_name"],
        add={"loaded_at": "now", "run_id": "run"},
        hash_key={"name": "row_hash", "columns": ["customer_id", "secret"]},
    )
    out = s.apply(df)
    assert out.columns == ["customer_id", "customer_name", "row_hash", "loaded_at", "run_id"]
    assert out.schema["customer_id"] == pl.Int64
    assert out.schema["row_hash"] == pl.Int64
    assert out["run_id"].to_list() == ["run42", "run42"]
    assert out["loaded_at"].to_list() == [AUDIT.started] * 2
    # the hash is of the cast value and the (not selected) secret column, stable and distinct
    again = s.apply(df)
    assert out["row_hash"].to_list() == again["row_hash"].to_list()
    assert len(set(out["row_hash"].to_list())) == 2


def _xxh64(data: bytes) -> int:
    """XXH64 (seed 0) by polars-hash's own code path for bytes: a reference for rowhash's."""
    frame = pl.DataFrame({"b": pl.Series([data], dtype=pl.Binary)})
    return int(frame.select(plh.col("b").nchash.xxhash64()).item())


def test_hash_is_xxh64_of_the_documented_bytes() -> None:
    """The hash key's definition (hygge/rowhash.py, docs/shape.md): XXH64 of one 8-byte
    little-endian lane per column, then the null flags. A change here changes every
    published hash key: it must be deliberate (and said in docs/shape.md)."""
    df = pl.DataFrame(
        {"a": [1, None, -5], "b": pl.Series([2, 3, None], dtype=pl.Int32), "s": ["x", "y", None]}
    )
    text = {v: _xxh64(v.encode()) for v in ("x", "y")}
    expected = [
        _xxh64(struct.pack("<qqQQ", 1, 2, text["x"], 0)),
        _xxh64(struct.pack("<qqQQ", 0, 3, text["y"], 0b001)),
        _xxh64(struct.pack("<qqQQ", -5, 0, 0, 0b110)),
    ]
    assert row_hash(df).to_list() == expected
    assert df.select(hash_expr(["a", "b", "s"])).to_series().to_list() == expected
    # golden values: the same on every machine, process and release
    assert _xxh64(b"") == 0xEF46DB3751D8E999  # XXH64's published test vector
    assert text["x"] == 0x5C80C09683041123
    assert row_hash(pl.DataFrame({"k": [1]})).item() == 0x6C1CFF0459C8BB10
    assert row_hash(pl.DataFrame({"a": [1], "b": [2]})).item() == 0x404598B5DA910070
    # 4 lanes and more: the 32-byte stripe path of XXH64
    wide = pl.DataFrame({f"c{i}": [i * 7 + 1] for i in range(5)})
    lanes = struct.pack("<6q", *[i * 7 + 1 for i in range(5)], 0)
    assert row_hash(wide).item() == _xxh64(lanes)
    exact = pl.DataFrame({f"c{i}": [i] for i in range(3)})
    assert row_hash(exact).item() == _xxh64(struct.pack("<4q", 0, 1, 2, 0))


def test_hash_takes_values_not_their_formatting() -> None:
    """Int32 7 and Int64 7 agree; -0.0 is 0.0; dates are days; decimals are their text."""
    ints = pl.DataFrame({"a": pl.Series([7], dtype=pl.Int32)})
    assert row_hash(ints).item() == row_hash(ints.cast(pl.Int64)).item()
    floats = pl.DataFrame({"f": [0.0, -0.0, 1.5, None]})
    got = row_hash(floats).to_list()
    assert got[0] == got[1] != got[3]  # a null is not a 0.0: its flag differs
    assert got[2] == _xxh64(struct.pack("<dQ", 1.5, 0))
    day = pl.DataFrame({"d": [date(1970, 1, 3)], "t": [True]})
    assert row_hash(day).item() == _xxh64(struct.pack("<qqQ", 2, 1, 0))
    money = pl.DataFrame({"m": pl.Series(["12.50"]).cast(pl.Decimal(10, 2))})
    assert row_hash(money).item() == _xxh64(struct.pack("<QQ", _xxh64(b"12.50"), 0))
    with pytest.raises(HashTypeError, match="cannot hash column 'l'"):
        row_hash(pl.DataFrame({"l": [[1, 2]]}))


def test_hash_keeps_nulls_and_boundaries_apart() -> None:
    df = pl.DataFrame({"a": ["ab", "a", None, ""], "b": ["c", "bc", "x", "x"]})
    hashes = df.select(hash_expr(["a", "b"])).to_series().to_list()
    assert len(set(hashes)) == 4  # "ab|c" != "a|bc", null != ""


def test_collision_after_naming_names_both_columns() -> None:
    df = pl.DataFrame({"Customer Name": [1], "customer_name": [2]})
    with pytest.raises(ShapeError, match="'Customer Name' and 'customer_name' both become"):
        shaper(naming="snake_case").apply(df)


@pytest.mark.parametrize(
    ("spec", "where"),
    [
        ({"rename": {"nope": "x"}}, "rename"),
        ({"select": ["id", "nope"]}, "select"),
        ({"cast": {"nope": "int64"}}, "cast"),
        ({"drop": ["nope"]}, "drop"),
        ({"hash_key": {"name": "h", "columns": ["nope"]}}, "hash_key"),
    ],
)
def test_missing_column_lists_the_available(spec: dict[str, object], where: str) -> None:
    df = pl.DataFrame({"id": [1], "name": ["a"]})
    wanted = rf"shape.{where} names column 'nope'.*available: id, name"
    with pytest.raises(ShapeError, match=wanted):
        shaper(**spec).apply(df)


def test_added_column_may_not_shadow_data() -> None:
    with pytest.raises(ShapeError, match="adds column 'id'"):
        shaper(add={"id": "now"}).apply(pl.DataFrame({"id": [1]}))


def test_file_audit_column_needs_a_file_home() -> None:
    with pytest.raises(ShapeError, match="needs a file home"):
        shaper(add={"src": "file"}).apply(pl.DataFrame({"id": [1]}))
    s = shaper(add={"src": "file"})
    assert s.file_column is not None
    out = s.apply(pl.DataFrame({"id": [1], s.file_column: ["/data/a.parquet"]}))
    assert out.to_dicts() == [{"id": 1, "src": "/data/a.parquet"}]


def test_spec_refuses_unknown_types_and_select_with_drop() -> None:
    with pytest.raises(ValueError, match="unknown type 'integer'"):
        ShapeSpec.model_validate({"cast": {"a": "integer"}})
    with pytest.raises(ValueError, match="not both"):
        ShapeSpec.model_validate({"select": ["a"], "drop": ["b"]})
    assert ShapeSpec.model_validate({"cast": {"a": "decimal(10, 2)"}})


def test_parse_checks_errors_name_the_entry() -> None:
    with pytest.raises(CheckSpecError, match=r"checks\[1\]: unknown check 'not_nul'"):
        parse_checks([{"unique": ["id"]}, {"not_nul": ["id"]}])
    with pytest.raises(CheckSpecError, match="max_age must look like"):
        parse_checks([{"freshness": {"column": "t", "max_age": "soon"}}])
    with pytest.raises(CheckSpecError, match="not a valid expression"):
        parse_checks([{"expression": "price >>= 0"}])
    assert parse_age("2d") == 172800 and parse_age("1.5h") == 5400


NOW = datetime(2026, 6, 1, tzinfo=UTC)


def decide(checks: list[object], *batches: pl.DataFrame, secret: tuple[str, ...] = ()):
    acc = CheckAccumulator(parse_checks(checks), secret)
    for b in batches:
        acc.update(b)
    return acc.decide(now=NOW)


GOOD = pl.DataFrame(
    {
        "id": [1, 2, 3],
        "country": ["DK", "SE", "NO"],
        "age": [10, 20, 150],
        "price": [1.0, 0.0, 2.5],
        "updated_at": [NOW - timedelta(hours=5)] * 3,
        "email": ["a@x", "b@x", "c@x"],
    }
)
CHECKS: list[object] = [
    {"not_null": ["id", "email"]},
    {"unique": ["id"]},
    {"accepted_values": {"country": ["DK", "SE", "NO"]}},
    {"range": {"age": [0, 150]}},
    {"row_count": {"min": 3, "max": 6}},
    {"freshness": {"column": "updated_at", "max_age": "1d"}},
    {"expression": "price >= 0"},
]


def test_every_check_passes_on_good_data() -> None:
    report = decide(CHECKS, GOOD[:2], GOOD[2:])
    assert report.passed, report.lines()
    assert report.summary() == "7 checks passed"


@pytest.mark.parametrize(
    ("check", "bad", "failing"),
    [
        ({"not_null": ["id", "email"]}, {"email": [None, "b", None]}, 2),
        ({"unique": ["id"]}, {"id": [1, 1, 1]}, 2),
        ({"accepted_values": {"country": ["DK", "SE", "NO"]}}, {"country": ["DK", "US", None]}, 1),
        ({"range": {"age": [0, 150]}}, {"age": [-1, 151, None]}, 2),
        ({"expression": "price >= 0"}, {"price": [-1.0, 0.0, None]}, 1),
    ],
)
def test_each_row_check_fails_on_purpose(
    check: dict[str, object], bad: dict[str, list[object]], failing: int
) -> None:
    df = GOOD.with_columns(*(pl.Series(k, v, dtype=GOOD.schema[k]) for k, v in bad.items()))
    report = decide([check], df, secret=("email",))
    assert not report.passed
    (outcome,) = report.failed
    assert outcome.failing == failing
    assert 1 <= len(outcome.examples) <= failing
    for example in outcome.examples:
        assert example.get("email", "***") == "***"  # a secret column is masked


def test_whole_dataset_checks_fail_on_purpose() -> None:
    assert decide([{"row_count": {"min": 4}}], GOOD).failed[0].detail == "3 rows"
    assert not decide([{"row_count": {"max": 2}}], GOOD).passed
    stale = GOOD.with_columns(pl.lit(NOW - timedelta(days=3)).alias("updated_at"))
    (outcome,) = decide([{"freshness": {"column": "updated_at", "max_age": "2d"}}], stale).failed
    assert "3 days" in outcome.detail
    empty = GOOD.clear()
    assert not decide([{"freshness": {"column": "updated_at", "max_age": "2d"}}], empty).passed


def test_duplicates_across_parts_fail_after_merge_even_through_json() -> None:
    checks = parse_checks([{"unique": ["id"]}, {"row_count": {"min": 4}}])
    one, two = CheckAccumulator(checks), CheckAccumulator(checks)
    one.update(pl.DataFrame({"id": [1, 2, 3]}))
    two.update(pl.DataFrame({"id": [4, 5, 3]}))
    assert one.decide().passed is False  # row_count: 3 < 4
    travelled = CheckAccumulator.from_json(checks, json.loads(json.dumps(two.to_json())))
    whole = CheckAccumulator(checks)
    whole.merge(one)
    whole.merge(travelled)
    report = whole.decide()
    assert [o.check for o in report.failed] == ["unique(id)"]
    assert report.failed[0].failing == 1
    assert whole.rows == 6


def test_key_set_spills_and_still_finds_repeats() -> None:
    keys = KeySet(spill_keys=1000, compact_rows=700)
    found = 0
    for start in range(0, 5000, 500):
        ids = pl.Series("id", range(start, start + 500), dtype=pl.UInt64)
        result = keys.add(ids, ids.to_frame())
        found += result[0] if result else 0
    assert (keys.compact() or (0, None))[0] == 0 and found == 0 and len(keys) == 5000
    assert "spilled" in keys.describe()
    ids = pl.Series("id", [42, 4999, 5000, 5000, 7], dtype=pl.UInt64)
    keys.add(ids, ids.to_frame())
    count, examples = keys.compact() or (0, pl.DataFrame())
    assert count == 4  # 42, 4999 and 7 were there; 5000 twice in the batch
    assert sorted(examples["id"].to_list()) == [7, 42, 4999, 5000]
    assert keys.peek(pl.Series([1, 6000, 6000], dtype=pl.UInt64)).to_list() == [True, False, True]
    keys.close()


def test_quality_judges_by_policy() -> None:
    checks = tuple(parse_checks([{"not_null": ["id"]}, {"row_count": {"min": 1}}]))
    acc = CheckAccumulator(list(checks))
    acc.update(pl.DataFrame({"id": [1, None]}))
    report = acc.decide()
    with pytest.raises(ChecksFailed, match=r"(?s)1 of 2 checks failed: not_null\(id\).*1 failing"):
        Quality("f", None, checks, "fail").judge(report)
    assert Quality("f", None, checks, "warn").judge(report) is report
    assert Quality("f", None, checks, "quarantine").judge(report) is report
    acc = CheckAccumulator(list(checks))
    with pytest.raises(ChecksFailed, match=r"row_count\(min 1\).*no rows to quarantine"):
        Quality("f", None, checks, "quarantine").judge(acc.decide())


def test_a_value_cast_cannot_convert_is_a_shape_error() -> None:
    with pytest.raises(ShapeError, match=r"shape\.cast failed"):
        shaper(cast={"id": "int64"}).apply(pl.DataFrame({"id": ["1", "x"]}))


def test_each_decision_is_one_log_record_with_every_outcome(caplog) -> None:
    checks = tuple(parse_checks([{"not_null": ["id"]}, {"unique": ["id"]}]))
    acc = CheckAccumulator(list(checks), secret=("id",))
    acc.update(pl.DataFrame({"id": [1, 1]}))
    with caplog.at_level("INFO", logger="hygge.checks"):
        Quality("orders", None, checks, "warn").judge(acc.decide())
    (record,) = caplog.records
    assert record.flow == "orders"  # type: ignore[attr-defined]
    outcomes = json.loads(json.dumps(record.checks))  # type: ignore[attr-defined]
    assert [(o["check"], o["passed"], o["failing"]) for o in outcomes] == [
        ("not_null(id)", True, 0),
        ("unique(id)", False, 1),
    ]
    assert outcomes[1]["examples"] == [{"id": "***"}]
    line = json.loads(JsonFormatter().format(record))  # what --log-format json prints
    assert [o["check"] for o in line["checks"]] == ["not_null(id)", "unique(id)"]
    assert line["flow"] == "orders" and line["logger"] == "hygge.checks"


def test_gate_names_a_missing_check_column_and_a_bad_freshness_column() -> None:
    import asyncio

    def batch(checks: list[object], df: pl.DataFrame) -> None:
        gate = Quality("orders", None, tuple(parse_checks(checks))).gate()
        asyncio.run(gate.batch(df))

    df = pl.DataFrame({"id": [1], "when": ["2026-01-01"]})
    with pytest.raises(
        ShapeError, match=r"not_null\(nope\) names column 'nope'.*available: id, when"
    ):
        batch([{"not_null": ["nope"]}], df)
    with pytest.raises(ShapeError, match="needs a date or timestamp column; 'when' is String"):
        batch([{"freshness": {"column": "when", "max_age": "1d"}}], df)


def test_key_set_merges_piece_by_piece_and_counts_every_repeat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hygge.keyset

    monkeypatch.setattr(hygge.keyset, "CHUNK", 64)  # many pieces, many piece boundaries
    values = pl.Series("id", range(3000), dtype=pl.UInt64).sample(
        9000, with_replacement=True, seed=7
    )
    for spill in (100_000, 1500):
        keys, found = KeySet(spill_keys=spill, compact_rows=400), 0
        for start in range(0, len(values), 300):
            ids = values.slice(start, 300)
            result = keys.add(ids, ids.to_frame())
            found += result[0] if result else 0
        found += (keys.compact() or (0, None))[0]
        distinct = values.n_unique()
        assert (found, len(keys)) == (len(values) - distinct, distinct)
        assert keys.run.to_list() == sorted(values.unique().to_list())
        assert ("spilled" in keys.describe()) == (spill < distinct)
        keys.close()
