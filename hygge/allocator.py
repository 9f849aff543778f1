"""Arrow's allocator: jemalloc on Linux, chosen before pyarrow loads (`import hygge` does it).

A flow's batches are decoded, converted and encoded on several threads at once (the reader,
a file store's writers). pyarrow's default allocator, mimalloc, keeps what those threads
free: TPC-H lineitem SF1 parquet -> parquet with two writers peaked at 530 MB with mimalloc
and 436 MB with jemalloc, for the same CPU time (one writer: 480 MB and 389 MB). Arrow reads
`ARROW_DEFAULT_MEMORY_POOL` once, when it first allocates, so this must run before pyarrow is
imported; a choice the user made in the environment is kept. Other platforms keep the default
(pyarrow's macOS and Windows wheels have no jemalloc).
"""

from __future__ import annotations

import os
import sys


def prefer_jemalloc() -> None:
    """Ask Arrow for jemalloc unless the user chose a pool, or pyarrow is loaded already."""
    if sys.platform == "linux" and "pyarrow" not in sys.modules:
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
