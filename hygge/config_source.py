"""Where flows.yml parsing is, and how its errors read: file, line, flow, key, the nearest
valid choice. Pydantic's errors are translated here, so every message has the same shape."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from hygge import registry, yamlpos
from hygge.errors import ConfigError


@dataclass
class Source:
    """Where parsing is: for messages and line numbers."""

    file: str
    located: yamlpos.Located | None
    base_dir: Path
    env: Mapping[str, str] | None
    flow: str | None = None
    # What the file's flows write: store path -> (flow, store type). A home reading one of
    # them takes its type from there, since the data does not exist before that flow runs.
    produced: dict[Path, tuple[str, str]] = field(default_factory=dict)

    def error(
        self,
        message: str,
        path: tuple[Any, ...] = (),
        key: str | None = None,
        hint: str | None = None,
    ) -> ConfigError:
        line = self.located.line(path) if self.located else None
        return ConfigError(message, file=self.file, line=line, flow=self.flow, key=key, hint=hint)


def validate(
    source: Source,
    model: type[BaseModel],
    data: dict[str, Any],
    origin: tuple[Any, ...],
    what: str,
) -> Any:
    try:
        return model.model_validate(data, context={"base_dir": str(source.base_dir)})
    except PydanticValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc)
        fields = sorted(model.model_fields)
        path = (
            (*origin, *loc)
            if (*origin, *loc) in (source.located.lines if source.located else {})
            else (*origin, "options", *loc)
        )
        if err["type"] == "extra_forbidden":
            raise source.error(
                f"unknown key '{key}'",
                path,
                key=f"{what}.{key}",
                hint=choices_hint(str(loc[-1]), fields, "keys"),
            ) from None
        if err["type"] == "missing":
            raise source.error(
                f"missing required key '{key}'",
                (*origin,),
                key=f"{what}.{key}",
                hint=field_hint(model, str(loc[0])),
            ) from None
        hint = None
        if err["type"] == "literal_error" and isinstance(err.get("input"), str):
            choices = [
                str(c)
                for c in (err.get("ctx") or {})
                .get("expected", "")
                .replace("'", "")
                .replace(" or ", ", ")
                .split(", ")
                if c
            ]
            hint = choices_hint(err["input"], choices, "values")
        message = err["msg"].removeprefix("Value error, ")  # our validators' own words
        raise source.error(
            f"{message} (got {err.get('input')!r})", path, key=f"{what}.{key}", hint=hint
        ) from None


def field_hint(model: type[BaseModel], name: str) -> str | None:
    info = model.model_fields.get(name)
    return info.description if info is not None and info.description else None


def choices_hint(word: str, choices: list[str], what: str) -> str:
    near = registry.suggest(word, choices)
    listing = f"valid {what}: {', '.join(choices)}"
    return f"did you mean '{near}'? ({listing})" if near else listing
