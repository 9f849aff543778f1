"""Crashes and bad input on object storage: SIGKILL mid-write and mid-commit then a rerun,
missing buckets, refused credentials, an unreachable endpoint, an unsupported scheme, a
Delta path over a non-Delta dataset. Real emulator servers; the real CLI."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tests.checks import fingerprint
from tests.conftest import kill_run_when, run_cli
from tests.objectstore import download, free_port, lease_blob, objects, upload


def drops(folder: Path, files: int, rows: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        ids = range(i * rows, (i + 1) * rows)
        pl.DataFrame({"id": list(ids), "v": [f"v{j}" for j in ids]}).write_parquet(
            folder / f"d{i:03d}.parquet"
        )


def dataset(emu, url: str, dest: Path) -> tuple[int, int]:
    got = download(emu, url, dest)
    return fingerprint(f"{got}/*.parquet") if list(got.glob("*.parquet")) else (0, 0)


# S3 stages files as multipart uploads, Azure as uncommitted blocks: both killed and rerun
@pytest.mark.parametrize("cloud", ["s3", "az"])
def test_sigkill_mid_write_then_rerun(cloud, emulators, tmp_path, cloud_env, monkeypatch):
    emu = emulators[cloud]
    cloud_env(emu)
    monkeypatch.setenv("HYGGE_OBJECT_LOCK_SECONDS", "1")  # the killed run's lock expires soon
    bucket = emu.new_bucket()
    drops(tmp_path / "incoming", 3, 1_000)
    (tmp_path / "flows.yml").write_text(
        f"flows:\n  f:\n    home: incoming\n"
        f"    store: {{path: '{bucket}/lake/t', max_rows_per_file: 1000}}\n"
    )
    assert run_cli("run", "flows.yml", cwd=tmp_path).returncode == 0
    old = dataset(emu, f"{bucket}/lake/t", tmp_path / "old")
    drops(tmp_path / "incoming", 60, 1_000)  # a bigger second run, killed while staging

    def staging_has_data() -> bool:
        return any(".t.hygge-staging-" in o for o in objects(emu, f"{bucket}/lake"))

    kill_run_when(tmp_path, staging_has_data)
    assert dataset(emu, f"{bucket}/lake/t", tmp_path / "after_kill") == old  # untouched
    done = run_cli("run", "flows.yml", "--wait-for-lock", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert dataset(emu, f"{bucket}/lake/t", tmp_path / "new") == fingerprint(
        tmp_path / "incoming" / "*.parquet"
    )


@pytest.mark.parametrize("cloud", ["s3", "az"])
def test_sigkill_mid_commit_is_completed_by_the_next_run(
    cloud, emulators, tmp_path, cloud_env, monkeypatch
):
    """Killed after the journal is written: the next run finishes that commit (data and
    state together), so an incremental append loads every file exactly once."""
    emu = emulators[cloud]
    cloud_env(emu)
    monkeypatch.setenv("HYGGE_OBJECT_LOCK_SECONDS", "1")  # the killed run's lock expires soon
    bucket = emu.new_bucket()
    drops(tmp_path / "incoming", 40, 500)
    (tmp_path / "flows.yml").write_text(
        f"flows:\n  f:\n    home: incoming\n"
        f"    store: {{path: '{bucket}/lake/t', max_rows_per_file: 100, mode: append}}\n"
        "    options: {incremental: true}\n"
    )

    def journal_written() -> bool:
        return any("/_hygge/journal/" in o for o in objects(emu, f"{bucket}/lake/t"))

    kill_run_when(tmp_path, journal_written)
    assert journal_written(), "the kill came after the commit finished: nothing tested"
    if cloud == "az":
        # pyarrow's Azure delete leases the blob (15 s): a run killed mid-delete leaves that
        # lease. Leave one on every journal, for good: the rerun must still delete them.
        for journal in (o for o in objects(emu, f"{bucket}/lake/t") if "/_hygge/journal/" in o):
            lease_blob(emu, journal)
    done = run_cli("run", "flows.yml", "--wait-for-lock", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # It published the killed run's 20,000 rows (and read nothing new): it says so.
    assert "f: success: 20,000 rows" in done.stdout + done.stderr, done.stdout + done.stderr
    assert dataset(emu, f"{bucket}/lake/t", tmp_path / "out") == fingerprint(
        tmp_path / "incoming" / "*.parquet"
    )
    assert not journal_written()
    assert not any("staging" in o for o in objects(emu, f"{bucket}/lake"))


def _fails(project: Path, flows: str, env: dict[str, str], *expect: str) -> str:
    (project / "flows.yml").write_text(flows)
    done = run_cli("run", "flows.yml", cwd=project, env=env, timeout=180)
    text = done.stdout + done.stderr
    assert done.returncode != 0, text
    assert "Traceback" not in text
    for piece in expect:
        assert piece in text, text
    return text


@pytest.fixture
def project(tmp_path: Path) -> Path:
    drops(tmp_path / "incoming", 1, 100)
    return tmp_path


def test_unknown_bucket(emulators, project):
    emu = emulators["s3"]
    _fails(
        project,
        "flows:\n  f:\n    home: incoming\n    store: s3://no-such-bucket-hygge/lake/t\n",
        emu.env,
        "s3://no-such-bucket-hygge/lake/t",
        "does not exist",
    )
    _fails(
        project,
        "flows:\n  f:\n    home: s3://no-such-bucket-hygge/x/*.parquet\n    store: out\n",
        emu.env,
        "no-such-bucket-hygge",
    )


def test_wrong_credentials_are_refused_and_never_printed(emulators, project):
    emu = emulators["az"]
    bucket = emu.new_bucket()
    wrong = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk="
    text = _fails(
        project,
        f"flows:\n  f:\n    home: incoming\n    store: {bucket}/lake/t\n",
        {**emu.env, "AZURE_STORAGE_ACCOUNT_KEY": wrong},
        f"{bucket}/lake/t",
        "access denied",
    )
    assert wrong not in text
    assert objects(emu, bucket) == []  # destination untouched


# the hint names the variable that sets each cloud's endpoint
ENDPOINT_VARIABLES = {
    "s3": "AWS_ENDPOINT_URL",
    "az": "AZURE_STORAGE_ENDPOINT",
    "gs": "STORAGE_EMULATOR_HOST",
}


@pytest.mark.parametrize("scheme", ENDPOINT_VARIABLES)
def test_unreachable_endpoint_is_retried_then_fails_clearly(scheme, emulators, project):
    emu = emulators[scheme]
    variable = ENDPOINT_VARIABLES[scheme]
    dead = f"http://127.0.0.1:{free_port()}"
    if scheme == "az":
        dead += "/devstoreaccount1"
    store = f"{scheme}://bucket/lake/t"
    text = _fails(
        project,
        f"flows:\n  f:\n    home: incoming\n    store: {store}\n",
        {**emu.env, variable: dead},
        store,
        "unreachable",
        f"check the endpoint ({variable} / storage_options)",
    )
    assert "retry" in text.lower()


def test_unsupported_scheme(project):
    _fails(
        project,
        "flows:\n  f:\n    home: incoming\n    store: {type: parquet, path: 'ftp://host/x'}\n",
        {},
        "unsupported scheme 'ftp://'",
    )


@pytest.mark.parametrize("where", ["local", "s3"])
def test_delta_path_holding_a_non_delta_dataset(where, emulators, project):
    emu = emulators["s3"]
    if where == "local":
        target = project / "plain"
        drops(target, 1, 10)
        url = str(target)
    else:
        url = f"{emu.new_bucket()}/plain"
        upload(emu, project / "incoming" / "d000.parquet", f"{url}/d000.parquet")
    before = objects(emu, url) if where == "s3" else sorted(p.name for p in target.iterdir())
    _fails(
        project,
        f"flows:\n  f:\n    home: incoming\n    store: {{type: delta, path: '{url}'}}\n",
        emu.env,
        url,
        "not a Delta table",
    )
    after = objects(emu, url) if where == "s3" else sorted(p.name for p in target.iterdir())
    assert before == after


def test_stale_staging_of_a_dead_run_is_swept(emulators, tmp_path, cloud_env, monkeypatch):
    """A killed run's staging (no journal) is invisible to readers and swept by a later run
    once it is older than STALE_STAGING_SECONDS; a younger one (maybe live) is kept."""
    from hygge.stores import object_dataset

    emu = emulators["s3"]
    cloud_env(emu)
    bucket = emu.new_bucket()
    dead = f"{bucket}/lake/.t.hygge-staging-deadrun/part-deadrun-00000.parquet"
    upload(emu, Path(__file__), dead)
    upload(emu, Path(__file__), f"{bucket}/lake/other/keep.parquet")
    drops(tmp_path / "incoming", 1, 100)
    (tmp_path / "flows.yml").write_text(
        f"flows:\n  f:\n    home: incoming\n    store: '{bucket}/lake/t'\n"
    )
    assert run_cli("run", "flows.yml", cwd=tmp_path).returncode == 0
    assert dead in objects(emu, bucket)  # young: could belong to a live run
    monkeypatch.setattr(object_dataset, "STALE_STAGING_SECONDS", 0)
    import asyncio

    from hygge.stores.parquet import ParquetStore

    store = ParquetStore("t", path=f"{bucket}/lake/t")
    asyncio.run(store.open())
    asyncio.run(store.abort())
    left = objects(emu, bucket)
    assert dead not in left and f"{bucket}/lake/other/keep.parquet" in left
