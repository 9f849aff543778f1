"""The run lock of an S3 destination (conditional writes on the S3 emulator): a second run of
one flow is refused while the first lives; a holder that died stops renewing and its lock is
taken over after it expires; only one of two takers wins."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from hygge.errors import FlowLocked
from hygge.storage.lock import ObjectLock, lock_url
from tests.conftest import ROOT, run_cli
from tests.objectstore import objects

pytestmark = pytest.mark.slow


def test_lock_is_exclusive_renewed_and_taken_over_after_expiry(emulators, cloud_env, monkeypatch):
    emu = emulators["s3"]
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
    second.release()
    assert third.try_acquire()
    third.release()
    assert lock_url(dataset, "f") not in objects(emu, dataset.rsplit("/", 1)[0])


def test_locked_message(emulators, cloud_env):
    import asyncio

    emu = emulators["s3"]
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


def test_a_second_hygge_run_into_one_s3_dataset_is_refused(emulators, cloud_env, tmp_path: Path):
    emu = emulators["s3"]
    cloud_env(emu)
    bucket = emu.new_bucket()
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for i in range(40):
        pl.DataFrame({"id": range(i * 500, (i + 1) * 500)}).write_parquet(
            incoming / f"d{i}.parquet"
        )
    (tmp_path / "flows.yml").write_text(
        f"flows:\n  f:\n    home: incoming\n"
        f"    store: {{path: '{bucket}/lake/t', mode: append, max_rows_per_file: 50}}\n"
    )
    first = subprocess.Popen(
        [sys.executable, "-m", "hygge", "run", "flows.yml"],
        cwd=tmp_path,
        env={**os.environ, **emu.env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not any(".t.hygge-lock." in o for o in objects(emu, f"{bucket}/lake")):
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    second = run_cli("run", "flows.yml", cwd=tmp_path, timeout=300)
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert second.returncode != 0 and "already running" in second.stderr, second.stderr
    assert not any(".hygge-lock." in o for o in objects(emu, f"{bucket}/lake"))
