"""Where bytes live: local paths and object stores (S3, Azure Blob / ADLS Gen2, GCS).

`is_object_url(path)` tells the two apart; `ObjectStorage.for_url(url, options)` gives one
small interface over every object store (list, glob, streaming open, streaming multipart
write, copy, delete), backed by pyarrow's native filesystems. Nothing here imports a cloud
SDK: pyarrow ships them, and `deltalake` (the `cloud` extra) is imported by the Delta store.
The filesystems load on first use, so `import hygge` stays light.
"""

from typing import TYPE_CHECKING, Any

from hygge.storage.location import OBJECT_SCHEMES, Location, is_object_url, join

if TYPE_CHECKING:  # loaded lazily at run time (below), typed for mypy
    from hygge.storage.objects import Entry, ObjectStorage

__all__ = ["OBJECT_SCHEMES", "Entry", "Location", "ObjectStorage", "is_object_url", "join"]


def __getattr__(name: str) -> Any:
    if name in ("Entry", "ObjectStorage"):
        from hygge.storage import objects

        return getattr(objects, name)
    raise AttributeError(name)
