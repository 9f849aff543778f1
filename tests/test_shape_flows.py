"""`shape:` and `checks:` end to end through `hygge run`: shapes read back with DuckDB; each
check failing on purpose publishes nothing (parquet, S3 emulator, Delta, PostgreSQL, MariaDB);
warn publishes; quarantine sets failing rows aside; duplicates in different partitions fail
`unique`; a failed check does not advance incremental state; `validate` checks the shape
against the home's columns."""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import polars_hash as plh
import pytest

from hygge import registry
from hygge.config import parse
from hygge.contract import Store, StoreSettings
from hygge.errors import ConfigError
from tests.checks import fingerprint, tree_digest
from tests.conftest import run_cli
from tests.helpers import write_flows
from tests.sqldb import Db, unique

NOW = datetime.now(UTC).replace(microsecond=0)


def customers(n: int, start: int = 0, **bad: dict[int, object]) -> pl.DataFrame:
    """n good customer rows (ids from `start`); `bad` overrides {column: {row: value}}."""
    ids = range(start, start + n)
    data: dict[str, list[object]] = {
        "Cust No": list(ids),
        "Customer Name": [f"name {i}" for i in ids],
        "Email": [f"c{i}@example.com" for i in ids],
        "Country": [("DK", "SE", "NO")[i % 3] for i in ids],
        "Age": [20 + i % 50 for i in ids],
        "Price": [float(i % 7) for i in ids],
        "Updated At": [NOW - timedelta(hours=1)] * n,
    }
    for column, rows in bad.items():
        for row, value in rows.items():
            data[column][row] = value
    return pl.DataFrame(data, schema_overrides={"Updated At": pl.Datetime("us", "UTC")})


def drop(folder: Path, name: str, df: pl.DataFrame) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    df.write_parquet(folder / name)


QUALITY = """
    shape:
      naming: snake_case
      rename: {cust_no: customer_id}
      cast: {age: int32}
      add: {loaded_at: now, run_id: run, source_file: file}
      hash_key: {name: row_hash, columns: [customer_id, email]}
    checks:
      - not_null: [customer_id, email]
      - unique: [customer_id]
      - accepted_values: {country: [DK, SE, "NO"]}
      - range: {age: [0, 150]}
      - row_count: {min: 10}
      - freshness: {column: updated_at, max_age: 2d}
      - expression: "price >= 0"
    secret_columns: [email]
"""


def flows(home: str, store: str, extra: str = "", quality: str = QUALITY) -> str:
    return f"flows:\n  customers:\n    home: {home}\n    store: {store}\n{quality}{extra}"


def run(project: Path, env: dict[str, str] | None = None, *args: str):
    return run_cli("run", "flows.yml", *args, cwd=project, env=env, timeout=300)


def test_shape_read_back_with_duckdb(tmp_path: Path) -> None:
    drop(tmp_path / "in", "a.parquet", customers(30))
    drop(tmp_path / "in", "b.parquet", customers(20, start=30))
    write_flows(tmp_path, flows(f"{tmp_path / 'in'}", f"{tmp_path / 'out'}"))
    done = run(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "checks of customers: 7 checks passed" in done.stdout
    con = duckdb.connect()
    out = f"read_parquet('{tmp_path / 'out'}/**/*.parquet')"
    columns = [r[0] for r in con.execute(f"describe select * from {out}").fetchall()]
    assert columns == [
        "customer_id",
        "customer_name",
        "email",
        "country",
        "age",
        "price",
        "updated_at",
        "row_hash",
        "loaded_at",
        "run_id",
        "source_file",
    ]
    types = dict(con.execute(f"describe select * from {out}").fetchall()[i][:2] for i in range(11))
    assert types["age"] == "INTEGER" and types["row_hash"] == "BIGINT"
    # the data itself is untouched: same rows and content as the input, by an independent reader
    original = '"Cust No", "Customer Name", "Email", "Country", "Age", "Price", "Updated At"'
    shaped = "customer_id, customer_name, email, country, age, price, updated_at"
    assert fingerprint(tmp_path / "out", shaped) == fingerprint(tmp_path / "in", original)
    audit = con.execute(
        f"select count(distinct run_id), count(distinct loaded_at), count(distinct row_hash), "
        f"count(*) filter (where source_file like '%/in/a.parquet'), "
        f"count(*) filter (where source_file like '%/in/b.parquet') from {out}"
    ).fetchone()
    assert audit == (1, 1, 50, 30, 20)
    loaded_at = con.execute(f"select max(loaded_at) from {out}").fetchone()[0]
    assert abs((loaded_at - datetime.now(UTC)).total_seconds()) < 3600
    hashes = dict(con.execute(f"select customer_id, row_hash from {out}").fetchall())
    # a second run hashes every key alike (stable hash), with a new run id
    done = run(tmp_path)
    assert done.returncode == 0, done.stderr
    assert dict(con.execute(f"select customer_id, row_hash from {out}").fetchall()) == hashes


# one bad row (or a bad whole) for each check, on the shaped column names
FAILURES = {
    "not_null": ({"Email": {3: None}}, r"not_null\(customer_id, email\): FAILED, 1 failing row"),
    "unique": ({"Cust No": {4: 1, 5: 1}}, r"unique\(customer_id\): FAILED, 2 failing rows"),
    "accepted_values": ({"Country": {2: "US"}}, r"accepted_values\(country\): FAILED, 1 fail"),
    "range": ({"Age": {1: 151}}, r"range\(age\): FAILED, 1 failing row"),
    "expression": ({"Price": {0: -1.0}}, r"expression\(price >= 0\): FAILED, 1 failing row"),
    "freshness": (
        {"Updated At": {i: NOW - timedelta(days=3) for i in range(12)}},
        r"freshness\(updated_at\): FAILED \(newest updated_at is .* 3 days",
    ),
    "row_count": (None, r"row_count\(min 10\): FAILED \(9 rows\)"),
}


@pytest.mark.parametrize("check", list(FAILURES))
def test_each_check_fails_on_purpose_and_publishes_nothing(check: str, tmp_path: Path) -> None:
    write_flows(tmp_path, flows(f"{tmp_path / 'in'}", f"{tmp_path / 'out'}"))
    drop(tmp_path / "in", "a.parquet", customers(12))
    done = run(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    before = tree_digest(tmp_path / "out")
    bad, wanted = FAILURES[check]
    df = customers(9) if bad is None else customers(12, **bad)
    drop(tmp_path / "in", "a.parquet", df)
    done = run(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    message = " ".join(done.stderr.split())
    assert "1 of 7 checks failed" in message and "nothing was published" in message
    import re

    assert re.search(wanted, message), message
    assert "c3@example.com" not in message and "Traceback" not in done.stderr
    if check == "not_null":
        assert "email=***" in message  # a null, but email is a secret column
    if check == "unique":
        assert "email=***" not in message and "customer_id=1" in message
    assert tree_digest(tmp_path / "out") == before  # the published data is untouched


def test_a_value_cast_cannot_convert_fails_the_flow_and_publishes_nothing(tmp_path: Path) -> None:
    write_flows(tmp_path, flows(f"{tmp_path / 'in'}", f"{tmp_path / 'out'}"))
    drop(tmp_path / "in", "a.parquet", customers(12))
    assert run(tmp_path).returncode == 0
    before = tree_digest(tmp_path / "out")
    quality = QUALITY.replace("cast: {age: int32}", "cast: {age: int32, customer_name: int64}")
    write_flows(tmp_path, flows(f"{tmp_path / 'in'}", f"{tmp_path / 'out'}", quality=quality))
    done = run(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    message = " ".join(done.stderr.split())
    assert "shape.cast failed" in message and "Traceback" not in done.stderr, message
    assert tree_digest(tmp_path / "out") == before


def test_secret_columns_are_masked_in_examples(tmp_path: Path) -> None:
    quality = QUALITY.replace('- expression: "price >= 0"', '- expression: "age < 60"')
    write_flows(tmp_path, flows(f"{tmp_path / 'in'}", f"{tmp_path / 'out'}", quality=quality))
    drop(tmp_path / "in", "a.parquet", customers(12, Age={0: 99}))
    done = run(tmp_path)
    assert done.returncode == 1
    message = " ".join(done.stderr.split())
    assert "expression(age < 60): FAILED, 1 failing row; e.g. age=99" in message
    quality = QUALITY.replace("- not_null: [customer_id, email]", "- not_null: [customer_id]")
    quality = quality.replace('- expression: "price >= 0"', "- expression: \"email = 'x'\"")
    write_flows(tmp_path, flows(f"{tmp_path / 'in'}", f"{tmp_path / 'out'}", quality=quality))
    done = run(tmp_path)
    message = " ".join(done.stderr.split())
    assert "email=***" in message and "@example.com" not in message, message


def test_warn_publishes_and_reports(tmp_path: Path) -> None:
    drop(tmp_path / "in", "a.parquet", customers(12, Country={2: "US"}))
    extra = "    on_check_failure: warn\n"
    write_flows(tmp_path, flows(f"{tmp_path / 'in'}", f"{tmp_path / 'out'}", extra))
    done = run(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "1 of 7 checks failed: accepted_values(country)" in " ".join(done.stdout.split())
    assert fingerprint(tmp_path / "out", "customer_id")[0] == 12
    # JSON logs: the committed flow's event says what the checks decided
    done = run(tmp_path, None, "--log-format", "json")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    committed = next(e for e in events if e["event"] == "flow_committed")
    assert committed["checks"].startswith("1 of 7 checks failed: accepted_values(country)")
    assert "e.g. country=US" in committed["checks"], committed


def test_quarantine_publishes_passing_rows_and_sets_failing_ones_aside(tmp_path: Path) -> None:
    df = customers(15, Country={2: "US"}, **{"Cust No": {4: 1}, "Email": {7: None}})
    drop(tmp_path / "in", "a.parquet", df)
    extra = f"    on_check_failure: quarantine\n    quarantine: {tmp_path / 'bad'}\n"
    write_flows(tmp_path, flows(f"{tmp_path / 'in'}", f"{tmp_path / 'out'}", extra))
    done = run(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 rows quarantined" in " ".join(done.stdout.split())
    con = duckdb.connect()
    good = con.execute(
        f"select list(customer_id order by customer_id) "
        f"from read_parquet('{tmp_path / 'out'}/*.parquet')"
    ).fetchone()[0]
    assert good == [i for i in range(15) if i not in (2, 4, 7)]
    bad = con.execute(
        f"select customer_id, _hygge_check from read_parquet('{tmp_path / 'bad'}/*.parquet') "
        "order by customer_id, _hygge_check"
    ).fetchall()
    assert bad == [
        (1, "unique(customer_id)"),
        (2, "accepted_values(country)"),
        (7, "not_null(customer_id, email)"),
    ]


SOURCE_COLUMNS = '"Cust No" as customer_id, "Customer Name" as customer_name, "Email" as email'
SHAPED_COLUMNS = "customer_id, customer_name, email"


def documented_key(customer_id: int, email: str) -> int:
    """`hash_key: [customer_id, email]` by its definition: XXH64 of the id's 8 bytes, the
    email's XXH64, and the null flags (none), as a signed 64-bit integer."""

    def xxh64(data: bytes) -> int:
        frame = pl.DataFrame({"b": pl.Series([data], dtype=pl.Binary)})
        return int(frame.select(plh.col("b").nchash.xxhash64()).item())

    digest = xxh64(struct.pack("<qQQ", customer_id, xxh64(email.encode()), 0))
    return struct.unpack("<q", struct.pack("<Q", digest))[0]


def quarantine_input(folder: Path) -> int:
    """Three files (one partition each) with failing rows in every one; their row count."""
    drop(folder, "a.parquet", customers(10, Country={2: "US"}, Price={5: -1.0}))
    drop(folder, "b.parquet", customers(10, start=10, Email={3: None}))
    drop(folder, "c.parquet", customers(10, start=20, **{"Cust No": {7: 21, 8: 21}}))
    return 30


def assert_split(source: Path, out: Path, bad: Path) -> None:
    """Published + quarantined rows = the source's, by count and checksum (DuckDB), and
    each quarantined row says which check it failed."""
    published, quarantined = fingerprint(out, SHAPED_COLUMNS), fingerprint(bad, SHAPED_COLUMNS)
    assert published[0] == 30 - 5 and quarantined[0] == 5
    both = (published[0] + quarantined[0], published[1] + quarantined[1])
    assert both == fingerprint(source, SOURCE_COLUMNS)
    reasons = (
        duckdb.connect()
        .execute(
            f"select customer_id, _hygge_check from read_parquet('{bad}/**/*.parquet') "
            "order by customer_id, _hygge_check"
        )
        .fetchall()
    )
    # the hash key is the documented XXH64 wherever a partition ran (docs/shape.md)
    keys = (
        duckdb.connect()
        .execute(f"select customer_id, email, row_hash from read_parquet('{out}/**/*.parquet')")
        .fetchall()
    )
    assert [h for _, _, h in keys] == [documented_key(i, e) for i, e, _ in keys]
    assert reasons == [
        (2, "accepted_values(country)"),
        (5, "expression(price >= 0)"),
        (13, "not_null(customer_id, email)"),
        (21, "unique(customer_id)"),
        (21, "unique(customer_id)"),
    ]


def test_partitioned_quarantine_sets_every_parts_failing_rows_aside(tmp_path: Path) -> None:
    """Every partition's failing rows go to the quarantine store, the passing ones are
    published once; published + quarantined = source rows. A key repeated across two
    partitions cannot be set aside once both are staged: the flow fails, publishing and
    quarantining nothing."""
    quarantine_input(tmp_path / "in")
    extra = (
        "    options: {partitions: 3}\n"
        f"    on_check_failure: quarantine\n    quarantine: {tmp_path / 'bad'}\n"
    )
    write_flows(tmp_path, flows(f"{tmp_path / 'in'}", f"{tmp_path / 'out'}", extra))
    done = run(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 rows quarantined" in " ".join(done.stdout.split()), done.stdout
    assert_split(tmp_path / "in", tmp_path / "out", tmp_path / "bad")
    for store in ("out", "bad"):  # every part's staging is gone: data files and journal only
        files = [p.relative_to(tmp_path / store) for p in (tmp_path / store).rglob("*")]
        left = [f for f in files if (tmp_path / store / f).is_file()]
        assert all(f.suffix == ".parquet" or f.parts[:2] == ("_hygge", "commits") for f in left)
        assert len([f for f in left if f.suffix == ".parquet"]) == 3, left

    # id 29 in two partitions: found only once both are staged, so nothing is published
    before = tree_digest(tmp_path / "out"), tree_digest(tmp_path / "bad")
    drop(tmp_path / "in", "d.parquet", customers(1, start=29))
    extra = extra.replace("partitions: 3", "partitions: 4")
    write_flows(tmp_path, flows(f"{tmp_path / 'in'}", f"{tmp_path / 'out'}", extra))
    done = run(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    message = " ".join(done.stderr.split())
    assert "1 keys repeat across partitions" in message, message
    assert (tree_digest(tmp_path / "out"), tree_digest(tmp_path / "bad")) == before


@pytest.mark.parametrize(
    ("quarantine", "says"),
    [
        ("{type: test_single_q}", "store type 'test_single_q' cannot take parts"),
        ("{type: delta, path: q, mode: merge, key: id}", "in mode replace or append only"),
    ],
)
def test_partitioned_quarantine_needs_a_store_that_takes_parts(quarantine: str, says: str) -> None:
    """A partition stages its failing rows as a part of the quarantine store: a store that
    cannot take parts is refused when flows.yml is read, at the `quarantine:` line."""
    with registry.registered("store", "test_single_q"):

        class SingleStore(Store[StoreSettings]):
            type_name = "test_single_q"

        text = (
            "flows:\n  s:\n    home: in.parquet\n    store: out\n"
            "    options: {partitions: 2}\n    checks: [{not_null: [id]}]\n"
            f"    on_check_failure: quarantine\n    quarantine: {quarantine}\n"
        )
        with pytest.raises(ConfigError) as caught:
            parse(text, "flows.yml")
    message = str(caught.value)
    assert "a partitioned flow quarantines into parts" in message and says in message, message
    assert message.startswith("flows.yml:8: flow 's' -> quarantine"), message


def test_workers_refuse_a_partitioned_quarantine_on_an_unshared_local_path(tmp_path: Path) -> None:
    """Each partition may run on another machine and the commit reads every quarantine
    part: `validate --workers` (what `enqueue` checks) refuses an unshared local path."""
    drop(tmp_path / "in", "a.parquet", customers(10))
    extra = (
        "    options: {partitions: 2}\n    on_check_failure: quarantine\n"
        f"    quarantine: {tmp_path / 'bad'}\n"
    )
    store = f"{{path: {tmp_path / 'out'}, shared_volume: true}}"
    write_flows(tmp_path, flows(f"{tmp_path / 'in'}", store, extra))
    checked = run_cli("validate", "flows.yml", "--workers", cwd=tmp_path)
    said = " ".join((checked.stdout + checked.stderr).split())
    assert checked.returncode == 2, said
    assert f"its quarantine parts stage under the local path {tmp_path / 'bad'}" in said, said
    assert "quarantine.shared_volume" in said and "Traceback" not in said
    assert run_cli("validate", "flows.yml", cwd=tmp_path).returncode == 0  # fine for `run`


def test_partitioned_duplicates_in_different_partitions_fail_unique(tmp_path: Path) -> None:
    drop(tmp_path / "in", "a.parquet", customers(10))
    drop(tmp_path / "in", "b.parquet", customers(10, start=9))  # id 9 in both
    extra = "    options: {partitions: 2}\n"
    write_flows(tmp_path, flows(f"{tmp_path / 'in'}", f"{tmp_path / 'out'}", extra))
    done = run(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    message = " ".join(done.stderr.split())
    assert "unique(customer_id): FAILED, 1 failing row" in message, message
    assert "repeat in another partition" in message
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.parquet"))
    drop(tmp_path / "in", "b.parquet", customers(10, start=10))
    done = run(tmp_path)
    assert done.returncode == 0, done.stderr
    assert fingerprint(tmp_path / "out", "customer_id")[0] == 20
    assert "7 checks passed" in done.stdout


def test_failed_check_does_not_advance_incremental_state(tmp_path: Path) -> None:
    extra = "    options: {incremental: true}\n"
    write_flows(tmp_path, flows(f"{tmp_path / 'in'}", f"{tmp_path / 'out'}", extra))
    drop(tmp_path / "in", "a.parquet", customers(12))
    assert run(tmp_path).returncode == 0
    state = run_cli("state", "flows.yml", cwd=tmp_path).stdout
    drop(tmp_path / "in", "b.parquet", customers(12, start=100, Price={0: -5.0}))
    done = run(tmp_path)
    assert done.returncode == 1 and "expression(price >= 0)" in done.stderr
    assert run_cli("state", "flows.yml", cwd=tmp_path).stdout == state
    assert fingerprint(tmp_path / "out", "customer_id")[0] == 12
    drop(tmp_path / "in", "b.parquet", customers(12, start=100))  # fixed at the source
    done = run(tmp_path)
    assert done.returncode == 0, done.stderr
    assert fingerprint(tmp_path / "out", "customer_id")[0] == 24


STORES = ["s3", "delta", "postgres", "mysql"]


@pytest.mark.parametrize("kind", STORES)
def test_failing_check_on_real_stores(kind: str, tmp_path: Path, request) -> None:
    """A good run publishes the shape (read back independently); a failing one publishes
    nothing, on every kind of store."""
    env: dict[str, str] = {}
    db = None
    if kind == "s3":
        emu = request.getfixturevalue("emulators")["s3"]
        env = emu.env
        target = f"{emu.new_bucket()}/lake/customers"
        store = target
    elif kind == "delta":
        target = str(tmp_path / "delta")
        store = f"{{type: delta, path: {target}}}"
    else:
        url = request.getfixturevalue(f"{kind}_url")
        db, target = Db(url), unique("shape")
        store = f"{{type: sql, connection: '{url}', table: {target}}}"
    quality = QUALITY.replace(", source_file: file", "")
    write_flows(tmp_path, flows(f"{tmp_path / 'in'}", store, quality=quality))
    drop(tmp_path / "in", "a.parquet", customers(12))

    def published() -> list[tuple[object, ...]]:
        if db is not None:
            return db.run(f"SELECT customer_id, row_hash, run_id FROM {db.q(target)} ORDER BY 1")
        if kind == "delta":
            from deltalake import DeltaTable

            frame = pl.from_arrow(DeltaTable(target).to_pyarrow_table())
        else:
            from tests.objectstore import download

            local = download(emu, target, tmp_path / "dl" / str(len(list(tmp_path.iterdir()))))
            frame = pl.read_parquet(f"{local}/*.parquet")
        assert isinstance(frame, pl.DataFrame)
        rows = frame.select("customer_id", "row_hash", "run_id").sort("customer_id").rows()
        return rows

    try:
        done = run(tmp_path, env)
        assert done.returncode == 0, done.stdout + done.stderr
        first = published()
        assert [r[0] for r in first] == list(range(12))
        assert len({r[1] for r in first}) == 12 and len({r[2] for r in first}) == 1
        drop(tmp_path / "in", "a.parquet", customers(12, **{"Cust No": {3: 0}}))
        done = run(tmp_path, env)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "unique(customer_id): FAILED" in " ".join(done.stderr.split())
        assert published() == first
    finally:
        if db is not None:
            db.run(f"DROP TABLE IF EXISTS {db.q(target)}")


def test_validate_checks_shape_against_the_home(tmp_path: Path) -> None:
    drop(tmp_path / "in", "a.parquet", customers(3))
    quality = QUALITY.replace("cast: {age: int32}", "cast: {agee: int32}")
    write_flows(tmp_path, flows(f"{tmp_path / 'in'}", f"{tmp_path / 'out'}", quality=quality))
    done = run_cli("validate", "flows.yml", cwd=tmp_path)
    assert done.returncode == 1
    message = " ".join(done.stderr.split())
    assert "shape.cast names column 'agee'" in message
    assert "available: customer_id, customer_name, email, country, age" in message
    quality = QUALITY.replace("- range: {age: [0, 150]}", "- range: {years: [0, 150]}")
    write_flows(tmp_path, flows(f"{tmp_path / 'in'}", f"{tmp_path / 'out'}", quality=quality))
    done = run_cli("validate", "flows.yml", cwd=tmp_path)
    assert done.returncode == 1 and "range(years) names column 'years'" in done.stderr
    write_flows(tmp_path, flows(f"{tmp_path / 'in'}", f"{tmp_path / 'out'}"))
    done = run_cli("validate", "flows.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("quality", "line", "wanted"),
    [
        ("    checks:\n      - unique: [id]\n      - not_nul: [id]\n", 7, "unknown check"),
        ("    shape: {naming: kebab}\n", 5, "naming"),
        ("    shape: {cast: {id: integer}}\n", 5, "unknown type 'integer'"),
        ("    on_check_failure: quarantine\n", 5, "needs a store"),
        ("    checks: [{freshness: {column: t, max_age: soon}}]\n", 5, "max_age"),
        (
            "    shape: {select: [id]}\n    checks: [{not_null: [name]}]\n",
            6,
            "leaves out; available: id",
        ),
    ],
)
def test_bad_config_names_file_and_line(
    quality: str, line: int, wanted: str, tmp_path: Path
) -> None:
    drop(tmp_path / "in", "a.parquet", customers(3))
    write_flows(tmp_path, flows(f"{tmp_path / 'in'}", f"{tmp_path / 'out'}", quality=quality))
    done = run_cli("validate", "flows.yml", cwd=tmp_path)
    assert done.returncode == 2  # flows.yml is wrong
    assert f"flows.yml:{line}" in done.stderr and wanted in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_yaml_booleans_in_accepted_values_are_refused(tmp_path: Path) -> None:
    quality = "    checks:\n      - accepted_values: {country: [DK, SE, NO]}\n"
    drop(tmp_path / "in", "a.parquet", customers(3))
    write_flows(tmp_path, flows(f"{tmp_path / 'in'}", f"{tmp_path / 'out'}", quality=quality))
    done = run_cli("validate", "flows.yml", cwd=tmp_path)
    assert done.returncode == 2 and "flows.yml:6" in done.stderr
    assert 'quote them, e.g. [DK, SE, "NO"]' in done.stderr


def test_validate_checks_shape_against_a_sql_table(postgres_url: str, tmp_path: Path) -> None:
    db, table = Db(postgres_url), unique("shape_src")
    db.run(f'CREATE TABLE {db.q(table)} ("CustNo" integer, "Customer Name" text)')
    try:
        home = f"{{type: sql, connection: '{postgres_url}', table: {table}}}"
        quality = (
            "    shape: {naming: snake_case, cast: {cust_id: int64}}\n"
            "    checks: [{unique: [cust_no]}]\n"
        )
        write_flows(tmp_path, flows(home, f"{tmp_path / 'out'}", quality=quality))
        done = run_cli("validate", "flows.yml", cwd=tmp_path)
        assert done.returncode == 1, done.stdout + done.stderr
        message = " ".join(done.stderr.split())
        assert "shape.cast names column 'cust_id'" in message
        assert "available: cust_no, customer_name" in message
        write_flows(
            tmp_path,
            flows(home, f"{tmp_path / 'out'}", quality=quality.replace("cust_id", "cust_no")),
        )
        done = run_cli("validate", "flows.yml", cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        db.run(f"DROP TABLE IF EXISTS {db.q(table)}")


def test_a_worker_run_sent_again_after_it_landed_adds_no_data_and_no_quarantined_rows(
    tmp_path: Path,
) -> None:
    """A worker runs a flow under its run's key; sent again after its commit landed (killed
    before recording the flow as done), the same run appends nothing more to the store nor
    to the quarantine store; another run appends to both."""
    import asyncio

    from hygge.config import load
    from hygge.run.context import RunContext
    from hygge.run.steps import Step, StepKind, execute

    drop(tmp_path / "in", "a.parquet", customers(15, Country={2: "US"}, Email={7: None}))
    store, aside = tmp_path / "out", tmp_path / "bad"
    extra = f"    on_check_failure: quarantine\n    quarantine: {{path: {aside}, mode: append}}\n"
    path = write_flows(
        tmp_path, flows(f"{tmp_path / 'in'}", f"{{path: {store}, mode: append}}", extra)
    )

    def deliver(run: str) -> None:
        spec = load(path).flows["customers"]
        step = Step("customers", "customers", StepKind.MOVE)
        report = asyncio.run(execute(step, spec, RunContext(own_retries=False), key=run))
        assert report.state == "success" and report.rows == 13, report  # 2 set aside

    def rows(folder: Path) -> int:
        return duckdb.sql(f"SELECT count(*) FROM read_parquet('{folder}/**/*.parquet')").fetchall()[
            0
        ][0]

    deliver("run1")
    deliver("run1")  # the same run, sent again
    assert (rows(store), rows(aside)) == (13, 2)
    deliver("run2")
    assert (rows(store), rows(aside)) == (26, 4)
