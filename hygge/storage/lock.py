"""The run lock of an S3 destination: a lock object created only if absent.

`s3://b/lake/.orders.hygge-lock.FLOW` beside the dataset (hidden from readers globbing it):
- taken with a conditional PUT (`If-None-Match: *`): of two runs, exactly one creates it;
- renewed by its holder every `renew` seconds (a conditional PUT on its own ETag), so a
  holder that died (SIGKILL, a lost machine) stops renewing and the lock expires after
  `HYGGE_OBJECT_LOCK_SECONDS` (default 120), measured on the store's clock (its `Date`
  against the object's `Last-Modified`), so machines' clocks never matter;
- an expired lock is taken over with a conditional PUT on its ETag: two runs seeing it
  expired cannot both win. So is the lock of the same run (`owner`: a worker re-running a
  flow whose previous worker died holds the same run's key), without waiting for expiry;
- released by deleting it (conditionally on the holder's ETag).

pyarrow's S3 filesystem exposes no conditional writes, so this speaks S3 through botocore.
Azure Blob and GCS destinations take no lock yet (see docs/objectstore.md).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from hygge.errors import FlowLocked, StoreError
from hygge.locks import RunLock, file_name
from hygge.secrets import mask_url
from hygge.storage import credentials
from hygge.storage.location import Location
from hygge.storage.objects import storage_error
from hygge.storage.s3 import s3_client

log = logging.getLogger(__name__)
_TAKEN = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")


def lock_seconds() -> float:
    return float(os.environ.get("HYGGE_OBJECT_LOCK_SECONDS") or 120)


def lock_url(dataset: str, flow: str) -> str:
    parent, _, name = dataset.rstrip("/").rpartition("/")
    return f"{parent}/.{name}.hygge-lock.{file_name(flow)}"


class ObjectLock(RunLock):
    """A run lock held as an S3 object (see the module docstring)."""

    def __init__(
        self,
        flow: str,
        where: str,
        dataset: str,
        options: Mapping[str, Any] | None,
        owner: str | None = None,
    ) -> None:
        super().__init__(flow, where)
        self.owner = owner  # the run (all its attempts and deliveries) holding the lock
        self.url = lock_url(dataset, flow)
        self.location = Location.parse(self.url)
        self.options = credentials.resolve(options)
        self.seconds = lock_seconds()
        self._etag: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._client: Any = None
        self.holder: dict[str, Any] = {}  # who holds it, when this run was refused

    # -- S3 calls -------------------------------------------------------------------------
    def client(self) -> Any:
        if self._client is None:
            self._client = s3_client(self.options, read_timeout=30)
        return self._client

    def _put(self, **condition: str) -> str:
        body = {
            "flow": self.flow,
            "owner": self.owner,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
        done = self.client().put_object(
            Bucket=self.location.bucket,
            Key=self.location.key,
            Body=json.dumps(body).encode(),
            **condition,
        )
        return str(done["ETag"])

    # -- RunLock ----------------------------------------------------------------------------
    def try_acquire(self) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            try:
                self._etag = self._put(IfNoneMatch="*")
            except ClientError as exc:
                if _code(exc) not in _TAKEN:
                    raise
                expired = self._reclaimable_etag()
                if expired is None:
                    return False
                try:
                    self._etag = self._put(IfMatch=expired)  # take over a dead holder's lock
                except ClientError as again:
                    if _code(again) in (*_TAKEN, "NoSuchKey", "404"):
                        return False  # another run took it over first (or released it)
                    raise
        except (ClientError, BotoCoreError) as exc:
            err = storage_error(self.url, "take the run lock", exc)
            raise StoreError(
                err.message,
                hint=f"{err.hint}; the run lock needs s3:PutObject, s3:GetObject and "
                "s3:DeleteObject beside the dataset"
                if err.hint
                else "the run lock needs s3:PutObject, s3:GetObject and s3:DeleteObject "
                "beside the dataset",
                transient=err.transient or not isinstance(exc, ClientError),
            ) from exc
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew, name="hygge-lock", daemon=True)
        self._renewer.start()
        return True

    def _reclaimable_etag(self) -> str | None:
        """The ETag of the lock object when its holder stopped renewing it long enough ago
        (by the store's clock), or when it is this run's own (an earlier delivery that
        died); else None."""
        from botocore.exceptions import ClientError

        try:
            got = self.client().get_object(Bucket=self.location.bucket, Key=self.location.key)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None  # released meanwhile: the next try creates it
            raise
        try:
            holder = json.loads(got["Body"].read())
        except ValueError:
            holder = {}
        self.holder = holder
        now = parsedate_to_datetime(got["ResponseMetadata"]["HTTPHeaders"]["date"])
        age = (now - got["LastModified"]).total_seconds()
        mine = self.owner is not None and holder.get("owner") == self.owner
        return str(got["ETag"]) if mine or age > self.seconds else None

    async def acquire(self, *, wait: bool = False, on_wait: Any = None) -> None:
        try:
            await super().acquire(wait=wait, on_wait=on_wait)
        except FlowLocked as exc:
            held = self.holder
            by = f" (held by {held.get('host')}, pid {held.get('pid')})" if held else ""
            raise FlowLocked(
                exc.message.replace("; this run moved nothing", f"{by}; this run moved nothing"),
                hint=f"{exc.hint}; if that run died, its lock expires "
                f"{self.seconds:.0f} s after its last renewal (HYGGE_OBJECT_LOCK_SECONDS)",
            ) from None

    def _renew(self) -> None:
        every = max(self.seconds / 4, 0.05)
        while not self._stop.wait(every):
            try:
                assert self._etag is not None
                self._etag = self._put(IfMatch=self._etag)
            except Exception as exc:  # a blip: try again; a takeover: nothing to renew
                log.warning("run lock %s not renewed: %s", mask_url(self.url), mask_url(str(exc)))

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(30)
            self._renewer = None
        if self._etag is None:
            return
        etag, self._etag = self._etag, None
        try:
            self.client().delete_object(
                Bucket=self.location.bucket, Key=self.location.key, IfMatch=etag
            )
        except Exception as exc:  # it expires by itself
            log.warning("run lock %s not released: %s", mask_url(self.url), mask_url(str(exc)))


def _code(exc: Any) -> str:
    error = getattr(exc, "response", {}).get("Error", {})
    status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(error.get("Code") or status or "")
