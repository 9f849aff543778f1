"""The run lock of object-store destinations, on every emulator (S3 on moto, Azure Blob on
Azurite, GCS on fake-gcs-server; each honours the conditions): a second run of one flow is
refused while the first lives; a holder that died stops renewing and its lock is taken over
after it expires; only one of two takers wins."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from hygge.errors import FlowLocked
from hygge.exit_codes import LOCKED
from hygge.storage.lock import ObjectLock, lock_url
from tests.conftest import ROOT, run_cli
from tests.objectstore import SCHEMES, Emulator, download, objects

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", SCHEMES)
def test_lock_is_exclusive_renewed_and_taken_over_after_expiry(
    emulators, cloud_env, monkeypatch, name
):
    emu = emulators[name]
    cloud_env(emu)
    monkeypatch.setenv("HYGGE_OBJECT_LOCK_SECONDS", "2")
    dataset = f"{emu.new_bucket()}/lake/t"
    first = ObjectLock("f", "t", dataset, None)
    second = ObjectLock("f", "t", dataset, None)
    assert first.try_acquire()
    assert lock_url(dataset, "f") in objects(emu, dataset.rsplit("/", 1)[0])
    time.sleep(5)  # longer than the expiry: the holder renews, so it is still held
    assert not second.try_acquire()
    first._stop.set()  # the holder dies: no more renewals (and no release)
    first._renewer.join()  # type: ignore[union-attr]
    deadline = time.monotonic() + 60
    while not second.try_acquire():
        assert time.monotonic() < deadline, "an expired lock was never taken over"
        time.sleep(0.5)
    third = ObjectLock("f", "t", dataset, None)
    assert not third.try_acquire()  # the taker holds it now
    # The dead holder's stale tag can no longer renew it (its conditional write fails).
    assert first._tag is not None and not _renews(first)
    second.release()
    assert third.try_acquire()
    third.release()
    assert lock_url(dataset, "f") not in objects(emu, dataset.rsplit("/", 1)[0])


def _renews(lock: ObjectLock) -> bool:
    from hygge.storage.conditional import Taken

    try:
        lock.object.replace(lock._body(), lock._tag or "")
    except Taken:
        return False
    return True


@pytest.mark.parametrize("name", SCHEMES)
def test_locked_message(emulators, cloud_env, name):
    emu = emulators[name]
    cloud_env(emu)
    dataset = f"{emu.new_bucket()}/lake/t"
    holder = ObjectLock("f", "parquet:" + dataset, dataset, None)
    assert holder.try_acquire()
    with pytest.raises(FlowLocked, match="already running into") as refused:
        asyncio.run(ObjectLock("f", "parquet:" + dataset, dataset, None).acquire())
    assert "held by" in str(refused.value) and "HYGGE_OBJECT_LOCK_SECONDS" in str(refused.value)
    holder.release()
    # The same run (a worker re-delivery whose predecessor died) takes it over at once.
    mine = ObjectLock("f", "t", dataset, None, owner="run1.f")
    assert mine.try_acquire()
    mine._stop.set()  # its worker dies
    again = ObjectLock("f", "t", dataset, None, owner="run1.f")
    assert again.try_acquire() and not ObjectLock("f", "t", dataset, None, owner="x").try_acquire()
    again.release()


def _project(tmp_path: Path, bucket: str, mode: str, options: str = "") -> int:
    """24 parquet files of 500 rows (12,000 distinct ids) into `bucket/lake/t`, in files of
    50 rows (so a run lasts long enough to be caught holding its lock), with the flow's
    `options` (YAML flow mapping, e.g. "{partitions: 2}"); the rows moved."""
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for i in range(24):
        pl.DataFrame({"id": range(i * 500, (i + 1) * 500)}).write_parquet(
            incoming / f"d{i}.parquet"
        )
    (tmp_path / "flows.yml").write_text(
        f"flows:\n  f:\n    home: incoming\n"
        f"    store: {{path: '{bucket}/lake/t', mode: {mode}, max_rows_per_file: 50}}\n"
        + (f"    options: {options}\n" if options else "")
    )
    return 12_000


def _start(tmp_path: Path, emu: Emulator, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hygge", "run", "flows.yml"],
        cwd=tmp_path,
        env={**os.environ, **emu.env, **(env or {}), "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_lock(emu: Emulator, bucket: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 180
    while not any(".t.hygge-lock." in o for o in objects(emu, f"{bucket}/lake")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)


def _ids(emu: Emulator, bucket: str, tmp_path: Path) -> list[int]:
    """Every id in the dataset, read back with pyarrow from a separate client's copy."""
    local = download(emu, f"{bucket}/lake/t", tmp_path / "readback")
    files = sorted(p for p in local.rglob("*.parquet") if "_hygge" not in p.parts)
    return sorted(i for f in files for i in pq.read_table(f).column("id").to_pylist())


@pytest.mark.parametrize("name", SCHEMES)
def test_a_second_hygge_run_into_one_dataset_is_refused(emulators, cloud_env, tmp_path: Path, name):
    emu = emulators[name]
    cloud_env(emu)
    bucket = emu.new_bucket()
    rows = _project(tmp_path, bucket, "append")
    first = _start(tmp_path, emu)
    _wait_for_lock(emu, bucket, first)
    second = run_cli("run", "flows.yml", cwd=tmp_path, env=emu.env, timeout=300)
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert second.returncode == LOCKED and "already running" in second.stderr, second.stderr
    assert not any(".hygge-lock." in o for o in objects(emu, f"{bucket}/lake"))
    assert _ids(emu, bucket, tmp_path) == list(range(rows))  # once each: nothing doubled


@pytest.mark.parametrize("name", SCHEMES)
def test_a_killed_holders_lock_expires_and_is_taken_over(
    emulators, cloud_env, tmp_path: Path, name
):
    """SIGKILL a run holding its lock: the lock stays (nobody released it), so a run at once
    is refused; it expires HYGGE_OBJECT_LOCK_SECONDS after its last renewal and a run waiting
    for it (`--wait-for-lock`) takes it over and loads everything."""
    emu = emulators[name]
    cloud_env(emu)
    bucket = emu.new_bucket()
    rows = _project(tmp_path, bucket, "replace")
    env = {"HYGGE_OBJECT_LOCK_SECONDS": "6"}
    holder = _start(tmp_path, emu, env)
    _wait_for_lock(emu, bucket, holder)
    holder.send_signal(signal.SIGKILL)
    holder.communicate()
    assert any(".t.hygge-lock." in o for o in objects(emu, f"{bucket}/lake"))
    refused = run_cli("run", "flows.yml", cwd=tmp_path, env={**emu.env, **env}, timeout=300)
    assert refused.returncode == LOCKED, refused.stderr
    assert "HYGGE_OBJECT_LOCK_SECONDS" in refused.stderr, refused.stderr
    waited = run_cli(
        "run", "flows.yml", "--wait-for-lock", cwd=tmp_path, env={**emu.env, **env}, timeout=600
    )
    assert waited.returncode == 0, waited.stderr
    assert not any(".hygge-lock." in o for o in objects(emu, f"{bucket}/lake"))
    assert _ids(emu, bucket, tmp_path) == list(range(rows))


@pytest.mark.parametrize(
    ("name", "options"), [*((n, "") for n in SCHEMES), ("s3", "{partitions: 2}")]
)
def test_a_stopped_holder_whose_lock_was_taken_over_publishes_nothing(
    emulators, cloud_env, tmp_path: Path, name, options
):
    """SIGSTOP a run holding its lock (as a process whose threads a native call starves of
    the GIL: no renewals), let a second run take the expired lock over and append, then
    SIGCONT the first: it must see that the lock is no longer its own and publish nothing,
    so every row is there once, not twice. A partitioned flow checks at its one commit."""
    emu = emulators[name]
    cloud_env(emu)
    bucket = emu.new_bucket()
    rows = _project(tmp_path, bucket, "append", options)
    env = {"HYGGE_OBJECT_LOCK_SECONDS": "4"}
    holder = _start(tmp_path, emu, env)
    _wait_for_lock(emu, bucket, holder)
    holder.send_signal(signal.SIGSTOP)
    try:
        taker = run_cli(
            "run", "flows.yml", "--wait-for-lock", cwd=tmp_path, env={**emu.env, **env},
            timeout=600,
        )  # fmt: skip
    finally:
        holder.send_signal(signal.SIGCONT)
    _, err = holder.communicate(timeout=600)
    assert taker.returncode == 0, taker.stderr
    assert holder.returncode == LOCKED, err
    assert "took over the run lock" in err and "published nothing" in err, err
    assert _ids(emu, bucket, tmp_path) == list(range(rows))  # once each: nothing doubled
    assert not any(".hygge-lock." in o for o in objects(emu, f"{bucket}/lake"))


def test_azure_lock_signs_with_the_account_key(emulators, cloud_env, monkeypatch):
    """Azurite checks Shared Key signatures: the lock's own signing is accepted (the tests
    above), and a wrong key is refused clearly, as no retryable fault, the key never shown."""
    from hygge.errors import StoreError

    emu = emulators["az"]
    cloud_env(emu)
    wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk="
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", wrong)
    dataset = f"{emu.new_bucket()}/lake/t"
    with pytest.raises(StoreError, match="access denied") as refused:
        ObjectLock("f", "t", dataset, None).try_acquire()
    assert not refused.value.transient and wrong not in str(refused.value)
    assert "run lock needs" in (refused.value.hint or "")
