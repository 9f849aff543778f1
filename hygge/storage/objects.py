"""One small interface over every object store: list, glob, streaming read and write,
copy, delete. URLs in, URLs out; errors name the URL (secrets masked) and say what to do."""

from __future__ import annotations

import builtins
import contextlib
import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import pyarrow as pa
import pyarrow.fs as pafs

from hygge.errors import HyggeError
from hygge.secrets import mask_url
from hygge.storage import credentials
from hygge.storage.filesystems import filesystem
from hygge.storage.location import Location

T = TypeVar("T")
GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Entry:
    """One object: its URL, size and modification time (ns; 0 when the store has none)."""

    url: str
    size: int
    mtime_ns: int


class StorageError(HyggeError):
    """An object store refused or failed an operation."""


class ObjectStorage:
    """The objects under one bucket or container, addressed by URL."""

    def __init__(self, location: Location, options: dict[str, str]) -> None:
        self.location = location
        self.options = options
        self.fs = filesystem(location, options)

    @classmethod
    def for_url(cls, url: str, storage_options: Mapping[str, Any] | None = None) -> ObjectStorage:
        return cls(Location.parse(url), credentials.resolve(storage_options))

    # -- addressing ---------------------------------------------------------------------
    def _path(self, url: str) -> str:
        loc = Location.parse(url)
        if loc.bucket != self.location.bucket:
            raise ValueError(f"{url} is outside {self.location.url}")
        return loc.fs_path

    # -- reading ------------------------------------------------------------------------
    def list(self, url: str) -> list[Entry]:
        """Every object below the prefix `url` (recursively), sorted by URL."""
        selector = pafs.FileSelector(self._path(url), recursive=True, allow_not_found=True)
        infos = self._call(url, "list", lambda: self.fs.get_file_info(selector))
        return sorted(
            (self._entry(i) for i in infos if i.type == pafs.FileType.File),
            key=lambda e: e.url,
        )

    def folders(self, url: str) -> builtins.list[str]:
        """The folder-like prefixes directly below `url` (one level, not recursive)."""
        selector = pafs.FileSelector(self._path(url), recursive=False, allow_not_found=True)
        infos = self._call(url, "list", lambda: self.fs.get_file_info(selector))
        return sorted(
            self.location.child(i.path) for i in infos if i.type == pafs.FileType.Directory
        )

    def glob(self, pattern: str) -> builtins.list[Entry]:
        """Objects whose URL matches `pattern` (`*` within a name, `**` across folders)."""
        cut = min(pattern.index(c) for c in GLOB_CHARS if c in pattern)
        prefix = pattern[:cut].rsplit("/", 1)[0]
        regex = _glob_regex(pattern)
        return [e for e in self.list(prefix) if regex.fullmatch(e.url)]

    def info(self, url: str) -> Entry | None:
        """The object at `url`, or None."""
        info = self._call(url, "read", lambda: self.fs.get_file_info(self._path(url)))
        return self._entry(info) if info.type == pafs.FileType.File else None

    def open_input(self, url: str) -> pa.NativeFile:
        """A random-access reader (parquet footers, row groups) fetching ranges on demand."""
        return self._call(url, "read", lambda: self.fs.open_input_file(self._path(url)))

    def open_input_stream(self, url: str) -> pa.NativeFile:
        """A sequential reader (CSV, NDJSON)."""
        return self._call(url, "read", lambda: self.fs.open_input_stream(self._path(url)))

    def read_bytes(self, url: str) -> bytes | None:
        """The whole (small) object, or None when it does not exist."""
        try:
            with self.fs.open_input_stream(self._path(url)) as f:
                return cast(bytes, f.read())  # pyarrow ships no type hints
        except FileNotFoundError:
            return None
        except OSError as exc:
            if _not_found(exc):
                return None
            raise self._error(url, "read", exc) from exc

    # -- writing ------------------------------------------------------------------------
    def open_output(self, url: str) -> pa.NativeFile:
        """A streaming writer: parts are uploaded while it is written (S3 multipart, Azure
        blocks, GCS resumable upload), so memory stays bounded; the object appears on close."""
        return self._call(
            url, "write", lambda: self.fs.open_output_stream(self._path(url), metadata={})
        )

    def write_bytes(self, url: str, data: bytes) -> None:
        def put() -> None:
            with self.fs.open_output_stream(self._path(url), metadata={}) as f:
                f.write(data)

        self._call(url, "write", put)

    def copy(self, src: str, dst: str) -> None:
        """Server-side copy (no bytes through this process)."""
        self._call(src, "copy", lambda: self.fs.copy_file(self._path(src), self._path(dst)))

    def delete(self, url: str) -> None:
        """Delete one object; a missing object is not an error (deletes are retried)."""
        for first_try in (True, False):
            try:
                self.fs.delete_file(self._path(url))
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                if _not_found(exc):
                    return
                leased = self.location.cloud == "azure" and "LeaseAlreadyPresent" in str(exc)
                if not (first_try and leased):
                    raise self._error(url, "delete", exc) from exc
            # pyarrow leases an Azure blob (15 s) while deleting it; a run killed then leaves
            # the lease behind. hygge deletes only what no live run uses (under the dataset's
            # run lock, or a run's own unpublished files), so the holder is gone: break its
            # lease and delete again, rather than fail until it expires.
            self._break_lease(url)

    def _break_lease(self, url: str) -> None:
        from hygge.storage.conditional import AzureBlob, Taken

        with contextlib.suppress(Taken):  # no lease any more: it expired meanwhile
            AzureBlob(Location.parse(url), self.options).break_lease()

    def delete_prefix(self, url: str) -> None:
        for entry in self.list(url):
            self.delete(entry.url)

    def check_bucket(self) -> None:
        """Fail clearly when the bucket/container is missing or the credentials are refused."""
        loc = self.location
        if isinstance(self.fs, pafs.AzureFileSystem):
            # Sign in on a path inside the container first: pyarrow (26) lets a failed
            # Microsoft Entra sign-in escape from a container-level call and abort the
            # process; on any deeper path it raises.
            self._call(loc.url, "access", lambda: self.fs.get_file_info(f"{loc.bucket}/_hygge"))
        info = self._call(loc.url, "access", lambda: self.fs.get_file_info(loc.bucket))
        if info.type == pafs.FileType.NotFound:
            raise StorageError(
                f"{mask_url(loc.url)}: bucket or container '{loc.bucket}' does not exist",
                hint="create it first, or fix the URL",
            )

    # -- helpers ------------------------------------------------------------------------
    def _entry(self, info: pafs.FileInfo) -> Entry:
        mtime = info.mtime_ns or 0
        return Entry(self.location.child(info.path), info.size or 0, mtime)

    def _call(self, url: str, what: str, action: Callable[[], T]) -> T:
        try:
            return action()
        except OSError as exc:
            if _not_found(exc) and what == "read":
                raise FileNotFoundError(f"not found: {mask_url(url)}") from exc
            raise self._error(url, what, exc) from exc
        except pa.ArrowException as exc:  # e.g. Azure's failed sign-in: "Unknown error"
            raise storage_error(url, what, exc) from exc

    def _error(self, url: str, what: str, exc: OSError) -> StorageError:
        return storage_error(url, what, exc)


def storage_error(url: str, what: str, exc: BaseException) -> StorageError:
    """A clear, secret-free error for a failed object-store call; network faults transient."""
    text = mask_url(str(exc))
    lowered = text.lower()
    where = mask_url(url)
    if any(s in lowered for s in ("no_such_bucket", "nosuchbucket", "containernotfound")) or (
        "bucket" in lowered and "not exist" in lowered
    ):
        return StorageError(
            f"cannot {what} {where}: the bucket or container does not exist",
            hint="create it first, or fix the URL",
        )
    # network first: an unreachable endpoint's message may hold digits that look like codes
    network = any(
        s in lowered
        for s in (
            "connection refused",
            "couldn't connect",
            "could not connect",
            "curl error",
            "timed out",
            "timeout",
            "network",
            "connection reset",
            "unreachable",
            "failed to connect",
            "resolve host",
            "transport",
        )
    )
    if network:
        return StorageError(
            f"cannot {what} {where}: the endpoint is unreachable ({_first_line(text)})",
            hint=f"check the endpoint ({credentials.endpoint_setting(url)}) and the network",
            transient=True,
        )
    if any(
        s in lowered
        for s in (
            "access_denied",
            "accessdenied",
            "invalidaccesskeyid",
            "signaturedoesnotmatch",
            "authorizationfailure",
            "authenticationfailed",
            "authenticationexception",  # Azure: no Microsoft Entra token
            "failed to get token",
            "forbidden",
        )
    ) or re.search(r"\b(401|403)\b", lowered.replace(where.lower(), "")):
        return StorageError(
            f"cannot {what} {where}: access denied (wrong credentials or no permission)",
            hint="check the credentials (AWS_*, AZURE_STORAGE_*, GOOGLE_APPLICATION_CREDENTIALS "
            "or storage_options) and the permissions on the bucket",
        )
    return StorageError(f"cannot {what} {where}: {_first_line(text)}")


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:300] if text.strip() else "unknown error"


def _not_found(exc: OSError) -> bool:
    text = str(exc).lower()
    if isinstance(exc, FileNotFoundError):
        return True
    # S3 through pyarrow: NO_SUCH_KEY, or RESOURCE_NOT_FOUND for a GET of an object deleted
    # after it was listed (seen against moto while a commit removed its staging)
    codes = ("not found", "nosuchkey", "no_such_key", "resource_not_found", "does not exist")
    missing = any(code in text for code in codes)
    return missing and "bucket" not in text and "container" not in text


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """`**/` spans folders, `*` and `?` stay within one name, `[...]` as fnmatch."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]*/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i)
            if end < 0:
                out.append(re.escape("["))
                i += 1
            else:
                out.append(fnmatch.translate(pattern[i : end + 1])[4:-3])
                i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))
