"""A file store's dataset on object storage: staged outside the prefix, published from a
journal (object stores have no atomic rename). See docs/objectstore.md for what a reader
sees at each moment.

Layout for a dataset at `s3://b/lake/orders`:
- staging: `s3://b/lake/.orders.hygge-staging-RUN/part-RUN-00000.parquet` (a sibling prefix:
  a reader globbing `orders/**/*.parquet` never sees it);
- journal: `s3://b/lake/orders/_hygge/journal/commit-RUN.json`, written in one PUT (an object
  appears whole or not at all). Its existence is the commit point: from then on the run is
  completed, by itself or by the next run that opens the dataset;
- state: `s3://b/lake/orders/_hygge/state/FLOW.json`, written while applying the journal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from hygge.errors import StoreError
from hygge.secrets import mask_url
from hygge.storage import Location, ObjectStorage, join
from hygge.storage.objects import StorageError

META_DIR = "_hygge"
STAGING_MARK = ".hygge-staging-"
# A staging prefix with no journal whose newest object is older than this belongs to a run
# that died (a live run writes a part at least every `max_rows_per_file` rows); swept.
STALE_STAGING_SECONDS = 6 * 3600


class ObjectDataset:
    """Staging, journal, commit and state of one dataset prefix on an object store."""

    def __init__(self, url: str, storage_options: Mapping[str, str] | None, run_id: str) -> None:
        self.url = url.rstrip("/")
        location = Location.parse(self.url)
        if not location.key:
            raise StoreError(
                f"{mask_url(self.url)} is a bucket root; a store writes a prefix inside it",
                hint=f"use {location.scheme}://{location.bucket}/NAME",
            )
        self.storage = ObjectStorage.for_url(self.url, storage_options)
        self.run_id = run_id
        parent, name = self.url.rsplit("/", 1)
        self.parent, self.name = parent, name
        self.staging = f"{parent}/.{name}{STAGING_MARK}{run_id}"
        self.journal = join(self.url, META_DIR, "journal", f"commit-{run_id}.json")
        self.files: list[str] = []

    # -- before writing -------------------------------------------------------------------
    def check(self) -> None:
        self._guard(self.storage.check_bucket)

    def prepare(self) -> None:
        """Finish commits of killed runs, sweep their abandoned staging, check access."""
        self._guard(self._prepare)

    def _prepare(self) -> None:
        self.storage.check_bucket()
        for entry in self.storage.list(join(self.url, META_DIR, "journal")):
            apply_journal(self.storage, entry.url)
        self._sweep_stale()

    def _sweep_stale(self) -> None:
        """Delete staging prefixes of this dataset left by dead runs (one level listed, so a
        big lake beside the dataset is not walked)."""
        mark = f"{self.parent}/.{self.name}{STAGING_MARK}"
        now = time.time_ns()
        for folder in self.storage.folders(self.parent):
            if not folder.startswith(mark) or folder == self.staging:
                continue
            entries = self.storage.list(folder)
            newest = max((e.mtime_ns for e in entries), default=0)
            if now - newest > STALE_STAGING_SECONDS * 1_000_000_000:
                for entry in entries:
                    self.storage.delete(entry.url)

    # -- writing --------------------------------------------------------------------------
    def new_file(self, file_name: str) -> tuple[str, pa.NativeFile]:
        url = f"{self.staging}/{file_name}"
        self.files.append(url)
        return url, self._guard(lambda: self.storage.open_output(url))

    def open_staged(self, url: str) -> pa.NativeFile:
        return self._guard(lambda: self.storage.open_input(url))

    # -- commit / abort ---------------------------------------------------------------------
    def commit(self, mode: str, states: dict[str, dict[str, Any]]) -> None:
        self._guard(lambda: self._commit(mode, states))

    def _commit(self, mode: str, states: dict[str, dict[str, Any]]) -> None:
        deletes: list[str] = []
        if mode == "replace":
            meta = join(self.url, META_DIR) + "/"
            deletes = [e.url for e in self.storage.list(self.url) if not e.url.startswith(meta)]
        plan = {
            "mode": mode,
            "staging": self.staging,
            "moves": [[f, join(self.url, f.rsplit("/", 1)[1])] for f in self.files],
            "deletes": deletes,
            "states": states,
            "created_at": datetime.now(UTC).isoformat(),
        }
        self.storage.write_bytes(self.journal, json.dumps(plan, default=str).encode())
        apply_journal(self.storage, self.journal)

    def abort(self) -> None:
        """Before the commit point: drop the staging. After it: finish the commit."""
        if self.storage.read_bytes(self.journal) is not None:
            apply_journal(self.storage, self.journal)
        else:
            self.storage.delete_prefix(self.staging)

    # -- incremental state ----------------------------------------------------------------
    def state_url(self, flow: str) -> str:
        return join(self.url, META_DIR, "state", f"{flow}.json")

    def read_state(self, flow: str) -> dict[str, Any] | None:
        data = self._guard(lambda: self.storage.read_bytes(self.state_url(flow)))
        return json.loads(data) if data is not None else None

    def reset_state(self, flow: str) -> bool:
        existed = self.read_state(flow) is not None
        self._guard(lambda: self.storage.delete(self.state_url(flow)))
        return existed

    def _guard(self, action):
        try:
            return action()
        except StorageError as exc:
            raise StoreError(exc.message, hint=exc.hint, transient=exc.transient) from exc


def apply_journal(storage: ObjectStorage, journal: str) -> None:
    """Complete a committed run (idempotent; safe to repeat after a crash at any step):
    copy staged files in, delete the files they replace, write the states, then clean up."""
    data = storage.read_bytes(journal)
    if data is None:
        return  # completed meanwhile by another run
    plan = json.loads(data)
    for src, dst in plan["moves"]:
        if storage.info(src) is not None:
            storage.copy(src, dst)  # a repeat after a crash re-copies the same bytes
    new = {dst for _, dst in plan["moves"]}
    for old in plan["deletes"]:
        if old not in new:
            storage.delete(old)
    dataset = journal.rsplit(f"/{META_DIR}/", 1)[0]
    for flow, state in plan.get("states", {}).items():
        storage.write_bytes(
            join(dataset, META_DIR, "state", f"{flow}.json"),
            json.dumps(state, default=str).encode(),
        )
    storage.delete_prefix(plan["staging"])
    storage.delete(journal)
