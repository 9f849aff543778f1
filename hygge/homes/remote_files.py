"""The input files of a file home on object storage: one object, a prefix, or a glob."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from hygge.errors import HomeError
from hygge.secrets import mask_url
from hygge.storage import ObjectStorage
from hygge.storage.objects import GLOB_CHARS, Entry, StorageError


class RemoteFiles:
    """Expands a home's URL into objects (sorted, as locally) and opens them for reading."""

    def __init__(self, url: str, storage_options: Mapping[str, str] | None) -> None:
        self.url = url
        self.storage = ObjectStorage.for_url(url, storage_options)
        self._entries: dict[str, Entry] = {}

    def expand(self, suffixes: tuple[str, ...]) -> list[str]:
        """Like `hygge.files.expand_paths`: a glob, one object, or every data object below a
        prefix (hidden `.x` / `_x` folders such as staging areas and `_hygge` skipped)."""
        try:
            entries = self._expand(suffixes)
        except StorageError as exc:
            raise HomeError(exc.message, hint=exc.hint, transient=exc.transient) from exc
        self._entries = {e.url: e for e in entries}
        return [e.url for e in entries]

    def _expand(self, suffixes: tuple[str, ...]) -> list[Entry]:
        where = mask_url(self.url)
        if GLOB_CHARS & set(self.url):
            found = self.storage.glob(self.url)
            if not found:
                raise HomeError(f"no objects match {where}", hint="check the pattern and prefix")
            return found
        single = None if self.url.endswith("/") else self.storage.info(self.url)
        if single is not None:
            return [single]
        prefix = self.url.rstrip("/")
        found = [
            e
            for e in self.storage.list(prefix)
            if e.url.lower().endswith(suffixes)
            and not any(p.startswith((".", "_")) for p in e.url[len(prefix) + 1 :].split("/"))
        ]
        if not found:
            self.storage.check_bucket()  # a missing bucket says so, not "no files"
            raise HomeError(
                f"input not found: {where} holds no {'/'.join(suffixes)} objects",
                hint="check the URL; set `type` to match the files",
            )
        return found

    def stamp(self, url: str) -> list[int]:
        entry = self._entries.get(url) or self.storage.info(url)
        if entry is None:
            raise FileNotFoundError(url)
        return [entry.size, entry.mtime_ns]

    def open(self, url: str, *, random_access: bool) -> pa.NativeFile:
        if random_access:
            return self.storage.open_input(url)
        return self.storage.open_input_stream(url)

    def describe(self) -> dict[str, Any]:
        return {"url": mask_url(self.url)}
