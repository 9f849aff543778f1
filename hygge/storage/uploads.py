"""S3 multipart uploads left open under their final names, completed later in one request.

A file staged this way is invisible (S3 lists, reads and copies completed objects only) until
`complete` makes it appear at once, whole, under its final key: publishing a staged file
costs one small request, not a copy of its bytes. What completing needs (upload id, each
part's number and ETag) is a small JSON *record* the caller keeps (see
hygge/stores/s3_dataset.py); `abort` frees the parts of an upload that will never complete.

S3's rules, kept here: every part but the last is at least 5 MiB (`PART_BYTES` is 8 MiB),
at most 10,000 parts (so a file may reach 78 GiB); an upload completes once (a repeat is
recognised by the object's multipart ETag, which is derived from the parts' ETags).

pyarrow's S3 filesystem completes every upload it starts when the stream closes, so this
speaks S3 through botocore (already a dependency, for the run lock). `PartStream`, the
streaming in parts, is shared with Azure's staged blocks (`blocks.py`).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from hygge.storage.location import Location
from hygge.storage.objects import StorageError
from hygge.storage.objects import storage_error as _storage_error
from hygge.storage.s3 import s3_client

PART_BYTES = 8 << 20  # S3's minimum is 5 MiB for every part but the last
MAX_PARTS = 10_000
IN_FLIGHT = 3  # parts of one file uploading at once: memory is bounded by this x PART_BYTES
_MISSING = ("NoSuchUpload", "404", "NoSuchKey", "NotFound")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _uploader() -> ThreadPoolExecutor:
    """The threads that send parts (shared by every open file of the process)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="hygge-upload")
    return _pool


def multipart_etag(parts: list[dict[str, Any]]) -> str:
    """The ETag S3 gives the object an upload completes into: md5 of the parts' md5s."""
    digests = b"".join(bytes.fromhex(str(p["ETag"]).strip('"')) for p in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


class PartStream:
    """A write-only stream sent in parts as it is written, which `close` leaves uncommitted.

    Parts upload in background threads while the format writer goes on (at most `IN_FLIGHT`
    at once per file). After `close`, `record()` holds what committing it needs, and the
    file's last bytes (`tail`): a parquet footer, so rows can be counted before the object
    exists. A cloud supplies `_start` (an upload id), `_put_part` and `_discard`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.location = Location.parse(url)
        self.upload_id: str = self._start()
        # Parts are filled in buffers of PART_BYTES, reused once their part is uploaded: a
        # part costs one copy of its bytes and no new memory. Fresh 8 MiB blocks for every
        # part (two copies each) left glibc's heaps at 120-150 MB, half of it free: lineitem
        # SF1 to S3 peaked at 533-542 MB, now 487-503 MB, with a third fewer page faults.
        self._part: bytearray | None = None  # the part being filled
        self._filled = 0
        self._free: list[bytearray] = []  # buffers of uploaded parts
        self._free_lock = threading.Lock()
        self._last: bytes | bytearray = b""  # the part sent last: the file's tail at close
        self._futures: list[Future[dict[str, Any]]] = []
        self._checked = 0  # parts known to have arrived (a failed one stops the writer early)
        self._slots = threading.Semaphore(IN_FLIGHT)
        self._size = 0
        self._parts: list[dict[str, Any]] = []
        self.closed = False
        self.tail = b""

    def _start(self) -> str:
        raise NotImplementedError

    def _put_part(self, number: int, chunk: bytes | bytearray) -> dict[str, Any]:
        """Send part `number` (from 1); what committing needs to know of it."""
        raise NotImplementedError

    def _discard(self) -> None:
        """Free what was sent (the file will never be committed)."""
        raise NotImplementedError

    # -- the file protocol pa.PythonFile needs ----------------------------------------------
    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        size = len(view)
        self._size += size
        while view:
            if self._part is None:
                self._part = self._buffer()
            take = min(PART_BYTES - self._filled, len(view))
            self._part[self._filled : self._filled + take] = view[:take]
            self._filled += take
            view = view[take:]
            if self._filled == PART_BYTES:
                part, self._part, self._filled = self._part, None, 0
                self._send(part)
        return size

    def tell(self) -> int:
        return self._size

    def flush(self) -> None:
        """Nothing: parts leave when full; the last at close."""

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def close(self) -> None:
        """Send the last part and wait for every part; the upload stays open (invisible)."""
        if self.closed:
            return
        self.closed = True
        last = bytes(self._part[: self._filled]) if self._part is not None else b""
        self._part, self._filled = None, 0
        before = self._last
        if last or not self._futures:  # an empty file is one empty part
            self._send(last)
        # The file's last bytes (at least one whole part unless the file is smaller): room
        # for its footer.
        self.tail = b"".join((before, last))
        self._parts = [f.result() for f in self._futures]
        self._free.clear()

    def record(self) -> dict[str, Any]:
        """What completing the upload needs (after `close`)."""
        return {
            "url": self.url,
            "upload_id": self.upload_id,
            "parts": self._parts,
            "size": self._size,
        }

    def abort(self) -> None:
        """Give the upload up (its parts are freed); waits for parts still uploading."""
        self.closed = True
        for f in self._futures:
            f.exception()
        self._discard()

    # -- helpers ----------------------------------------------------------------------------
    def _buffer(self) -> bytearray:
        """A buffer for the next part: an uploaded part's (never the part sent last, which
        holds the file's tail until close), else a new one."""
        with self._free_lock:
            for i, buffer in enumerate(self._free):
                if buffer is not self._last:
                    return self._free.pop(i)
        return bytearray(PART_BYTES)

    def _send(self, chunk: bytes | bytearray) -> None:
        number = len(self._futures) + 1
        if number > MAX_PARTS:
            raise StorageError(
                f"cannot write {self.url}: more than {MAX_PARTS} parts of "
                f"{PART_BYTES >> 20} MiB in one file",
                hint="lower the store's max_rows_per_file",
            )
        self._slots.acquire()  # bounded memory: wait while IN_FLIGHT parts are on their way
        while self._checked < len(self._futures) and self._futures[self._checked].done():
            self._futures[self._checked].result()  # a part that failed: stop writing now
            self._checked += 1
        self._last = chunk
        self._futures.append(_uploader().submit(self._upload_part, number, chunk))

    def _upload_part(self, number: int, chunk: bytes | bytearray) -> dict[str, Any]:
        try:
            return self._put_part(number, chunk)
        finally:
            if isinstance(chunk, bytearray):  # a whole part's buffer: free for the next
                with self._free_lock:
                    self._free.append(chunk)
            self._slots.release()


class PendingUpload(PartStream):
    """An S3 multipart upload under the file's final key, left open by `close`."""

    def __init__(self, url: str, options: Mapping[str, str]) -> None:
        self.client = s3_client(options, sign_payload=False)
        super().__init__(url)

    def _start(self) -> str:
        created = self._call(
            "start the upload of",
            lambda: self.client.create_multipart_upload(
                Bucket=self.location.bucket, Key=self.location.key
            ),
        )
        return str(created["UploadId"])

    def _put_part(self, number: int, chunk: bytes | bytearray) -> dict[str, Any]:
        done = self._call(
            "upload a part of",
            lambda: self.client.upload_part(
                Bucket=self.location.bucket,
                Key=self.location.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=chunk,
            ),
        )
        return {"PartNumber": number, "ETag": done["ETag"]}

    def _discard(self) -> None:
        abort(self.url, self.upload_id, self.client)

    def _call(self, what: str, action: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return action()
        except (ClientError, BotoCoreError) as exc:
            raise storage_error(self.url, what, exc) from exc


def complete(record: Mapping[str, Any], options: Mapping[str, str]) -> None:
    """Make a staged upload's object appear under its final key. Idempotent: an upload that
    was completed before (a commit repeated after a crash) is recognised by its ETag."""
    from botocore.exceptions import BotoCoreError, ClientError

    url = str(record["url"])
    location = Location.parse(url)
    client = s3_client(options, sign_payload=False)
    parts = list(record["parts"])
    try:
        client.complete_multipart_upload(
            Bucket=location.bucket,
            Key=location.key,
            UploadId=record["upload_id"],
            MultipartUpload={"Parts": parts},
        )
        return
    except ClientError as exc:
        failure: BaseException = exc
    except BotoCoreError as exc:
        raise storage_error(url, "complete the upload of", exc) from exc
    try:  # completed already? (S3 forgets an upload once it completed)
        head = client.head_object(Bucket=location.bucket, Key=location.key)
    except ClientError:
        head = {}
    except BotoCoreError as exc:
        raise storage_error(url, "complete the upload of", exc) from exc
    if head.get("ETag") == multipart_etag(parts):
        return
    if _code(failure) not in _MISSING and _code(failure) != "500":
        raise storage_error(url, "complete the upload of", failure) from failure
    raise StorageError(
        f"cannot complete the upload of {url}: S3 no longer has it (aborted by a lifecycle "
        "rule or by hand before its commit finished); that run's rows are lost",
        hint="delete the commit journal under _hygge/journal/ of this dataset, then run the "
        "flow again",
    )


def abort(url: str, upload_id: str, client_or_options: Any) -> None:
    """Free an upload's parts; an upload already gone (completed, aborted) is not an error."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = (
        s3_client(client_or_options, sign_payload=False)
        if isinstance(client_or_options, Mapping)
        else client_or_options
    )
    location = Location.parse(url)
    try:
        client.abort_multipart_upload(Bucket=location.bucket, Key=location.key, UploadId=upload_id)
    except ClientError as exc:
        if _code(exc) not in _MISSING:
            raise storage_error(url, "abort the upload of", exc) from exc
    except BotoCoreError as exc:
        raise storage_error(url, "abort the upload of", exc) from exc


def storage_error(url: str, what: str, exc: BaseException) -> StorageError:
    """A clear error; a failure below HTTP (a dropped connection, a timeout: botocore's own
    exceptions, not the server's answers) is transient, so the flow retries it."""
    from botocore.exceptions import ClientError

    err = _storage_error(url, what, exc)
    if not err.transient and not isinstance(exc, ClientError):
        return StorageError(err.message, hint=err.hint, transient=True)
    return err


def _code(exc: BaseException) -> str:
    response: dict[str, Any] = getattr(exc, "response", {}) or {}
    error = response.get("Error", {})
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(error.get("Code") or status or "")
