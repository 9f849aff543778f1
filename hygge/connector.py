"""What homes and stores share: a name, a validated settings model, registration by type."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationInfo
from pydantic import ValidationError as PydanticValidationError
from pydantic.functional_validators import AfterValidator

from hygge.errors import ConfigError


class ConnectorSettings(BaseModel):
    """Base of every connector's settings: unknown keys are errors, so typos are caught."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _resolve_path(value: str, info: ValidationInfo) -> str:
    """Relative paths in flows.yml are relative to the file, so a run works from any cwd."""
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


class Connector:
    """A named, configured endpoint. Subclasses declare `Settings` and optionally `type_name`."""

    kind: ClassVar[str]
    type_name: ClassVar[str]
    Settings: ClassVar[type[ConnectorSettings]] = ConnectorSettings

    def __init__(self, name: str, settings: ConnectorSettings | None = None, **values: Any) -> None:
        self.name = name
        if settings is None:
            values = self._python_values(name, values)
            try:
                settings = self.Settings(**values)
            except PydanticValidationError as exc:
                first = exc.errors()[0]
                key = ".".join(str(p) for p in first["loc"])
                raise ConfigError(first["msg"], key=f"{self.kind} '{name}' -> {key}") from exc
        elif values:
            settings = settings.model_copy(update=values)
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
        over configuration: `SqlHome("users")` reads table users)."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    async def check(self) -> None:
        """Verify the endpoint is usable without moving data (for validate and --dry-run)."""

    def describe(self) -> str:
        """A one-line, secret-free description for plans and logs."""
        path = getattr(self.settings, "path", None)
        return f"{self.type_name}:{path}" if path else self.type_name
