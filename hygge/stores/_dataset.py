"""The one dataset interface of the file stores, and the one commit journal they share.

A file store (parquet, CSV) writes a *dataset*: a local folder (`LocalDataset`) or an
object-store prefix (`ObjectDataset`). Both stage outside the dataset, publish through the
same journal and keep the same metadata under `<dataset>/_hygge/`:

- `journal/commit-RUN.json`: what a commit does, written whole before any of it is done.
  Its existence is the commit point: from then on the commit completes, by the run itself or
  by the next run that opens the dataset (`roll_forward`). Applying it is idempotent.
- `state/FLOW.json`: a flow's incremental state, written by the same journal as its data.
- `commits/KEY.json`: the marker of a landed commit made under a commit key (one run of a
  flow, across all its attempts, retries and re-deliveries). A commit whose key has landed
  already publishes nothing: a retry after an interrupted commit never appends twice.

The journal (one format for both):
    {"mode": "append"|"replace", "key": KEY|null, "moves": [[src, dst], ...],
     "deletes": [url, ...], "states": {flow: state}, "staging": [prefix, ...],
     "uploads": {src: upload}, "created_at"}
`uploads` (S3 only, `s3_dataset.py`): for each staged file that is an open multipart upload
under its final name, what completing it needs (upload id, parts and their ETags).
"""

from __future__ import annotations

import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from hygge.locks import file_name
from hygge.secrets import mask_url

log = logging.getLogger("hygge.stores")  # -v: the steps of a commit

META_DIR = "_hygge"
STAGING_MARK = ".hygge-staging-"
PARTS_MARK = ".hygge-parts-"
# A commit marker is kept this long: any retry or re-delivery of a run comes well within it.
MARKER_SECONDS = 7 * 24 * 3600
ABANDONED_PARTS_SECONDS = 7 * 24 * 3600  # a partitioned run's parts no commit came for


class Dataset(ABC):
    """A dataset's storage primitives (subclasses) and the journal, state and commit markers
    built on them (here, once)."""

    def __init__(self, url: str, run_id: str) -> None:
        self.url = url.rstrip("/")
        self.run_id = run_id
        parent, _, name = self.url.rpartition("/")
        self.parent, self.name = parent, name
        self.staging = f"{parent}/.{name}{STAGING_MARK}{run_id}"
        self.files: list[str] = []  # staged files, in the order they were written
        # Rows by flow of interrupted commits this dataset completed (`complete_journal`);
        # the store shares one dict across its attempts' datasets.
        self.completed: dict[str, int] = {}

    # -- storage primitives -----------------------------------------------------------------
    @abstractmethod
    def read_bytes(self, ref: str) -> bytes | None:
        """The whole (small) file, or None."""

    @abstractmethod
    def write_bytes(self, ref: str, data: bytes) -> None:
        """Write a whole small file atomically (a reader sees all of it or nothing)."""

    @abstractmethod
    def exists(self, ref: str) -> bool: ...

    @abstractmethod
    def publish(self, src: str, dst: str) -> None:
        """Put a staged file at its place in the dataset (rename locally, copy remotely)."""

    def publish_all(self, moves: list[tuple[str, str]], uploads: dict[str, Any]) -> None:
        """Publish a journal's staged files (idempotent: a file published already is gone
        from staging, or is published again with the same bytes)."""
        for src, dst in moves:
            if self.exists(src):
                self.publish(src, dst)

    @abstractmethod
    def delete(self, ref: str) -> None:
        """Delete a file; a missing one is not an error (deletes are repeated)."""

    @abstractmethod
    def delete_tree(self, ref: str) -> None:
        """Delete a folder (prefix) and everything below it."""

    @abstractmethod
    def listing(self, ref: str) -> list[tuple[str, int]]:
        """(file, mtime in ns) of the files directly in folder `ref`, sorted."""

    def meta(self, *parts: str) -> str:
        return "/".join([self.url, META_DIR, *parts])

    # -- lifecycle (per kind of storage) ------------------------------------------------------
    @abstractmethod
    def check(self) -> None:
        """Can the dataset be written? (validate, --dry-run)"""

    @abstractmethod
    def prepare(self) -> None:
        """Before a run stages: finish commits of killed runs, sweep their leftovers, make
        this run's staging."""

    @abstractmethod
    def prepare_part(self, part: str) -> None:
        """Stage one part of a partitioned run, in a folder of its own under the run's
        parts folder."""

    @abstractmethod
    def new_file(self, name: str) -> tuple[str, Any]:
        """A new staged file: (its reference, what the format writer writes to)."""

    @abstractmethod
    def close_file(self, sink: Any) -> None:
        """Close what `new_file` returned (after the format writer)."""

    @abstractmethod
    def open_staged(self, ref: str) -> Any:
        """A staged file for reading back (footers)."""

    @abstractmethod
    def seal(self) -> None:
        """Make the staged files durable (a part outlives its process)."""

    @abstractmethod
    def commit(self, mode: str, states: dict[str, Any], key: str | None) -> None:
        """Publish the staged files (and the states) at once."""

    @abstractmethod
    def commit_parts(
        self, mode: str, states: dict[str, Any], key: str | None, parts: list[dict[str, Any]]
    ) -> None:
        """Publish every part's files (and the states) at once; idempotent."""

    @abstractmethod
    def abort(self) -> None:
        """Before the commit point: drop the staging. After it: finish the commit."""

    @abstractmethod
    def remove_parts(self, parts: list[dict[str, Any]]) -> None:
        """Delete the parts folders of the runs these parts belong to."""

    def parts_root(self, part: str) -> str:
        """Where every part of the flow run `part` belongs to stages."""
        run = part.split(".", 1)[0]
        return f"{self.parent}/.{self.name}{PARTS_MARK}{run}"

    def part_staging(self, part: str) -> str:
        """A part's own staging folder: each attempt has its own, so a re-run part never
        mixes with what a dead attempt left (which the commit ignores)."""
        return f"{self.parts_root(part)}/{part.split('.', 1)[-1]}-{self.run_id}"

    # -- the journal --------------------------------------------------------------------------
    @property
    def journal(self) -> str:
        return self.meta("journal", f"commit-{self.run_id}.json")

    def write_journal(
        self,
        mode: str,
        key: str | None,
        moves: list[tuple[str, str]],
        deletes: Sequence[str] = (),
        staging: Sequence[str] = (),
        states: dict[str, Any] | None = None,
        uploads: dict[str, Any] | None = None,
    ) -> None:
        """The commit point: once this file exists the commit completes, whatever happens."""
        plan = {
            "mode": mode,
            "key": key,
            "moves": [list(m) for m in moves],
            "deletes": list(deletes),
            "states": states or {},
            "staging": list(staging),
            "uploads": uploads or {},
            "created_at": datetime.now(UTC).isoformat(),
        }
        self.write_bytes(self.journal, json.dumps(plan, default=str).encode())
        log.debug(
            "journal %s written (the commit point): %d file(s) to publish, %d to delete, "
            "%d state(s)",
            mask_url(self.journal),
            len(moves),
            len(deletes),
            len(states or {}),
        )

    def apply_journal(self, journal: str) -> dict[str, Any]:
        """Complete a committed run (idempotent; safe to repeat after a crash at any step):
        publish the staged files, delete the files they replace, write the states and the
        commit marker, clean up, and drop the journal last. Returns the states published."""
        data = self.read_bytes(journal)
        if data is None:
            return {}  # completed meanwhile by another run
        plan = json.loads(data)
        self.publish_all([(src, dst) for src, dst in plan["moves"]], plan.get("uploads") or {})
        new = {dst for _, dst in plan["moves"]}
        for old in plan.get("deletes", []):
            if old not in new:
                self.delete(old)
        for flow, state in plan.get("states", {}).items():
            self.write_bytes(self.state_file(flow), json.dumps(state, default=str).encode())
        if plan.get("key"):
            self.mark_committed(plan["key"])
        staging = plan.get("staging", [])
        for folder in [staging] if isinstance(staging, str) else staging:  # older journals
            self.delete_tree(folder)
        self.delete(journal)
        log.debug(
            "journal %s applied: %d file(s) published into %s, staging removed",
            mask_url(journal),
            len(plan["moves"]),
            mask_url(self.url),
        )
        return dict(plan.get("states", {}))

    def complete_journal(self, journal: str) -> None:
        """Complete a commit that was interrupted (a killed run's, or this run's own failed
        attempt's): its rows were published by this run, so they count in its report
        (`completed`, from the incremental states the journal carries)."""
        for flow, state in self.apply_journal(journal).items():
            rows = state.get("rows") if isinstance(state, dict) else None
            if isinstance(rows, int) and rows > 0:
                self.completed[flow] = self.completed.get(flow, 0) + rows

    def roll_forward(self) -> None:
        """Complete every commit whose journal is there (runs killed after their commit
        point), and forget commit markers too old to matter."""
        for journal, _ in self.listing(self.meta("journal")):
            if journal.rsplit("/", 1)[-1].startswith("commit-"):
                log.debug(
                    "%s: completing the commit of a run stopped after its commit point",
                    mask_url(self.url),
                )
                self.complete_journal(journal)
        cutoff = time.time_ns() - MARKER_SECONDS * 1_000_000_000
        for marker, mtime in self.listing(self.meta("commits")):
            if mtime and mtime < cutoff:
                self.delete(marker)

    # -- commit keys ------------------------------------------------------------------------
    def marker(self, key: str) -> str:
        return self.meta("commits", f"{file_name(key)}.json")

    def mark_committed(self, key: str) -> None:
        self.write_bytes(self.marker(key), json.dumps({"key": key, "run": self.run_id}).encode())

    def committed(self, key: str | None) -> bool:
        """Has a commit under `key` landed? (An earlier attempt of the same run whose
        commit completed, by itself or rolled forward.)"""
        return key is not None and self.exists(self.marker(key))

    # -- incremental state ------------------------------------------------------------------
    def state_file(self, flow: str) -> str:
        return self.meta("state", f"{file_name(flow)}.json")

    def read_state(self, flow: str) -> dict[str, Any] | None:
        data = self.read_bytes(self.state_file(flow))
        return json.loads(data) if data is not None else None

    def reset_state(self, flow: str) -> bool:
        existed = self.read_bytes(self.state_file(flow)) is not None
        self.delete(self.state_file(flow))
        return existed
