"""A file store's dataset on S3, committed by completing uploads: metadata, not a copy.

Each staged file is an S3 multipart upload under its **final** name
(`s3://b/lake/orders/part-RUN-00000.parquet`), left open: S3 shows no object until the
upload completes, so readers of the prefix see nothing of it. Beside it, in the run's
staging prefix (as for every object store), a small *record*
`.orders.hygge-staging-RUN/part-RUN-00000.parquet.upload` says where the upload goes and
its id: written when the file starts (so a killed run's uploads can be found and aborted)
and again when it is closed, with every part's ETag and the file's footer (its rows are
counted before the object exists).

The commit is the journal of `_dataset.py`, which now lists the uploads to complete
(`uploads`); publishing a file is one CompleteMultipartUpload (the object appears whole, at
once) and deleting its record. A repeat after a crash recognises a completed upload by its
ETag, so a journal is rolled forward any number of times. Staging that will never be
published (an abort, a stale run's staging swept, the parts of a failed partitioned run)
is dropped by aborting the uploads its records name.

An upload created just before its process died, before its record was written, has no
parts yet (a part is sent only after the record), so it holds no storage; an S3 lifecycle
rule `AbortIncompleteMultipartUpload` cleans such entries up, see docs/objectstore.md.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa

from hygge.errors import StoreError
from hygge.storage import uploads
from hygge.storage.objects import StorageError
from hygge.stores.object_dataset import PUBLISH_THREADS, ObjectDataset

RECORD = ".upload"  # a staged file's record: `<staging>/<file name>.upload`
PARQUET_MAGIC = b"PAR1"


class S3Dataset(ObjectDataset):
    """An S3 dataset prefix whose staged files are open multipart uploads."""

    frees_uploads = True  # an upload that will never complete is aborted (Azure: expires)

    def __init__(self, url: str, storage_options: Mapping[str, str] | None, run_id: str) -> None:
        super().__init__(url, storage_options, run_id)
        self.options = self.storage.options
        self._open: dict[int, tuple[str, uploads.PartStream]] = {}  # by id(sink)
        self._records: dict[str, dict[str, Any]] = {}  # record url -> record (closed files)

    # -- staging ----------------------------------------------------------------------------
    def new_file(self, name: str) -> tuple[str, Any]:
        record_url = f"{self.staging}/{name}{RECORD}"
        upload = self._guard(lambda: self._pending(f"{self.url}/{name}"))
        opened = {"url": upload.url, "upload_id": upload.upload_id}
        self._guard(lambda: self.write_bytes(record_url, json.dumps(opened).encode()))
        self.files.append(record_url)
        sink = pa.PythonFile(upload, mode="w")
        self._open[id(sink)] = (record_url, upload)
        return record_url, sink

    def close_file(self, sink: Any) -> None:
        record_url, upload = self._open.pop(id(sink))
        self._guard(sink.close)  # the last part; waits for every part: the upload stays open
        record = {**upload.record(), "footer": _footer(upload.url, upload.tail)}
        upload.tail = b""
        self._guard(lambda: self.write_bytes(record_url, json.dumps(record).encode()))
        self._records[record_url] = record

    def open_staged(self, ref: str) -> pa.NativeFile | None:
        """The staged file's footer as a tiny parquet file (the rows are counted from it);
        None for a format without one (CSV: rows not counted back)."""
        record = self._record(ref)
        if record is None or "parts" not in record:
            raise StoreError(f"staged file {ref} is missing or was never finished")
        footer = record.get("footer")
        return pa.BufferReader(PARQUET_MAGIC + base64.b64decode(footer)) if footer else None

    def staged_exists(self, ref: str) -> bool:
        record = self._record(ref)
        return record is not None and "parts" in record

    def final_name(self, staged: str) -> str:
        return f"{self.url}/{staged.rsplit('/', 1)[1].removesuffix(RECORD)}"

    def upload_records(self, moves: list[tuple[str, str]]) -> dict[str, Any]:
        """Each upload's id and parts, without the footer (the journal stays small)."""
        out = {}
        for src, _ in moves:
            record = self._record(src)
            if record is None:
                raise StoreError(f"staged file {src} is missing; nothing was committed")
            out[src] = {k: record[k] for k in ("url", "upload_id", "parts")}
        return out

    # -- publishing -------------------------------------------------------------------------
    def _publish_one(self, src: str, dst: str, uploads_: dict[str, Any]) -> None:
        record = uploads_.get(src)
        if record is None:  # a journal of a copy (written before uploads were staged)
            super()._publish_one(src, dst, uploads_)
            return
        self._complete(record)  # idempotent: a repeat is recognised
        self.delete(src)

    # -- dropping staging -------------------------------------------------------------------
    def drop_staged(self, prefix: str) -> None:
        """Abort the uploads the records below `prefix` name (where the cloud can free
        them: `frees_uploads`), then delete the records."""
        entries = self.storage.list(prefix)
        if self.frees_uploads:
            records = [e.url for e in entries if e.url.endswith(RECORD)]

            def abort(url: str) -> None:
                record = self._record(url)
                if record is not None and record.get("upload_id"):
                    self._abort(str(record["url"]), str(record["upload_id"]))

            with ThreadPoolExecutor(PUBLISH_THREADS, thread_name_prefix="hygge-abort") as pool:
                for done in [pool.submit(abort, url) for url in records]:
                    done.result()
        for entry in entries:
            self.storage.delete(entry.url)

    def abort(self) -> None:
        """Also give up the files still being written (their records say nothing yet of
        their parts, but name the upload)."""
        for _, upload in list(self._open.values()):
            with contextlib.suppress(StorageError, OSError):  # else the record names it:
                upload.abort()  # the next drop or sweep aborts it
        self._open.clear()
        super().abort()

    # -- the cloud's calls (Azure's are in azure_dataset.py) -------------------------------
    def _pending(self, url: str) -> uploads.PartStream:
        return uploads.PendingUpload(url, self.options)

    def _complete(self, record: Mapping[str, Any]) -> None:
        uploads.complete(record, self.options)

    def _abort(self, url: str, upload_id: str) -> None:
        """Only where `frees_uploads`."""
        uploads.abort(url, upload_id, self.options)

    # -- helpers ----------------------------------------------------------------------------
    def _record(self, ref: str) -> dict[str, Any] | None:
        record = self._records.get(ref)
        if record is not None:
            return record
        data = self.read_bytes(ref)
        if data is None:
            return None
        try:
            loaded: dict[str, Any] = json.loads(data)
        except ValueError:
            return None  # not a record (something else left in a staging prefix)
        if "parts" in loaded:
            self._records[ref] = loaded
        return loaded


def _footer(url: str, tail: bytes) -> str | None:
    """A parquet file's footer (metadata, its length, the magic), base64; None when the
    file is not parquet."""
    if len(tail) < 8 or not tail.endswith(PARQUET_MAGIC):
        return None
    length = int.from_bytes(tail[-8:-4], "little") + 8
    if length > len(tail):
        raise StoreError(
            f"cannot stage {url}: its parquet footer ({length:,} bytes) is larger than an "
            f"upload part ({uploads.PART_BYTES:,} bytes)",
            hint="write fewer row groups per file (raise row_group_size or lower "
            "max_rows_per_file)",
        )
    return base64.b64encode(tail[-length:]).decode()
