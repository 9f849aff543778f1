"""The run lock of an object-store destination: a lock object created only if absent.

`s3://b/lake/.orders.hygge-lock.FLOW` beside the dataset (hidden from readers globbing it),
the same on Azure Blob (`az://`, `abfss://`) and GCS (`gs://`), written through each cloud's
conditional writes (`hygge.storage.conditional`):
- taken with a create-if-absent (S3 and Azure `If-None-Match: *`, GCS
  `ifGenerationMatch=0`): of two runs, exactly one creates it;
- renewed by its holder every quarter of `HYGGE_OBJECT_LOCK_SECONDS` (default 120) with a
  write conditional on its own tag (ETag, generation), so a holder that died (SIGKILL, a
  lost machine) stops renewing and the lock expires after that long, measured on the
  store's clock (its `Date` against the object's last modification), so machines' clocks
  never matter;
- an expired lock is taken over with a write conditional on its tag: two runs seeing it
  expired cannot both win. So is the lock of the same run (`owner`: a worker re-running a
  flow whose previous worker died holds the same run's key), without waiting for expiry;
- released by deleting it (conditionally on the holder's tag).

OneLake takes the same lock, at its Blob endpoint with an Entra token (docs/objectstore.md);
an Open Mirroring store keeps its lock inside the landing zone (`_hygge/`, docs/fabric.md).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Mapping
from typing import Any

from hygge.errors import FlowLocked, StoreError
from hygge.locks import RunLock, file_name
from hygge.secrets import mask_url
from hygge.storage import credentials
from hygge.storage.conditional import ConditionalObject, Taken, conditional_object
from hygge.storage.objects import storage_error

log = logging.getLogger(__name__)


def lock_seconds() -> float:
    return float(os.environ.get("HYGGE_OBJECT_LOCK_SECONDS") or 120)


def lock_url(dataset: str, flow: str) -> str:
    parent, _, name = dataset.rstrip("/").rpartition("/")
    return f"{parent}/.{name}.hygge-lock.{file_name(flow)}"


class ObjectLock(RunLock):
    """A run lock held as an object beside the dataset (see the module docstring)."""

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
        self.options = credentials.resolve(options)
        self.seconds = lock_seconds()
        self._tag: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._object: ConditionalObject | None = None
        self.holder: dict[str, Any] = {}  # who holds it, when this run was refused
        self.nonce = uuid.uuid4().hex

    @property
    def object(self) -> ConditionalObject:
        if self._object is None:
            self._object = conditional_object(self.url, self.options)
        return self._object

    def _body(self) -> bytes:
        # `holder` is this lock's own: S3's ETag is the body's MD5, so two holders writing
        # the same body would share a tag, and one could renew or delete the other's lock.
        body = {"flow": self.flow, "owner": self.owner, "host": socket.gethostname()}
        return json.dumps({**body, "pid": os.getpid(), "holder": self.nonce}).encode()

    # -- RunLock ----------------------------------------------------------------------------
    def try_acquire(self) -> bool:
        try:
            try:
                self._tag = self.object.create(self._body())
            except Taken:
                expired = self._reclaimable_tag()
                if expired is None:
                    return False
                try:
                    self._tag = self.object.replace(self._body(), expired)  # take it over
                except Taken:
                    return False  # another run took it over first (or released it)
        except StoreError:
            raise
        except Exception as exc:
            err = storage_error(self.url, "take the run lock", exc)
            needs = f"the run lock needs {self.object.permissions}"
            raise StoreError(
                err.message,
                hint=f"{err.hint}; {needs}" if err.hint else needs,
                transient=err.transient or self.object.transient(exc),
            ) from exc
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew, name="hygge-lock", daemon=True)
        self._renewer.start()
        return True

    def _reclaimable_tag(self) -> str | None:
        """The tag of the lock object when its holder stopped renewing it long enough ago
        (by the store's clock), or when it is this run's own (an earlier delivery that
        died); else None."""
        held = self.object.read()
        if held is None:
            return None  # released meanwhile: the next try creates it
        self.holder = held.body
        mine = self.owner is not None and held.body.get("owner") == self.owner
        return held.tag if mine or held.age > self.seconds else None

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

    def confirm(self) -> None:
        """The lock object must still be this holder's: a process that stopped for longer
        than the lock lives (suspended, or its threads starved of Python's GIL by a native
        call) may have lost it to a run that took it over, and must then publish nothing."""
        try:
            held = self.object.read()
        except Exception as exc:
            raise storage_error(self.url, "check the run lock before the commit", exc) from exc
        if held is not None and held.body.get("holder") == self.nonce:
            return
        by = f" (now held by {held.body.get('host')}, pid {held.body.get('pid')})" if held else ""
        raise FlowLocked(
            f"flow '{self.flow}': another run took over the run lock on {self.where}{by} "
            f"while this run had not renewed it for over {self.seconds:.0f} s "
            "(HYGGE_OBJECT_LOCK_SECONDS): the process was stopped or starved; this run "
            "published nothing",
            hint="the other run publishes its own rows; run this flow again if its data is "
            "still needed, and raise HYGGE_OBJECT_LOCK_SECONDS if the pauses are expected",
        )

    def _renew(self) -> None:
        every = max(self.seconds / 4, 0.05)
        while not self._stop.wait(every):
            try:
                assert self._tag is not None
                self._tag = self.object.replace(self._body(), self._tag)
            except Exception as exc:  # a blip: try again; a takeover: nothing to renew
                log.warning("run lock %s not renewed: %s", mask_url(self.url), mask_url(str(exc)))

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(30)
            self._renewer = None
        if self._tag is None:
            return
        tag, self._tag = self._tag, None
        try:
            self.object.delete(tag)
        except Exception as exc:  # it expires by itself
            log.warning("run lock %s not released: %s", mask_url(self.url), mask_url(str(exc)))
