"""The key set of a `unique` check: 64-bit key hashes in bounded memory (hygge/quality.py)."""

from __future__ import annotations

import base64
import io
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.ipc

SPILL_KEYS = 2_000_000  # distinct keys in memory (16 MB) before the run goes to a file
# ... when every batch is merged at once (quarantine): rewriting a file per batch would cost more
EAGER_SPILL_KEYS = 32_000_000
COMPACT_ROWS = 1_000_000  # keys pending (their hashes) before a compaction (or half the run)
CHUNK = 262_144  # keys per piece of the run (2 MB): a merge holds about one piece extra
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
    """A set of 64-bit key hashes: one sorted run of distinct hashes, kept in pieces of
    `CHUNK` keys, and the batches added since it was last compacted (their hashes and key
    values, for examples).

    Adding a batch keeps its hashes in memory and its key values in a temporary file (read
    back only for examples of a repeated key); once `compact_rows` rows, or half as many as
    the run holds, are pending (and before a decision) the pending hashes are sorted and
    merged into the run in one linear pass, which finds the repeats. Letting the pending grow
    with the run keeps the merges' total work near three times the keys rather than growing
    with their square. The merge goes piece by piece, each old piece let go once merged, so
    it needs about the pending keys and one piece more than the run, not a second run. So a
    batch costs a hash, and the whole flow about one sort of its keys. Past `spill_keys` the
    run lives in an Arrow file in a temporary folder, and a merge reads it a piece at a time
    and writes the new run piece by piece: memory then holds the pending keys, not the run.
    """

    def __init__(self, spill_keys: int = SPILL_KEYS, compact_rows: int = COMPACT_ROWS) -> None:
        self.spill_keys = spill_keys
        self.compact_rows = compact_rows
        self.pieces: list[pl.Series] = []  # the run, sorted and distinct, piece by piece
        self.pending: list[pl.Series] = []  # the pending batches' hashes
        self.pending_rows = self.pending_bytes = 0
        self.log = _KeyLog(self._folder_path)  # ... and their key values, on disk
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._file: Path | None = None  # the spilled run (then `pieces` is empty)
        self._spilled = 0
        self.run_keys = 0  # distinct keys in the run

    def __len__(self) -> int:
        return self.run_keys + self.pending_rows

    @property
    def run(self) -> pl.Series:
        """The run as one (chunked, zero-copy) series; a spilled run memory-mapped."""
        pieces = self.pieces
        if self._file is not None:
            table = pa.ipc.open_file(pa.memory_map(str(self._file))).read_all()
            pieces = [pl.Series("h", c) for c in table.column("h").chunks]
        if not pieces:
            return pl.Series("h", [], dtype=pl.UInt64)
        return pl.concat(pieces, rechunk=False)

    def _old_pieces(self) -> tuple[int, Iterator[pl.Series]]:
        """Take the run out, as (how many pieces, the pieces one at a time): a spilled run
        is read a piece at a time, so merging it holds one piece of it, not all."""
        if self._file is None:
            old, self.pieces = self.pieces, []

            def pop() -> Iterator[pl.Series]:
                for i, piece in enumerate(old):
                    old[i] = piece.clear()  # let each old piece go once merged
                    yield piece

            return len(old), pop()
        path, self._file = self._file, None
        source = pa.OSFile(str(path), "rb")
        reader = pa.ipc.open_file(source)

        def read() -> Iterator[pl.Series]:
            try:
                for i in range(reader.num_record_batches):
                    yield pl.Series("h", reader.get_batch(i).column(0))
            finally:
                source.close()
                path.unlink(missing_ok=True)

        return reader.num_record_batches, read()

    def peek(self, hashes: pl.Series) -> pl.Series:
        """Which of these keys repeat (in the run, or earlier in this batch); adds nothing.
        (Quarantine compacts after every batch, so nothing is pending here.)"""
        first = hashes.is_first_distinct()
        run = self.run
        if not len(run):
            return ~first
        at = run.search_sorted(hashes).clip(0, len(run) - 1)
        return ~first | (run.gather(at) == hashes)

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
            self.pending_rows >= max(self.compact_rows, self.run_keys // 2)
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
        count, culprits = self._merge(fresh)
        del fresh
        examples = pl.DataFrame()
        if count:  # the key values, read back only now
            examples = (  # one row per repeated key
                self.log.read()
                .filter(pl.col("h").is_in(culprits.implode()))
                .unique("h", keep="first", maintain_order=True)
                .head(EXAMPLES)
                .drop("h")
            )
        self.log.drop()
        return count, examples

    def _merge(self, fresh: pl.Series) -> tuple[int, pl.Series]:
        """Merge sorted hashes into the run, piece by piece: (how many repeated a key, a few
        of the repeated hashes). Each old piece is let go as soon as it is merged, so the
        merge holds the run, `fresh` and about one piece more (not two runs); a spilled run
        is read and written a piece at a time, so the merge holds `fresh` and a few pieces."""
        total, old = self._old_pieces()
        spill = len(fresh) + self.run_keys >= self.spill_keys
        count, start, self.run_keys = 0, 0, 0
        culprits: list[pl.Series] = []
        writer = _Spill(self._folder_path(), self._spilled + 1) if spill else None
        for i in range(max(total, 1)):
            piece = next(old) if total else pl.Series("h", [], dtype=pl.UInt64)
            # the run is distinct and sorted: the fresh keys up to this piece's last (and,
            # for the last piece, all the rest) meet their equals here
            end = len(fresh)
            if i + 1 < total and len(piece):
                end = int(fresh.search_sorted(piece[-1], side="right"))
            part = fresh.slice(start, end - start)
            start = end
            merged = piece.to_frame().merge_sorted(part.rename("h").to_frame(), "h")
            hashes = merged.get_column("h")
            del piece, part, merged
            repeated = _repeats(hashes)
            found = int(repeated.sum() or 0)
            if found:
                count += found
                if len(culprits) < EXAMPLES:
                    culprits.append(hashes.filter(repeated).head(EXAMPLES))
                hashes = hashes.filter(~repeated)
            self.run_keys += len(hashes)
            for at in range(0, len(hashes), CHUNK):  # zero-copy slices of the merged piece
                cut = hashes.slice(at, CHUNK)
                if writer is not None:
                    writer.write(cut)
                else:
                    self.pieces.append(cut)
            del hashes
        for _ in old:  # none left: closes (and drops) a spilled run's file
            pass
        if writer is not None:
            self._spilled += 1
            self._file = writer.close()
        found_hashes = pl.concat(culprits) if culprits else pl.Series("h", [], pl.UInt64)
        return count, found_hashes.head(EXAMPLES)

    def _set_run(self, run: pl.Series) -> None:
        """Make a sorted, distinct series the run (spilled past `spill_keys`)."""
        self._merge(run)

    def merge(self, other: KeySet) -> int:
        """Fold in another part's keys (both compacted); how many of them this set held."""
        self.compact()
        other.compact()
        if not other.run_keys:
            return 0
        count, _ = self._merge(other.run)
        return count

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
        keys._set_run(data.sort().rename("h"))
        return keys

    def close(self) -> None:
        self.pieces, self.run_keys = [], 0
        self.pending, self.pending_rows, self.pending_bytes = [], 0, 0
        self.log.drop()
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None
        self._file = None


class _Spill:
    """A run written piece by piece to an Arrow file (one record batch a piece)."""

    def __init__(self, folder: Path, n: int) -> None:
        self.path = folder / f"run{n}.arrow"
        self._writer = pa.ipc.new_file(str(self.path), pa.schema([("h", pa.uint64())]))

    def write(self, piece: pl.Series) -> None:
        self._writer.write_table(piece.to_frame("h").to_arrow())

    def close(self) -> Path:
        self._writer.close()
        return self.path


def _repeats(run: pl.Series) -> pl.Series:
    """True where a sorted run repeats the value before it. Compares two zero-copy slices,
    so the only new memory is the mask (a bit a key), not a shifted copy of the run."""
    if len(run) < 2:
        return pl.Series("repeated", [False] * len(run), dtype=pl.Boolean)
    later = (run.slice(1) == run.slice(0, len(run) - 1)).rename("repeated")
    return pl.concat([pl.Series("repeated", [False]), later])
