"""File entities on object storage (the S3 emulator as a real server): one entity per prefix
below the part before `{entity}`, each exact; a prefix gone is reported from the list kept
as an object beside the data."""

from __future__ import annotations

from pathlib import Path

from tests.checks import fingerprint
from tests.conftest import run_cli
from tests.objectstore import _fs_path, download, objects, upload
from tests.test_entities_files import drop


def test_entities_on_object_storage(emulators, tmp_path: Path) -> None:
    emu = emulators["s3"]
    bucket = emu.new_bucket()
    for name, rows in (("orders", 9), ("refunds", 4)):
        local = drop(tmp_path / "local" / name, "part", rows)
        upload(emu, local, f"{bucket}/drops/{name}/part.csv")
    upload(emu, local, f"{bucket}/drops/notes/readme.txt")  # no CSV: skipped
    (tmp_path / "flows.yml").write_text(
        f"""
flows:
  drops:
    home: {{type: csv, path: "{bucket}/drops/{{entity}}/*.csv"}}
    store: {{type: parquet, path: "{bucket}/lake/{{entity}}"}}
"""
    )
    checked = run_cli("validate", "flows.yml", cwd=tmp_path, env=emu.env)
    assert checked.returncode == 0, checked.stderr
    assert "drops: 2 entities in" in checked.stdout and "notes: no objects match" in checked.stdout
    done = run_cli("run", "flows.yml", cwd=tmp_path, env=emu.env)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("orders", "refunds"):
        got = download(emu, f"{bucket}/lake/{name}", tmp_path / "out" / name)
        source = fingerprint(tmp_path / "local" / name / "part.csv")
        assert fingerprint(f"{got}/*.parquet") == source, name
    assert f"{bucket}/lake/_hygge/entities/drops.json" in objects(emu, f"{bucket}/lake")

    emu.filesystem().delete_file(_fs_path(f"{bucket}/drops/refunds/part.csv"))
    again = run_cli("run", "flows.yml", cwd=tmp_path, env=emu.env)
    assert again.returncode == 0, again.stderr
    assert "warning: drops: entity 'refunds' was in the last run" in again.stdout
