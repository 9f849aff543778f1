"""A file store's dataset in a local (or shared-volume) folder.

Layout: the dataset is the folder at `path`. A run stages its files in a hidden sibling
folder (`.NAME.hygge-staging-RUN`, owned through an flock, see `_staging.py`), never inside
the dataset, so a reader globbing `path/**/*.parquet` only ever sees committed files.

- replace: the staged folder (with the states and the commit marker) is swapped in for the
  dataset in one atomic rename (`_atomic.py`).
- append: the journal (`_dataset.py`) lists the renames; a run that dies midway is rolled
  forward by the next run.
- parts: each part stages in its own folder under `.NAME.hygge-parts-RUN/`; the commit
  hard-links every part's files into one staging folder (metadata, no bytes copied) and
  publishes that as above. The parts stay until `remove_parts`, so a commit that died midway
  is simply done again: the same files under the same names.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from hygge.errors import StoreError
from hygge.locks import file_name
from hygge.stores._atomic import recover, replace_dir
from hygge.stores._dataset import (
    ABANDONED_PARTS_SECONDS,
    META_DIR,
    PARTS_MARK,
    Dataset,
    log,
)
from hygge.stores._staging import StagingLock, sweep_abandoned_parts, sweep_dead


class LocalDataset(Dataset):
    """A dataset folder on a local or shared file system."""

    def __init__(self, url: str, run_id: str, type_name: str) -> None:
        super().__init__(str(Path(url)), run_id)
        self.target = Path(self.url)
        self.type_name = type_name
        self._lock = StagingLock(Path(self.staging))

    # -- storage primitives -----------------------------------------------------------------
    def read_bytes(self, ref: str) -> bytes | None:
        try:
            return Path(ref).read_bytes()
        except FileNotFoundError:
            return None

    def write_bytes(self, ref: str, data: bytes) -> None:
        path = Path(ref)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        fsync(tmp)
        os.replace(tmp, path)

    def exists(self, ref: str) -> bool:
        return os.path.exists(ref)

    def publish(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def delete(self, ref: str) -> None:
        Path(ref).unlink(missing_ok=True)

    def delete_tree(self, ref: str) -> None:
        shutil.rmtree(ref, ignore_errors=True)

    def listing(self, ref: str) -> list[tuple[str, int]]:
        folder = Path(ref)
        if not folder.is_dir():
            return []
        return sorted((str(p), p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file())

    # -- lifecycle ----------------------------------------------------------------------------
    def check(self) -> None:
        self._check_target()
        parent = self._existing_parent()
        if not os.access(parent, os.W_OK | os.X_OK):
            raise self._unwritable(parent)

    def prepare(self) -> None:
        self._check_target()
        recover(self.target)
        self.roll_forward()
        staging = Path(self.staging)
        try:
            staging.parent.mkdir(parents=True, exist_ok=True)
            sweep_dead(self.target)  # leftovers of runs that were killed
            sweep_abandoned_parts(self.target, PARTS_MARK, ABANDONED_PARTS_SECONDS)
            self._lock.acquire()
            staging.mkdir()
        except PermissionError as exc:
            raise self._unwritable(self._existing_parent()) from exc
        except OSError as exc:
            raise StoreError(f"cannot create {staging}: {exc.strerror}") from exc

    def prepare_part(self, part: str) -> None:
        self._check_target()
        self.staging = self.part_staging(part)
        try:
            Path(self.staging).mkdir(parents=True)
        except PermissionError as exc:
            raise self._unwritable(self._existing_parent()) from exc
        except OSError as exc:
            raise StoreError(f"cannot create {self.staging}: {exc.strerror}") from exc

    def new_file(self, name: str) -> tuple[str, Any]:
        path = f"{self.staging}/{name}"
        self.files.append(path)
        return path, path

    def close_file(self, sink: Any) -> None:
        """Nothing: the format writer wrote to the path and closed it."""

    def open_staged(self, ref: str) -> Any:
        return ref

    def seal(self) -> None:
        for f in self.files:
            fsync(Path(f))
        fsync(Path(self.staging))

    def commit(self, mode: str, states: dict[str, Any], key: str | None) -> None:
        staging = Path(self.staging)
        if self.committed(key):  # an earlier attempt of this run landed: nothing more
            shutil.rmtree(staging, ignore_errors=True)
            self._lock.release()
            return
        for f in self.files:  # data must be on disk before it becomes visible
            fsync(Path(f))
        if mode == "replace":
            meta = staging / META_DIR
            for flow, state in states.items():
                self.write_bytes(
                    str(meta / "state" / f"{file_name(flow)}.json"),
                    json.dumps(state, default=str).encode(),
                )
            if key:
                self.write_bytes(
                    str(meta / "commits" / f"{file_name(key)}.json"),
                    json.dumps({"key": key, "run": self.run_id}).encode(),
                )
            log.debug("replacing %s with its staging folder in one rename", self.target)
            old = replace_dir(staging, self.target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        else:
            self.target.mkdir(parents=True, exist_ok=True)
            moves = [(f, str(self.target / Path(f).name)) for f in self.files]
            self.write_journal(mode, key, moves, staging=[self.staging], states=states)
            self.apply_journal(self.journal)
        fsync(self.target.parent)
        self._lock.release()

    def commit_parts(
        self, mode: str, states: dict[str, Any], key: str | None, parts: list[dict[str, Any]]
    ) -> None:
        self.prepare()  # recover, roll journals forward, sweep, a locked staging folder
        try:
            if not self.committed(key):
                staging = Path(self.staging)
                for description in parts:
                    for name in description.get("files", []):
                        source = Path(name)
                        if not source.is_file():
                            raise missing_part(description, name, self.url)
                        # A link, not a move: the parts stay whole until the publish is done.
                        os.link(source, staging / source.name)
                        self.files.append(str(staging / source.name))
                fsync(staging)
            self.commit(mode, states, key)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        if os.path.exists(self.journal):
            # The commit point was passed: finishing it is the only consistent outcome. If
            # that fails too, the next run rolls the journal forward from the staged files.
            with contextlib.suppress(Exception):
                self.complete_journal(self.journal)
        else:  # a run's staging, or one part's attempt
            shutil.rmtree(self.staging, ignore_errors=True)
        self._lock.release()

    def remove_parts(self, parts: list[dict[str, Any]]) -> None:
        for root in {self.parts_root(p["part"]) for p in parts}:
            shutil.rmtree(root, ignore_errors=True)

    # -- helpers ------------------------------------------------------------------------------
    def _check_target(self) -> None:
        if self.target.exists() and not self.target.is_dir():
            raise StoreError(
                f"{self.target} is a file, but a {self.type_name} store writes a folder",
                hint="point `path` at a folder (it is created if missing)",
            )

    def _existing_parent(self) -> Path:
        parent = self.target.parent
        while not parent.exists():
            parent = parent.parent
        return parent

    def _unwritable(self, where: Path) -> StoreError:
        return StoreError(
            f"cannot write to {self.target}: {where} is not writable",
            hint="choose a writable path or fix the folder's permissions",
        )


def missing_part(description: dict[str, Any], name: str, where: str) -> StoreError:
    return StoreError(
        f"part {description['part']} of {where}: staged file {name} is missing; "
        "nothing was committed",
        hint="parts must stage where the committing process can read them (object "
        "storage, or a volume every worker shares); run the flow again",
    )


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
