"""What homes and stores share: a name, a validated settings model, registration by type."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationInfo
from pydantic import ValidationError as PydanticValidationError
from pydantic.functional_validators import AfterValidator

from hygge.errors import ConfigError
from hygge.storage.location import is_object_url


class ConnectorSettings(BaseModel):
    """Base of every connector's settings: unknown keys are errors, so typos are caught."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _resolve_path(value: str, info: ValidationInfo) -> str:
    """Relative paths in flows.yml are relative to the file, so a run works from any cwd."""
    if value.startswith("file://"):
        value = value[len("file://") :]  # file:///data/x -> /data/x
    elif "://" in value and not is_object_url(value):
        raise ValueError(
            f"unsupported scheme '{value.split('://', 1)[0]}://' "
            "(use s3://, gs://, az://, abfs://, abfss://, file:// or a local path)"
        )
    base = (info.context or {}).get("base_dir")
    if base and "://" not in value and not Path(value).is_absolute():
        return str(Path(base) / value)
    return value


# A filesystem path (or glob) setting, resolved against the flows.yml directory.
PathSetting = Annotated[str, AfterValidator(_resolve_path)]


def default_type_name(cls_name: str, suffix: str) -> str:
    """ParquetHome -> parquet, NdjsonStore -> ndjson, MyAPIHome -> my_api."""
    base = (
        cls_name[: -len(suffix)] if cls_name.endswith(suffix) and cls_name != suffix else cls_name
    )
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", base).lower()


class Connector:
    """A named, configured endpoint. Subclasses declare `Settings` and optionally `type_name`."""

    kind: ClassVar[str]
    type_name: ClassVar[str]
    Settings: ClassVar[type[ConnectorSettings]] = ConnectorSettings

    def __init__(self, name: str, settings: ConnectorSettings | None = None, **values: Any) -> None:
        self.name = name
        if settings is None:
            try:
                settings = self.Settings(**values)
            except PydanticValidationError as exc:
                first = exc.errors()[0]
                key = ".".join(str(p) for p in first["loc"])
                raise ConfigError(first["msg"], key=f"{self.kind} '{name}' -> {key}") from exc
        elif values:
            settings = settings.model_copy(update=values)
        self.settings = settings

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    async def check(self) -> None:
        """Verify the endpoint is usable without moving data (for validate and --dry-run)."""

    def describe(self) -> str:
        """A one-line, secret-free description for plans and logs."""
        path = getattr(self.settings, "path", None)
        return f"{self.type_name}:{path}" if path else self.type_name
