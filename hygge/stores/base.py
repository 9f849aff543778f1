"""The Store contract: stage with `write`, publish atomically with `commit`, or `abort`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import polars as pl

from hygge import registry
from hygge.connector import Connector, ConnectorSettings, default_type_name
from hygge.errors import StoreError
from hygge.locks import FileLock, NoLock, RunLock, lock_file_beside


class StoreSettings(ConnectorSettings):
    """Settings every store understands."""

    mode: Literal["replace", "append"] = "replace"


class Store(Connector):
    """A destination. Subclass it and implement `write`; the other hooks are optional.

    The lifecycle of one flow is `open()`, `write(df)` per batch, then `commit()` (publish
    everything at once) or `abort()` (leave the destination exactly as it was).
    """

    kind: ClassVar[str] = "store"
    Settings: ClassVar[type[StoreSettings]] = StoreSettings

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("abstract", False):
            return  # a shared base for concrete connectors, not usable from YAML itself
        if "type_name" not in cls.__dict__:
            cls.type_name = default_type_name(cls.__name__, "Store")
        registry.register("store", cls.type_name, cls)

    def destination(self) -> str | None:
        """Where this store writes, as a key that two stores writing the same place share
        (so flows.yml can refuse two flows overwriting each other); None: unknown."""
        path = getattr(self.settings, "path", None)
        return f"path:{Path(path).resolve()}" if path else None

    # Flows may share a destination by design only in these modes (none replaces the other).
    shared_modes: ClassVar[tuple[str, ...]] = ("append",)

    def lock(self, flow: str) -> RunLock:
        """The lock a run of `flow` holds on this destination across all its attempts, so a
        second run of the same flow (a cron overlap) is refused or waits instead of loading
        the same data twice. The default locks a file beside a store's `path`; a store with
        no path takes none. A store kept elsewhere (a database) locks there."""
        path = getattr(self.settings, "path", None)
        if not path:
            return NoLock(flow, self.describe())
        target = Path(path)
        return FileLock(flow, str(target), lock_file_beside(target, flow))

    async def open(self) -> None:
        """Prepare to receive batches; fail here (before any read) if the target is unusable."""

    async def write(self, df: pl.DataFrame) -> None:
        """Stage one batch. Nothing staged is visible to readers before `commit()`."""
        raise NotImplementedError(f"{type(self).__name__} must implement write()")

    async def staged_rows(self) -> int | None:
        """Rows staged so far, counted from what was written (not from what was passed in),
        or None when the store cannot count independently."""
        return None

    async def commit(self) -> None:
        """Publish every staged batch at once (with any state given to `stage_state`)."""

    # -- incremental state: stored at the destination, committed together with the data --
    supports_state: ClassVar[bool] = False

    async def read_state(self, flow: str) -> dict[str, Any] | None:
        """The state last committed for `flow`, or None (first run, or after a reset)."""
        return None

    def stage_state(self, flow: str, state: dict[str, Any]) -> None:
        """Have the next `commit()` publish `state` atomically with the data."""
        raise StoreError(
            f"store '{self.name}' ({self.type_name}) cannot keep incremental state",
            hint="use a store that supports incremental loads (parquet, csv, sql)",
        )

    async def reset_state(self, flow: str) -> bool:
        """Forget the state of `flow`; True if there was one."""
        return False

    async def abort(self) -> None:
        """Discard every staged batch; the destination stays as it was."""
