"""Turning a schema pydantic produced into a published file: ``$id``, dialect, canonical text."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from o_bus.errors import ErrorCode

from .error_codes import ERROR_MEANINGS
from .paths import ID_PREFIX, JSON_SCHEMA_DIALECT

__all__ = ["document", "dump", "require_all", "serialized"]


def require_all(node: Any) -> None:
    """Mark every property of every object schema required (serialised models have them all)."""
    if isinstance(node, dict):
        properties = node.get("properties")
        if node.get("type") == "object" and isinstance(properties, dict):
            node["required"] = list(properties)
        for value in node.values():
            require_all(value)
    elif isinstance(node, list):
        for item in node:
            require_all(item)


def serialized(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of ``model`` as it is sent: every field is always present."""
    schema = model.model_json_schema(mode="serialization")
    require_all(schema)
    return schema


def _describe_error_codes(schema: dict[str, Any]) -> None:
    codes = schema.get("$defs", {}).get("ErrorCode")
    if codes is not None:
        codes["x-enumDescriptions"] = {code.value: ERROR_MEANINGS[code] for code in ErrorCode}


def document(
    path: str,
    schema: dict[str, Any],
    *,
    title: str | None = None,
    description: str | None = None,
    extension: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``schema`` as the file at ``path``: dialect, ``$id``, texts, error code meanings."""
    schema = {"$schema": JSON_SCHEMA_DIALECT, "$id": ID_PREFIX + path, **schema}
    if title is not None:
        schema["title"] = title
    if description is not None:
        schema["description"] = description
    if extension is not None:
        schema["x-o-bus"] = extension
    _describe_error_codes(schema)
    return schema


def dump(doc: Mapping[str, Any]) -> str:
    """Canonical text of a JSON file: sorted keys, two-space indents, one trailing newline."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
