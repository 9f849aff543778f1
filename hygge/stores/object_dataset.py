"""A file store's dataset on object storage: staged outside the prefix, published from the
journal of `_dataset.py` (object stores have no atomic rename). See docs/objectstore.md for
what a reader sees at each moment.

Layout for a dataset at `s3://b/lake/orders`:
- staging: `s3://b/lake/.orders.hygge-staging-RUN/part-RUN-00000.parquet` (a sibling prefix:
  a reader globbing `orders/**/*.parquet` never sees it);
- parts of a partitioned run: `s3://b/lake/.orders.hygge-parts-FLOWRUN/p0003-RUN/...`; the
  commit's journal lists every part's files, so the commit costs one small PUT plus a
  server-side copy per file (no bytes through the committing process; copies run
  `PUBLISH_THREADS` at a time);
- journal: `s3://b/lake/orders/_hygge/journal/commit-RUN.json`, written in one PUT (an object
  appears whole or not at all). Its existence is the commit point;
- state and commit markers: `s3://b/lake/orders/_hygge/{state,commits}/...`.

On S3 and Azure Blob the staged files are not copied at all: `S3Dataset` (`s3_dataset.py`)
stages each file as a multipart upload under its final name, `AzureDataset`
(`azure_dataset.py`) as uncommitted blocks, and publishing completes it (`dataset_class`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import pyarrow as pa

from hygge.errors import StoreError
from hygge.secrets import mask_url
from hygge.storage import Location, ObjectStorage
from hygge.storage.objects import StorageError
from hygge.stores._dataset import (
    ABANDONED_PARTS_SECONDS,
    META_DIR,
    PARTS_MARK,
    STAGING_MARK,
    Dataset,
)
from hygge.stores._local_dataset import missing_part

T = TypeVar("T")
# A staging prefix with no journal whose newest object is older than this belongs to a run
# that died (a live run writes a part at least every `max_rows_per_file` rows); swept.
STALE_STAGING_SECONDS = 6 * 3600
PUBLISH_THREADS = 8  # publishing is one request per file: overlap their round trips


class ObjectDataset(Dataset):
    """Staging, journal, commit and state of one dataset prefix on an object store."""

    def __init__(self, url: str, storage_options: Mapping[str, str] | None, run_id: str) -> None:
        super().__init__(url, run_id)
        location = Location.parse(self.url)
        if not location.key:
            raise StoreError(
                f"{mask_url(self.url)} is a bucket root; a store writes a prefix inside it",
                hint=f"use {location.scheme}://{location.bucket}/NAME",
            )
        self.storage = ObjectStorage.for_url(self.url, storage_options)

    # -- storage primitives -----------------------------------------------------------------
    def read_bytes(self, ref: str) -> bytes | None:
        return self.storage.read_bytes(ref)

    def write_bytes(self, ref: str, data: bytes) -> None:
        self.storage.write_bytes(ref, data)

    def exists(self, ref: str) -> bool:
        return self.storage.info(ref) is not None

    def publish(self, src: str, dst: str) -> None:
        self.storage.copy(src, dst)

    def publish_all(self, moves: list[tuple[str, str]], uploads: dict[str, Any]) -> None:
        with ThreadPoolExecutor(PUBLISH_THREADS, thread_name_prefix="hygge-publish") as pool:
            for done in [pool.submit(self._publish_one, s, d, uploads) for s, d in moves]:
                done.result()

    def _publish_one(self, src: str, dst: str, uploads: dict[str, Any]) -> None:
        if self.exists(src):
            self.publish(src, dst)

    def final_name(self, staged: str) -> str:
        """Where a staged file is published."""
        return f"{self.url}/{staged.rsplit('/', 1)[1]}"

    def drop_staged(self, prefix: str) -> None:
        """Delete staged files that will never be published (and what they hold)."""
        self.storage.delete_prefix(prefix)

    def staged_exists(self, ref: str) -> bool:
        """Is a part's staged file there for the commit?"""
        return self.exists(ref)

    def upload_records(self, moves: list[tuple[str, str]]) -> dict[str, Any]:
        """What the journal keeps to publish these staged files (nothing for a copy)."""
        return {}

    def delete(self, ref: str) -> None:
        self.storage.delete(ref)

    def delete_tree(self, ref: str) -> None:
        self.storage.delete_prefix(ref)

    def listing(self, ref: str) -> list[tuple[str, int]]:
        return [(e.url, e.mtime_ns) for e in self.storage.list(ref)]

    # -- lifecycle ----------------------------------------------------------------------------
    def check(self) -> None:
        self._guard(self.storage.check_bucket)

    def prepare(self) -> None:
        """Finish commits of killed runs, sweep their abandoned staging, check access."""

        def prepare() -> None:
            self.storage.check_bucket()
            self.roll_forward()
            self._sweep_stale()

        self._guard(prepare)

    def prepare_part(self, part: str) -> None:
        self.staging = self.part_staging(part)
        self._guard(self.storage.check_bucket)

    def _sweep_stale(self) -> None:
        """Delete staging prefixes of this dataset left by dead runs, and parts of
        partitioned runs no commit came for (one level listed, so a big lake beside the
        dataset is not walked)."""
        now = time.time_ns()
        ages = {STAGING_MARK: STALE_STAGING_SECONDS, PARTS_MARK: ABANDONED_PARTS_SECONDS}
        for folder in self.storage.folders(self.parent):
            for mark, seconds in ages.items():
                if not folder.startswith(f"{self.parent}/.{self.name}{mark}"):
                    continue
                if folder == self.staging:
                    continue
                entries = self.storage.list(folder)
                newest = max((e.mtime_ns for e in entries), default=0)
                if now - newest > seconds * 1_000_000_000:
                    self.drop_staged(folder)

    def new_file(self, name: str) -> tuple[str, Any]:
        url = f"{self.staging}/{name}"
        self.files.append(url)
        return url, self._guard(lambda: self.storage.open_output(url))

    def close_file(self, sink: Any) -> None:
        sink.close()  # completes the multipart upload: the object now exists

    def open_staged(self, ref: str) -> pa.NativeFile:
        return self._guard(lambda: self.storage.open_input(ref))

    def seal(self) -> None:
        """Nothing: an uploaded object is durable once its upload completed."""

    def commit(self, mode: str, states: dict[str, Any], key: str | None) -> None:
        def commit() -> None:
            if self.committed(key):  # an earlier attempt of this run landed: nothing more
                self.drop_staged(self.staging)
                return
            moves = [(f, self.final_name(f)) for f in self.files]
            self._publish(mode, key, moves, [self.staging], states)

        self._guard(commit)

    def commit_parts(
        self, mode: str, states: dict[str, Any], key: str | None, parts: list[dict[str, Any]]
    ) -> None:
        self.prepare()

        def commit() -> None:
            if self.committed(key):
                return
            moves = []
            for description in parts:
                for name in description.get("files", []):
                    if not self.staged_exists(name):
                        raise missing_part(description, mask_url(name), mask_url(self.url))
                    moves.append((name, self.final_name(name)))
            # The parts stay where they are (no staging to drop): `remove_parts` deletes
            # them once the flow run is over, so a repeated commit finds them again.
            self._publish(mode, key, moves, [], states)

        self._guard(commit)

    def _publish(
        self,
        mode: str,
        key: str | None,
        moves: list[tuple[str, str]],
        staging: list[str],
        states: dict[str, Any],
    ) -> None:
        deletes: list[str] = []
        if mode == "replace":
            meta = f"{self.url}/{META_DIR}/"
            deletes = [e.url for e in self.storage.list(self.url) if not e.url.startswith(meta)]
        uploads = self.upload_records(moves)
        self.write_journal(mode, key, moves, deletes, staging, states, uploads)
        self.apply_journal(self.journal)

    def abort(self) -> None:
        """Before the commit point: drop the staging. After it: finish the commit. When the
        store cannot be reached, leave both: the next run completes a journal, and sweeps a
        staging prefix without one once it is stale."""
        with contextlib.suppress(StorageError, OSError):
            if self.storage.read_bytes(self.journal) is not None:
                self.complete_journal(self.journal)
            else:
                self.drop_staged(self.staging)

    def remove_parts(self, parts: list[dict[str, Any]]) -> None:
        """Delete the parts, but never under a journal still to apply: its moves copy from
        them. When that journal cannot be completed now, the parts stay (the next run
        completes it; abandoned parts are swept after a week)."""
        try:
            self.roll_forward()
        except (StorageError, OSError):
            return
        for root in {self.parts_root(p["part"]) for p in parts}:
            self._guard(partial(self.drop_staged, root))

    # -- incremental state ----------------------------------------------------------------
    def read_state(self, flow: str) -> dict[str, Any] | None:
        return self._guard(lambda: super(ObjectDataset, self).read_state(flow))

    def reset_state(self, flow: str) -> bool:
        return self._guard(lambda: super(ObjectDataset, self).reset_state(flow))

    def _guard(self, action: Callable[[], T]) -> T:
        try:
            return action()
        except StorageError as exc:
            raise StoreError(exc.message, hint=exc.hint, transient=exc.transient) from exc


def dataset_class(url: str) -> type[ObjectDataset]:
    """How a dataset at `url` stages its files: S3 as open multipart uploads and Azure Blob as
    uncommitted blocks, both under their final names (a commit completes them); GCS and
    OneLake as copies in a staging prefix."""
    from hygge.storage.onelake import is_onelake

    cloud = Location.parse(url).cloud
    if cloud == "s3":
        from hygge.stores.s3_dataset import S3Dataset

        return S3Dataset
    if cloud == "azure" and not is_onelake(url):
        from hygge.stores.azure_dataset import AzureDataset

        return AzureDataset
    return ObjectDataset
