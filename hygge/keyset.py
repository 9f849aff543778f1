"""The key set of a `unique` check: 64-bit key hashes in bounded memory (hygge/quality.py)."""

from __future__ import annotations

import base64
import io
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.ipc

SPILL_KEYS = 32_000_000  # distinct keys in memory (256 MB) before the run is memory-mapped
COMPACT_ROWS = 1_000_000  # keys pending (their hashes) before a compaction
COMPACT_BYTES = 64 * 2**20  # ... or this much of their key values (wide text keys)
EXAMPLES = 5  # repeated keys kept as examples per compaction


class _KeyLog:
    """The key values of the pending batches, beside their hashes, in temporary Arrow
    stream files rather than in memory: they are read back only when a compaction finds a
    repeated key (for examples), and dropped after every compaction."""

    def __init__(self, folder: Callable[[], Path]) -> None:
        self.folder = folder
        self.files: list[Path] = []
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._schema: pa.Schema | None = None
        self._written = 0

    def add(self, keys: pl.DataFrame) -> None:
        table = keys.to_arrow()
        if self._writer is None or table.schema != self._schema:  # a new file per schema
            self._close()
            self._written += 1
            path = self.folder() / f"keys{self._written}.arrows"
            self.files.append(path)
            self._writer = pa.ipc.new_stream(str(path), table.schema)
            self._schema = table.schema
        self._writer.write_table(table)

    def read(self) -> pl.DataFrame:
        self._close()
        frames = []
        for path in self.files:
            with pa.OSFile(str(path), "rb") as source:
                frames.append(pl.DataFrame(pa.ipc.open_stream(source).read_all()))
        return pl.concat(frames, how="vertical_relaxed")

    def drop(self) -> None:
        self._close()
        for path in self.files:
            path.unlink(missing_ok=True)
        self.files = []

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer, self._schema = None, None


class KeySet:
    """A set of 64-bit key hashes: one sorted run of distinct hashes, and the batches added
    since it was last compacted (their hashes and key values, for examples).

    Adding a batch keeps its hashes in memory and its key values in a temporary file (read
    back only for examples of a repeated key); once `compact_rows` rows, or as many as the run
    holds, are pending (and before a decision) the pending hashes are sorted and merged into
    the run in one linear pass, which finds the repeats. Letting the pending grow with the
    run keeps the merges' total work near twice the keys rather than growing with their
    square. So a batch costs a hash, and the whole flow about one sort of its keys. Past
    `spill_keys` the run lives in a memory-mapped Arrow file in a temporary folder.
    """

    def __init__(self, spill_keys: int = SPILL_KEYS, compact_rows: int = COMPACT_ROWS) -> None:
        self.spill_keys = spill_keys
        self.compact_rows = compact_rows
        self.run = pl.Series("h", [], dtype=pl.UInt64)
        self.pending: list[pl.Series] = []  # the pending batches' hashes
        self.pending_rows = self.pending_bytes = 0
        self.log = _KeyLog(self._folder_path)  # ... and their key values, on disk
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._file: Path | None = None
        self._spilled = 0

    def __len__(self) -> int:
        return len(self.run) + self.pending_rows

    def peek(self, hashes: pl.Series) -> pl.Series:
        """Which of these keys repeat (in the run, or earlier in this batch); adds nothing.
        (Quarantine compacts after every batch, so nothing is pending here.)"""
        first = hashes.is_first_distinct()
        if not len(self.run):
            return ~first
        at = self.run.search_sorted(hashes).clip(0, len(self.run) - 1)
        return ~first | (self.run.gather(at) == hashes)

    def _folder_path(self) -> Path:
        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix="hygge-unique-")
        return Path(self._folder.name)

    def add(self, hashes: pl.Series, keys: pl.DataFrame) -> tuple[int, pl.DataFrame] | None:
        """Keep a batch's keys; when enough are pending, compact (see `compact`)."""
        self.pending.append(hashes.alias("h"))
        self.log.add(keys.with_columns(hashes.alias("h")).select("h", *keys.columns))
        self.pending_rows += len(hashes)
        self.pending_bytes += int(keys.estimated_size())
        due = (
            self.pending_rows >= max(self.compact_rows, len(self.run))
            or self.pending_bytes >= COMPACT_BYTES
        )
        return self.compact() if due else None

    def compact(self) -> tuple[int, pl.DataFrame] | None:
        """Merge the pending keys into the run: (how many repeated a key, a few of the rows
        holding a repeated key), or None when nothing is pending."""
        if not self.pending:
            return None
        fresh = pl.concat(self.pending)
        self.pending, self.pending_rows, self.pending_bytes = [], 0, 0
        # one thread: the count runs beside the store's writer (hygge/gate.py)
        fresh.sort(multithreaded=False, in_place=True)
        merged = self.run.to_frame().merge_sorted(fresh.to_frame(), "h").get_column("h")
        del fresh
        repeated = _repeats(merged)
        count = int(repeated.sum() or 0)
        examples = pl.DataFrame()
        if count:  # the key values, read back only now
            culprits = merged.filter(repeated).head(EXAMPLES)
            examples = (  # one row per repeated key
                self.log.read()
                .filter(pl.col("h").is_in(culprits.implode()))
                .unique("h", keep="first", maintain_order=True)
                .head(EXAMPLES)
                .drop("h")
            )
            merged = merged.filter(~repeated)
        self.log.drop()
        self.run = self._maybe_spill(merged.rechunk())
        return count, examples

    def _maybe_spill(self, run: pl.Series) -> pl.Series:
        if len(run) < self.spill_keys:
            return run
        import pyarrow as pa

        self._spilled += 1
        path = self._folder_path() / f"run{self._spilled}.arrow"
        run.to_frame("h").write_ipc(path, compression="uncompressed")
        # zero-copy: the keys stay in the file's pages (its buffers keep the mapping open)
        table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
        if self._file is not None:  # the run it replaces (still mapped until dropped: fine)
            self._file.unlink(missing_ok=True)
        self._file = path
        return pl.Series("h", table.column("h").combine_chunks())

    def merge(self, other: KeySet) -> int:
        """Fold in another part's keys (both compacted); how many of them this set held."""
        self.compact()
        other.compact()
        if not len(other.run):
            return 0
        merged = self.run.to_frame().merge_sorted(other.run.to_frame(), "h").get_column("h")
        repeated = _repeats(merged)
        self.run = self._maybe_spill(merged.filter(~repeated).rechunk())
        return int(repeated.sum() or 0)

    def describe(self) -> str:
        n = len(self)
        spilled = f", spilled to {self._file.parent}" if self._file is not None else ""
        return f"{n:,} key hashes ({n * 8 / 2**20:.0f} MB{spilled})"

    def to_text(self) -> str:
        """The (compacted) run as compressed text, for the Redis board."""
        buffer = io.BytesIO()
        self.run.to_frame("h").write_ipc(buffer, compression="uncompressed")
        return base64.b64encode(zlib.compress(buffer.getvalue(), 1)).decode()

    @classmethod
    def from_text(cls, text: str, spill_keys: int = SPILL_KEYS) -> KeySet:
        keys = KeySet(spill_keys)
        data = pl.read_ipc(io.BytesIO(zlib.decompress(base64.b64decode(text)))).to_series()
        keys.run = keys._maybe_spill(data.sort().rename("h"))
        return keys

    def close(self) -> None:
        self.run = pl.Series("h", [], dtype=pl.UInt64)
        self.pending, self.pending_rows, self.pending_bytes = [], 0, 0
        self.log.drop()
        if self._folder is not None:
            self._folder.cleanup()
            self._folder, self._file = None, None


def _repeats(run: pl.Series) -> pl.Series:
    """True where a sorted run repeats the value before it. Compares two zero-copy slices,
    so the only new memory is the mask (a bit a key), not a shifted copy of the run."""
    if len(run) < 2:
        return pl.Series("repeated", [False] * len(run), dtype=pl.Boolean)
    later = (run.slice(1) == run.slice(0, len(run) - 1)).rename("repeated")
    return pl.concat([pl.Series("repeated", [False]), later])
