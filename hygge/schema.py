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
        "options": (dict[str, Any] | None, Field(None, description="Settings, again")),
    }
    for name, info in settings.model_fields.items():
        fields[name] = (
            info.annotation,
            Field(info.default, alias=info.alias, description=info.description),
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
    home_ref = Union[str, *homes]  # type: ignore[valid-type]
    store_ref = Union[str, *stores]  # type: ignore[valid-type]
    flow_fields: dict[str, Any] = {
        "home": (home_ref, Field(description="A named home, a path or URL, or a mapping")),
        "store": (store_ref, Field(description="A named store, a path, or a mapping")),
        "options": (FlowOptions | None, None),
    }
    flow_model = create_model("Flow", __config__=ConfigDict(extra="allow"), **flow_fields)
    root = create_model(
        "FlowsFile",
        __config__=ConfigDict(extra="forbid"),
        homes=(dict[str, Union[*homes]] | None, None),  # type: ignore[valid-type, arg-type]
        stores=(dict[str, Union[*stores]] | None, None),  # type: ignore[valid-type, arg-type]
        flows=(dict[str, flow_model], ...),  # type: ignore[valid-type]
    )
    schema = TypeAdapter(root).json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "hygge flows.yml"
    return schema
