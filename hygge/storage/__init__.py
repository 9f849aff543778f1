"""Where bytes live: local paths and object stores (S3, Azure Blob / ADLS Gen2, GCS).

`is_object_url(path)` tells the two apart; `ObjectStorage.for_url(url, options)` gives one
small interface over every object store (list, glob, streaming open, streaming multipart
write, copy, delete), backed by pyarrow's native filesystems. Nothing here imports a cloud
SDK: pyarrow ships them, and `deltalake` (the `cloud` extra) is imported by the Delta store.
"""

from hygge.storage.location import OBJECT_SCHEMES, Location, is_object_url, join
from hygge.storage.objects import Entry, ObjectStorage

__all__ = ["OBJECT_SCHEMES", "Entry", "Location", "ObjectStorage", "is_object_url", "join"]
