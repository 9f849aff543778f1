"""The contract a Home or a Store implements: read this module to write a plugin.

A **Home** is a source: subclass `Home` and implement `async read_batches()`, yielding polars
DataFrames of at most `self.batch_size` rows. A **Store** is a destination: subclass `Store`
and implement `async write(df)`; for atomic publication also `open()`, `staged_rows()`,
`commit()` and `abort()` (nothing written is visible before `commit()`, and `abort()` leaves
the destination as it was, so a retried or re-run flow is safe). A Home that knows or can
cheaply estimate its rows implements `async estimate_rows()` for the progress bar.

Settings are a pydantic model, validated from flows.yml (unknown keys are errors). Declare it
either as the type argument (`class NumbersHome(Home[NumbersSettings])`, so a type checker
knows `self.settings.count`) or as a nested `class Settings(HomeSettings)`.

Defining the class registers it under its `type_name` (default: the class name without
"Home"/"Store", snake_cased: `NumbersHome` -> `numbers`). A name that is taken by another class
is refused with a ConfigError naming both; set `type_name` to choose another. `abstract = True`
marks a shared base that is not usable from YAML itself.

One run per destination: the Flow holds `store.lock(flow)` from before its first attempt to
after its last, so a second run of the same flow is refused (or waits). The default locks a
file beside a store with a `path`; a store kept elsewhere overrides `lock()` (the SQL store
takes a database lock). `destination()` names where a store writes, so flows.yml can refuse
two flows writing one place unless they all use one of the store's `shared_modes`.

Optional abilities are mixins, checked when flows.yml is validated:
- `IncrementalHome`: can read only what is new since the last committed run
  (`incremental_definition`, `resume`, `checkpoint`); required by `incremental: true`.
- `StatefulStore`: keeps that incremental state with the data, committed atomically with it
  (`read_state`, `stage_state`, `reset_state`); required by `incremental: true`.
- `SplittableHome`: can split its data into partitions (`plan_parts`, `part`); required by
  `partitions:` (see hygge/partitions.py and docs/partitions.md).
- `MultiPartStore`: takes parts staged by several processes and publishes them in one commit
  (the parquet, CSV and SQL stores); required by `partitions:`.

Errors: raise `HomeError` / `StoreError` (subclasses of HyggeError) with a message saying what
is wrong and what to do, for a permanent fault: it fails the flow at once. For a fault that may
heal by itself (a dropped connection, a timeout, a deadlock) raise `TransientError`, or any
HyggeError with `transient=True`: the flow is retried with backoff up to `retries` times.
Plain `ConnectionError`, `TimeoutError` and network `OSError`s count as transient too (see
`hygge.retry.is_transient`); anything else is permanent.

Over 400 lines on purpose: the whole contract a plugin author implements, with its
documentation, in one module (the house rule: one place to read it).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar, get_args, get_origin

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo
from pydantic import ValidationError as PydanticValidationError
from pydantic.functional_validators import AfterValidator

from hygge import registry
from hygge.errors import ConfigError
from hygge.locks import FileLock, NoLock, RunLock, lock_file_beside
from hygge.secrets import mask_url
from hygge.storage.location import is_object_url, normalize_url

DEFAULT_BATCH_SIZE = 100_000
# Where a file home or store built in Python without a `path` lives: `data/<name>`, relative
# to the current directory, the layout of hygge's original examples. The home and the store
# of one name share it, so ParquetHome("users") reads what ParquetStore("users") wrote.
DEFAULT_DATA_DIR = "data"


# -- settings ------------------------------------------------------------------------------


class ConnectorSettings(BaseModel):
    """Base of every connector's settings: unknown keys are errors, so typos are caught."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class HomeSettings(ConnectorSettings):
    """Settings every home understands."""

    batch_size: int = Field(DEFAULT_BATCH_SIZE, gt=0, description="Rows per batch.")


class StoreSettings(ConnectorSettings):
    """Settings every store understands."""

    mode: Literal["replace", "append"] = "replace"
    shared_volume: bool = Field(
        False,
        description="A store with a local path: that path is one volume every worker mounts "
        "(`hygge enqueue` of a partitioned flow into a local path needs it).",
    )


def _resolve_path(value: str, info: ValidationInfo) -> str:
    """Relative paths in flows.yml are relative to the file, so a run works from any cwd."""
    if value.startswith("file://"):
        value = value[len("file://") :]  # file:///data/x -> /data/x
    elif "://" in value and not is_object_url(value):
        raise ValueError(
            f"unsupported scheme '{value.split('://', 1)[0]}://' "
            "(use s3://, gs://, az://, abfs://, abfss://, file:// or a local path)"
        )
    if is_object_url(value):
        try:
            return normalize_url(value)  # one spelling: compared, locked, journalled as one
        except ConfigError as exc:
            raise ValueError(exc.message) from None
    base = (info.context or {}).get("base_dir")
    if base and not Path(value).is_absolute():
        value = str(Path(base) / value)
    return os.path.normpath(value) if value else value


# A filesystem path (or glob) setting, resolved against the flows.yml directory.
PathSetting = Annotated[str, AfterValidator(_resolve_path)]

S = TypeVar("S", bound=ConnectorSettings)


def default_type_name(cls_name: str, suffix: str) -> str:
    """ParquetHome -> parquet, NdjsonStore -> ndjson, MyAPIHome -> my_api."""
    base = (
        cls_name[: -len(suffix)] if cls_name.endswith(suffix) and cls_name != suffix else cls_name
    )
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", base).lower()


def default_path(name: str) -> str:
    """The dataset folder of a file home or store named `name` given no `path`."""
    return f"{DEFAULT_DATA_DIR}/{name}"


class OptionsConflict(ValueError):
    """`options` that is not a mapping (key None), or a key set differently in both places."""

    def __init__(self, key: str | None) -> None:
        super().__init__(key)
        self.key = key


def fold_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """`options` folded into the top level, in YAML and Python alike: a setting may stand in
    either place, and the same key in both with different values is refused."""
    folded = dict(values)
    options = folded.pop("options", None) or {}
    if not isinstance(options, Mapping):
        raise OptionsConflict(None)
    for key, value in options.items():
        if key in folded and folded[key] != value:
            raise OptionsConflict(key)
        folded[key] = value
    return folded


# -- what homes and stores share -----------------------------------------------------------


class Connector(Generic[S]):
    """A named, configured endpoint: a name, validated settings, registration by type name."""

    kind: ClassVar[str]  # "home" or "store", set by Home and Store
    type_name: ClassVar[str]
    Settings: ClassVar[type[ConnectorSettings]] = ConnectorSettings
    settings: S

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "Settings" not in cls.__dict__:
            typed = _settings_argument(cls)
            if typed is not None:
                cls.Settings = typed
        if cls.__dict__.get("abstract", False) or not hasattr(cls, "kind"):
            return  # Home/Store themselves and shared bases are not usable from YAML
        if "type_name" not in cls.__dict__:
            cls.type_name = default_type_name(cls.__name__, cls.kind.capitalize())
        registry.register(cls.kind, cls.type_name, cls)

    def __init__(self, name: str, settings: S | None = None, **values: Any) -> None:
        self.name = name
        if settings is None:
            values = self._python_values(name, values)
            try:
                # Settings is S's class; a ClassVar cannot name a type variable.
                settings = self.Settings(**values)  # type: ignore[assignment]
            except PydanticValidationError as exc:
                first = exc.errors()[0]
                key = ".".join(str(p) for p in first["loc"])
                # pydantic's own text echoes the input (a password too): not chained, masked
                message = mask_url(first["msg"].removeprefix("Value error, "))
                raise ConfigError(message, key=f"{self.kind} '{name}' -> {key}") from None
        elif values:
            settings = settings.model_copy(update=values)
        assert settings is not None
        self.settings = settings

    def _python_values(self, name: str, values: dict[str, Any]) -> dict[str, Any]:
        """Settings given in Python: `options={...}` folded in as in YAML, then the defaults
        that follow from the name (`defaults`)."""
        try:
            values = fold_options(values)
        except OptionsConflict as exc:
            key = f"{self.kind} '{name}' -> " + (f"options.{exc.key}" if exc.key else "options")
            message = (
                f"'{exc.key}' is given both directly and in options, differently"
                if exc.key
                else "`options` must be a mapping"
            )
            raise ConfigError(message, key=key, hint="keep one of them") from None
        return {**self.defaults(name, values), **values}

    @classmethod
    def defaults(cls, name: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """Settings implied by the connector's name when Python leaves them out (convention
        over configuration: `SQLHome("users")` reads table users, `ParquetStore("users")`
        writes data/users)."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    async def check(self) -> None:
        """Verify the endpoint is usable without moving data (for validate and --dry-run)."""

    @classmethod
    def path_of(cls, settings: Any) -> str | None:
        """The file path or object URL a connector with these settings reads or writes, or
        None (a database, a plugin's API). What config, planning and the engine ask instead
        of looking inside settings; the default reads a `path` setting."""
        path = getattr(settings, "path", None)
        return path if isinstance(path, str) and path else None

    @classmethod
    def mode_of(cls, settings: Any) -> str | None:
        """How a store with these settings writes (`replace`, `append`, ...), or None."""
        mode = getattr(settings, "mode", None)
        return mode if isinstance(mode, str) else None

    @classmethod
    def columns_of(cls, settings: Any) -> list[str] | None:
        """The columns a home with these settings reads, or None (every column)."""
        columns = getattr(settings, "columns", None)
        return columns if isinstance(columns, list) and columns else None

    @classmethod
    def partition_column_of(cls, settings: Any) -> str | None:
        """The column a home with these settings splits partitions by (`partition_on`)."""
        column = getattr(settings, "partition_on", None)
        return column if isinstance(column, str) and column else None

    def describe(self) -> str:
        """A one-line, secret-free description for plans and logs."""
        path = self.path_of(self.settings)
        return f"{self.type_name}:{path}" if path else self.type_name


def _settings_argument(cls: type) -> type[ConnectorSettings] | None:
    """The settings model given as type argument: `Home[NumbersSettings]` -> NumbersSettings."""
    for base in cls.__dict__.get("__orig_bases__", ()):  # its own bases, not inherited ones
        origin = get_origin(base)
        if isinstance(origin, type) and issubclass(origin, Connector):
            for arg in get_args(base):
                if isinstance(arg, type) and issubclass(arg, ConnectorSettings):
                    return arg
    return None


# -- the two roles -------------------------------------------------------------------------


class Home(Connector[S]):
    """A source of data. Subclass it and implement `read_batches`."""

    kind: ClassVar[str] = "home"
    abstract: ClassVar[bool] = True  # only its subclasses are usable from YAML
    Settings: ClassVar[type[ConnectorSettings]] = HomeSettings

    @property
    def batch_size(self) -> int:
        return int(getattr(self.settings, "batch_size", DEFAULT_BATCH_SIZE))

    @property
    def reads_ahead(self) -> int:
        """Batches this home already holds ahead of the flow on its own (a driver's
        read-ahead): the flow's queue holds that many fewer (at least one), so memory is not
        paid twice for the same overlap."""
        return 0

    async def estimate_rows(self) -> int | None:
        """How many rows the next read will yield, if that is known or cheap to estimate
        (file footers, sizes, a catalog's statistics), for a progress bar; None if not.
        Called after `resume()`, so an incremental read estimates only what is new."""
        return None

    async def read_batches(self) -> AsyncIterator[pl.DataFrame]:
        """Yield the data as DataFrames of at most `batch_size` rows."""
        raise NotImplementedError(f"{type(self).__name__} must implement read_batches()")
        yield  # pragma: no cover  (makes this an async generator)


class Store(Connector[S]):
    """A destination. Subclass it and implement `write`; the other hooks are optional.

    The lifecycle of one flow is `open()`, `write(df)` per batch, then `commit()` (publish
    everything at once) or `abort()` (leave the destination exactly as it was).
    """

    kind: ClassVar[str] = "store"
    abstract: ClassVar[bool] = True
    Settings: ClassVar[type[ConnectorSettings]] = StoreSettings

    async def open(self) -> None:
        """Prepare to receive batches; fail here (before any read) if the target is unusable."""

    async def write(self, df: pl.DataFrame) -> None:
        """Stage one batch. Nothing staged is visible to readers before `commit()`."""
        raise NotImplementedError(f"{type(self).__name__} must implement write()")

    async def write_alone(
        self, stage: Callable[[pl.DataFrame], Awaitable[None]], df: pl.DataFrame
    ) -> None:
        """A write outside a flow (no `open()` first) is one whole commit: `await
        store.write(df)` stages `df` with `stage`, then publishes it atomically, or aborts."""
        await self.open()
        try:
            await stage(df)
            await self.commit()
        except BaseException:
            await self.abort()
            raise

    async def staged_rows(self) -> int | None:
        """Rows staged so far, counted from what was written (not from what was passed in),
        or None when the store cannot count independently."""
        return None

    async def commit(self) -> None:
        """Publish every staged batch at once (with any state given to `stage_state`)."""

    async def abort(self) -> None:
        """Discard every staged batch; the destination stays as it was."""

    # -- one run per destination ------------------------------------------------------------
    # Flows may share a destination by design only in these modes (none replaces another).
    shared_modes: ClassVar[tuple[str, ...]] = ("append",)

    def destination(self) -> str | None:
        """Where this store writes, as a key that two stores writing the same place share
        (so flows.yml can refuse two flows overwriting each other); None: unknown."""
        path = self.path_of(self.settings)
        if not path:
            return None
        return f"url:{path.rstrip('/')}" if is_object_url(path) else f"path:{Path(path).resolve()}"

    def lock(self, flow: str) -> RunLock:
        """The lock a run of `flow` holds on this destination across all its attempts, so a
        second run of the same flow (a cron overlap) is refused or waits instead of loading
        the same data twice. The default locks a file beside a store's `path`, or on S3,
        Azure Blob, GCS and OneLake an object created only if absent (`hygge.storage.lock`);
        a store with no path takes none. A store kept elsewhere (a database) locks there."""
        path = self.path_of(self.settings)
        if not path:
            return NoLock(flow, self.describe())
        return self.lock_at(flow, path)

    def lock_at(self, flow: str, path: str) -> RunLock:
        """The run lock of `flow` beside `path` (a dataset, a folder): a lock object there on
        object storage, else a file beside it."""
        if is_object_url(path):
            from hygge.storage.lock import ObjectLock

            options = getattr(self.settings, "storage_options", None)
            # The run's commit key (a worker sets it to its job's run): a re-delivery of the
            # same run takes over the lock its dead predecessor left.
            owner = getattr(self, "commit_key", None)
            return ObjectLock(flow, self.describe(), path, options, owner)
        target = Path(path)  # resolved: two spellings of one folder share one lock
        return FileLock(flow, str(target), lock_file_beside(target.resolve(), flow))


# -- optional abilities --------------------------------------------------------------------


class IncrementalHome:
    """Ability of a Home: read only what is new since the state committed by the last run.

    The Flow calls `resume(saved)` before reading and `checkpoint()` after, and has the store
    commit that checkpoint together with the data it covers.
    """

    def incremental_definition(self) -> dict[str, Any]:
        """What the saved state depends on (e.g. the cursor column). A saved state made under
        another definition is refused, so a changed flow never resumes from a wrong mark."""
        return {"type": getattr(self, "type_name", type(self).__name__)}

    def resume(self, state: dict[str, Any] | None) -> None:
        """Read only what is new since `state` (None: everything) on the next read."""
        raise NotImplementedError(f"{type(self).__name__} must implement resume()")

    def checkpoint(self) -> dict[str, Any]:
        """The state after the last read: committed with the data it covers."""
        raise NotImplementedError(f"{type(self).__name__} must implement checkpoint()")


class StatefulStore:
    """Ability of a Store: keep a flow's incremental state at the destination, published by
    the same `commit()` as the data, so data and state can never disagree after a crash."""

    async def read_state(self, flow: str) -> dict[str, Any] | None:
        """The state last committed for `flow`, or None (first run, or after a reset)."""
        raise NotImplementedError(f"{type(self).__name__} must implement read_state()")

    def stage_state(self, flow: str, state: dict[str, Any]) -> None:
        """Have the next `commit()` publish `state` atomically with the data."""
        raise NotImplementedError(f"{type(self).__name__} must implement stage_state()")

    async def reset_state(self, flow: str) -> bool:
        """Forget the state of `flow`; True if there was one."""
        raise NotImplementedError(f"{type(self).__name__} must implement reset_state()")

    def completed_rows(self, flow: str) -> int:
        """Rows of `flow` this store published by completing a commit that an interrupted
        run or attempt had begun (a journal it rolled forward), so the run reports them:
        its own read then starts after them. 0 where a commit cannot be left half-done."""
        return 0


class SplittableHome:
    """Ability of a Home: split what it reads into partitions that can be read concurrently.

    `plan_parts(count, ranges)` returns one small JSON-able descriptor per partition (it may
    query the source, e.g. min/max of `partition_on`); `part(descriptor)` is a Home reading
    exactly that share. Together the parts read every row exactly once. An incremental home
    plans inside its resumed window, and `merge_checkpoints` folds the parts' checkpoints
    into the one state committed with the data.

    All parts read one snapshot where the source can share one: what `plan_parts` holds for
    that (a database transaction) lasts until `release_parts(descriptors)`, which the runner
    calls once no part will read any more (`until`: a check polled in the background, for a
    runner whose parts run elsewhere). `parts_note()`: what `validate` says when the parts
    cannot share a snapshot (None: nothing to say).
    """

    async def plan_parts(
        self, count: int | str | None, ranges: list[list[Any]] | None = None
    ) -> list[dict[str, Any]]:
        raise NotImplementedError(f"{type(self).__name__} must implement plan_parts()")

    def part(self, descriptor: dict[str, Any]) -> Home[Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement part()")

    def merge_checkpoints(self, states: list[dict[str, Any]]) -> dict[str, Any]:
        """The state after every part has been read (incremental homes)."""
        raise NotImplementedError(f"{type(self).__name__} must implement merge_checkpoints()")

    def release_parts(
        self, descriptors: list[dict[str, Any]], until: Callable[[], bool] | None = None
    ) -> None:
        """Let go of what `plan_parts` held for the parts (now, or once `until()` is true)."""

    def parts_note(self) -> str | None:
        """A note for `validate` on how the parts read (e.g. not from one snapshot)."""
        return None


class MultiPartStore:
    """Ability of a Store: several processes each stage one part, then one process publishes
    every part at once (parquet and CSV datasets, SQL tables).

    A part is staged by `open_part(part)`, `write(df)` per batch and `seal_part(part)`, which
    makes it durable and returns a small JSON-able description (files, rows) that travels to
    the committing process. Part names are "<flow run>.<part>": the parts of one run share a
    staging area that the committing process can reach. `parts_rows(descriptions)` counts the
    rows staged from what was written; `parts_committed(descriptions)` says whether that
    run's commit landed already; `commit_parts(descriptions)` publishes all parts
    atomically (with any state given to `stage_state`), or none, and is idempotent: the
    parts stay until `abort_parts(descriptions)` discards them (after a failure, or to clean
    up after the commit; a description may be just `{"part": name}`). Parts never see each
    other's staging.
    """

    @classmethod
    def parts_problem(cls, settings: Any) -> str | None:
        """Why a store with these settings cannot take parts (checked at validation), or
        None when it can."""
        return None

    @classmethod
    def local_parts_path(cls, settings: Any) -> str | None:
        """The local path parts stage under, which only the machine that staged a part can
        read unless every worker mounts it (`shared_volume: true`); None when parts stage
        where every worker reaches them (a database, object storage). The default reads a
        `path` setting; a store whose parts live elsewhere overrides it."""
        owner = cls if issubclass(cls, Connector) else Connector  # the store says, or the default
        path = owner.path_of(settings)
        return path if path and not is_object_url(path) else None

    async def open_part(self, part: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement open_part()")

    async def seal_part(self, part: str) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement seal_part()")

    async def parts_rows(self, parts: list[dict[str, Any]]) -> int | None:
        return None

    async def parts_committed(self, parts: list[dict[str, Any]]) -> bool:
        """Has the commit of these parts' flow run landed already? (A commit step run again
        after its publish, its worker killed before the step was recorded as done: then
        the step checks and publishes nothing more, whether or not the parts are still
        there.) False where the store cannot tell; its `commit_parts` stays idempotent."""
        return False

    async def commit_parts(self, parts: list[dict[str, Any]]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement commit_parts()")

    async def abort_parts(self, parts: list[dict[str, Any]]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement abort_parts()")


def parts_run(parts: list[dict[str, Any]]) -> str | None:
    """The flow run these parts belong to (part names are "<flow run>.<part>"), or None."""
    return parts[0]["part"].split(".", 1)[0] if parts else None


def can_resume(home: type | object) -> bool:
    """True when the home (class or instance) can load incrementally."""
    cls = home if isinstance(home, type) else type(home)
    return issubclass(cls, IncrementalHome)


def keeps_state(store: type | object) -> bool:
    """True when the store (class or instance) keeps incremental state with its data."""
    cls = store if isinstance(store, type) else type(store)
    return issubclass(cls, StatefulStore)


def can_split(home: type | object) -> bool:
    """True when the home (class or instance) can split into partitions."""
    cls = home if isinstance(home, type) else type(home)
    return issubclass(cls, SplittableHome)


def takes_parts(store: type | object) -> bool:
    """True when the store (class or instance) can publish parts staged by several processes."""
    cls = store if isinstance(store, type) else type(store)
    return issubclass(cls, MultiPartStore)
