"""Azure Blob files staged as uncommitted blocks under their final names, committed later in
one request: Azure's counterpart of `uploads.py`.

A blob whose blocks are only *staged* (Put Block) does not exist for readers: it is not
listed, not readable, not copyable. `complete` commits the block list (Put Block List), and
the blob appears at once, whole, under its final name: publishing a staged file costs one
small request, not a copy of its bytes. The record the caller keeps names the blocks in
order; each block id carries a random prefix of its file (the "upload id"), so two runs never
share a block.

`complete` lists the blocks as `Latest` (the uncommitted one if there is one, else the
committed one), so committing again after a crash rewrites the same list and changes
nothing. Azure has no call that frees the staged blocks of a blob that was never committed:
it discards them itself a week after they were staged (they are invisible meanwhile and
cost only their storage), so `abort` has nothing to send.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

from hygge.storage.conditional import AzureBlob, HttpError, Taken
from hygge.storage.location import Location
from hygge.storage.objects import StorageError, storage_error
from hygge.storage.uploads import PartStream

_XML = {"Content-Type": "application/xml"}
# urllib would send a body as a form (and the signature would not cover its Content-Type)
_BYTES = {"Content-Type": "application/octet-stream"}


class PendingBlocks(PartStream):
    """A write-only stream into a block blob's staged blocks, left uncommitted by `close`."""

    def __init__(self, url: str, options: Mapping[str, str]) -> None:
        self.blob = AzureBlob(Location.parse(url), options)
        super().__init__(url)

    def _start(self) -> str:
        return secrets.token_hex(8)  # no request: a blob's blocks need no upload to exist

    def _put_part(self, number: int, chunk: bytes | bytearray) -> dict[str, Any]:
        if not chunk:  # an empty file: Azure takes no empty block, and an empty list is one
            return {"PartNumber": number, "BlockId": None}
        block = block_id(self.upload_id, number)
        query = {"comp": "block", "blockid": block}
        _call(self.url, "upload a block of", self.blob, query, chunk, _BYTES)
        return {"PartNumber": number, "BlockId": block}

    def _discard(self) -> None:
        """Nothing to send: Azure drops a never-committed blob's blocks after a week."""


def block_id(upload_id: str, number: int) -> str:
    """Every id of one blob has the same length, as Azure requires; base64, as it requires."""
    return base64.b64encode(f"{upload_id}-{number:06d}".encode()).decode()


def complete(record: Mapping[str, Any], options: Mapping[str, str]) -> None:
    """Commit a staged blob's blocks in order: it appears whole under its name. Idempotent."""
    url = str(record["url"])
    blob = AzureBlob(Location.parse(url), options)
    ids = "".join(
        f"<Latest>{escape(str(p['BlockId']))}</Latest>" for p in record["parts"] if p["BlockId"]
    )
    body = f'<?xml version="1.0" encoding="utf-8"?><BlockList>{ids}</BlockList>'.encode()
    try:
        _call(url, "commit the blocks of", blob, {"comp": "blocklist"}, body, _XML)
    except StorageError as exc:
        if "InvalidBlockList" not in exc.message:
            raise
        raise StorageError(
            f"cannot commit {url}: Azure no longer has its staged blocks (they are discarded a "
            "week after they were staged); that run's rows are lost",
            hint="delete the commit journal under _hygge/journal/ of this dataset, then run the "
            "flow again",
        ) from exc


def _call(
    url: str,
    what: str,
    blob: AzureBlob,
    query: Mapping[str, str],
    body: bytes | bytearray,
    extra: Mapping[str, str] | None = None,
) -> None:
    try:
        blob.request("PUT", query, extra or {}, body)
    except (HttpError, Taken, OSError) as exc:  # ConnectionError is an OSError
        err = storage_error(url, what, exc)
        if getattr(exc, "transient", False) or isinstance(exc, OSError):
            err = StorageError(err.message, hint=err.hint, transient=True)  # retried
        raise err from exc
