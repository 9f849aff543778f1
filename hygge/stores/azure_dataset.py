"""A file store's dataset on Azure Blob, committed by committing block lists: metadata, not
a copy.

The S3 dataset's design (`s3_dataset.py`) with Azure's primitive: each staged file is a
block blob under its **final** name whose blocks are staged and not committed
(`hygge/storage/blocks.py`), invisible to readers; the run's record beside it says which
blocks, in order. Publishing a file is one Put Block List: the blob appears whole, at once.
A commit repeated after a crash commits the same list again, which changes nothing.

Staging that will never be published needs no call: Azure discards blocks that were never
committed a week after they were staged (they are invisible meanwhile); the records are
deleted as on S3. OneLake is left to the copy of `ObjectDataset`: its Blob endpoint is not
tested with staged blocks here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hygge.storage import blocks, uploads
from hygge.stores.s3_dataset import S3Dataset


class AzureDataset(S3Dataset):
    """An Azure Blob dataset prefix whose staged files are uncommitted block lists."""

    frees_uploads = False  # nothing to free: Azure drops uncommitted blocks after a week

    def _pending(self, url: str) -> uploads.PartStream:
        return blocks.PendingBlocks(url, self.options)

    def _complete(self, record: Mapping[str, Any]) -> None:
        blocks.complete(record, self.options)
