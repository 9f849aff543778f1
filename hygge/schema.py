"""The JSON Schema of flows.yml, built from the registered homes' and stores' settings."""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model

from hygge import registry
from hygge.config import FlowOptions


def _connector_model(kind: str, type_name: str, cls: Any) -> type[BaseModel]:
    settings = cls.Settings
    fields: dict[str, Any] = {
        "type": (Literal[type_name], Field(None)),
        "options": (
            dict[str, Any] | None,
            Field(
                None,
                description=f"More settings of this {kind}, folded into the ones beside "
                "`options` (the same keys; handy to share a block with YAML anchors)",
            ),
        ),
    }
    for name, info in settings.model_fields.items():
        fields[name] = (
            info.annotation,
            Field(info.default, alias=info.alias, description=info.description),
        )
    if kind == "home":  # entity discovery (docs/entities.md), read before validation
        fields["exclude"] = (list[str] | str | None, Field(None, description="Entities to skip"))
        if "table" in settings.model_fields:
            fields["tables"] = (
                list[str] | str | None,
                Field(None, description='Entities: tables by glob, e.g. ["public.*"]'),
            )
            fields["include_views"] = (bool | None, Field(None, description="Views too"))
            fields["missing_cursor"] = (
                Literal["error", "full"] | None,
                Field(None, description="Incremental: a table without the cursor column"),
            )
    return create_model(
        f"{type_name.title()}{kind.title()}",
        __config__=ConfigDict(extra="forbid"),
        **fields,
    )


def flows_json_schema() -> dict[str, Any]:
    """A JSON Schema for editors: homes, stores and flows with every known type's settings."""
    homes = [_connector_model("home", n, c) for n, c in registry.all_classes("home").items()]
    stores = [_connector_model("store", n, c) for n, c in registry.all_classes("store").items()]
    # Unions of the classes registered at run time: no static type can name them.
    home_ref = Union[str, *homes]  # type: ignore[valid-type]
    store_ref = Union[str, *stores]  # type: ignore[valid-type]
    flow_fields: dict[str, Any] = {
        "home": (home_ref, Field(description="A named home, a path or URL, or a mapping")),
        "store": (store_ref, Field(description="A named store, a path, or a mapping")),
        "options": (FlowOptions | None, None),
        "entities": (
            dict[str, dict[str, Any] | None] | None,
            Field(None, description="Per-entity settings, by entity name"),
        ),
    }
    flow_model = create_model("Flow", __config__=ConfigDict(extra="allow"), **flow_fields)
    root = create_model(  # the same run-time unions (pydantic takes them)
        "FlowsFile",
        __config__=ConfigDict(extra="forbid"),
        homes=(dict[str, Union[*homes]] | None, None),  # type: ignore[valid-type, arg-type]
        stores=(dict[str, Union[*stores]] | None, None),  # type: ignore[valid-type, arg-type]
        flows=(dict[str, flow_model], ...),  # type: ignore[valid-type]  # made at run time too
    )
    schema = TypeAdapter(root).json_schema()
    _as_accepted(schema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "hygge flows.yml"
    return schema


def _as_accepted(schema: dict[str, Any]) -> None:
    """What the models' schema says more strictly than flows.yml is read: `depends_on` takes
    one flow name as well as a list (FlowOptions turns one name into a list before it
    validates, which a JSON Schema generated from the field's type cannot know)."""
    options = schema.get("$defs", {}).get("FlowOptions", {}).get("properties", {})
    if "depends_on" in options:
        names = {"type": "array", "items": {"type": "string"}}
        description = options["depends_on"].get("description", "")
        options["depends_on"] = {
            "anyOf": [{"type": "string"}, names],
            "description": f"{description} One name or a list.",
        }
