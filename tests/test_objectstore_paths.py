"""One object-store destination has one spelling: `s3://B/x`, `s3a://B/x` and `s3://B//x`
are the same dataset (compared, locked and journalled as one); `s3://B/y/../x` is refused at
validation, before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from hygge.config import parse
from hygge.errors import ConfigError
from hygge.storage.location import Location, normalize_url
from tests.conftest import run_cli
from tests.objectstore import objects


@pytest.mark.parametrize(
    ("given", "one"),
    [
        ("s3a://b/x", "s3://b/x"),
        ("S3://b//x/", "s3://b/x/"),
        ("s3://b/lake//t", "s3://b/lake/t"),
        ("gcs://b/x", "gs://b/x"),
        ("azure://c/x", "az://c/x"),
        ("abfss://c@acct.dfs.core.windows.net//x", "abfss://c@acct.dfs.core.windows.net/x"),
    ],
)
def test_one_spelling(given: str, one: str) -> None:
    assert normalize_url(given) == one
    assert Location.parse(given).url == one.rstrip("/")


@pytest.mark.parametrize("bad", ["s3://b/y/../x", "s3://b/./x", "s3a://b/x/.."])
def test_dot_segments_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="not allowed"):
        normalize_url(bad)


@pytest.mark.parametrize("other", ["s3a://b/lake/x", "s3://b//lake/x", "s3://b/lake/x/"])
def test_two_spellings_of_one_destination_are_one_destination(other: str) -> None:
    text = (
        "flows:\n  a: {home: in.parquet, store: 's3://b/lake/x'}\n"
        f"  b: {{home: in.parquet, store: '{other}'}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse(text, "flows.yml")
    assert "would replace the data of the other" in str(caught.value), caught.value


def test_a_path_with_dot_dot_is_refused_and_nothing_is_written(
    emulators, cloud_env, tmp_path: Path
) -> None:
    emu = emulators["s3"]
    cloud_env(emu)
    bucket = emu.new_bucket()
    (tmp_path / "in.csv").write_text("id\n1\n2\n")
    (tmp_path / "flows.yml").write_text(
        f"flows:\n  f: {{home: in.csv, store: '{bucket}/lake/y/../x'}}\n"
    )
    for command in ("validate", "run"):
        done = run_cli(command, "flows.yml", cwd=tmp_path)
        text = done.stdout + done.stderr
        assert done.returncode != 0 and "not allowed" in text and "Traceback" not in text, text
    assert objects(emu, bucket) == []
    # The real path runs, and runs again: no journal of the refused spelling is in its way.
    (tmp_path / "flows.yml").write_text(
        f"flows:\n  f: {{home: in.csv, store: '{bucket}/lake/x'}}\n"
    )
    for _ in range(2):
        done = run_cli("run", "flows.yml", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
