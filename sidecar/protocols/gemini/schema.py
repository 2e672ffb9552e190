"""Function parameter schemas → Gemini's OpenAPI-3.0 `Schema` subset (sent as `parameters`).

`parameters` is accepted by every model on both surfaces and API versions (`v1` on Vertex
included), while `parametersJsonSchema` is newer and not everywhere. Cleanup inlines local `$ref`s
(recursion → a bare object), merges `allOf`, turns `oneOf` into `anyOf`, `type: [T, "null"]` and
`anyOf`-with-null into `nullable`, `const` into a one-value `enum`, keeps only string enums and
the `format`s Gemini knows, drops every other keyword, filters `required` to declared properties,
upper-cases types, and returns None for an argument-less function.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from astra_sidecar.sidecar.protocols.gemini.json_values import as_dict
from astra_sidecar.sidecar.protocols.openai.wire import Json

_PLAIN_SCHEMA_KEYS = tuple(
    [
        "title",
        "description",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "default",
        "minimum",
        "maximum",
        "propertyOrdering",
    ]
)
_FORMATS = {
    "STRING": frozenset({"enum", "date-time"}),
    "NUMBER": frozenset({"float", "double"}),
    "INTEGER": frozenset({"int32", "int64"}),
}
_REF_PREFIXES = ("#/$defs/", "#/definitions/")


def clean_parameters(schema: Any) -> Json | None:
    """A function's JSON Schema parameters as Gemini's `Schema` subset; None when it takes none."""
    if not isinstance(schema, dict):
        return None
    defs = {**as_dict(schema.get("definitions")), **as_dict(schema.get("$defs"))}
    cleaned = clean_schema(schema, defs)
    cleaned.setdefault("type", "OBJECT")
    if cleaned["type"] == "OBJECT" and not cleaned.get("properties"):
        return None
    return cleaned


def clean_schema(node: Any, defs: Mapping[str, Any], stack: tuple[str, ...] = ()) -> Json:
    if not isinstance(node, dict):
        return {}
    ref = node.get("$ref")
    if isinstance(ref, str):
        return _clean_ref(ref, node, defs, stack)
    if isinstance(node.get("allOf"), list):
        node = _merge_all_of(node)
    out: Json = {key: node[key] for key in _PLAIN_SCHEMA_KEYS if key in node}
    nullable = node.get("nullable") is True
    nullable |= _clean_type(node.get("type"), out)
    nullable |= _clean_any_of(node, out, defs, stack)
    _clean_enum(node, out)
    _clean_object(node, out, defs, stack)
    items = node.get("items")
    if isinstance(items, dict):
        out["items"] = clean_schema(items, defs, stack)
        out.setdefault("type", "ARRAY")
    fmt = node.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS.get(out.get("type", ""), ()):
        out["format"] = fmt
    if nullable:
        out["nullable"] = True
    return out


def _clean_ref(ref: str, node: Json, defs: Mapping[str, Any], stack: tuple[str, ...]) -> Json:
    name = next((ref[len(p) :] for p in _REF_PREFIXES if ref.startswith(p)), None)
    if name is None or name in stack or not isinstance(defs.get(name), dict):
        out: Json = {"type": "OBJECT"}
        if isinstance(node.get("description"), str):
            out["description"] = node["description"]
        return out
    siblings = {k: v for k, v in node.items() if k != "$ref"}
    return clean_schema({**defs[name], **siblings}, defs, (*stack, name))


def _merge_all_of(node: Json) -> Json:
    merged: Json = {k: v for k, v in node.items() if k != "allOf"}
    for part in node["allOf"]:
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if key == "properties" and isinstance(value, dict):
                merged["properties"] = {**as_dict(merged.get("properties")), **value}
            elif key == "required" and isinstance(value, list):
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return merged


def _clean_type(raw: Any, out: Json) -> bool:
    """Set `out["type"]`; True when the JSON Schema type admits null."""
    types = raw if isinstance(raw, list) else [raw] if isinstance(raw, str) else []
    named = [t for t in types if isinstance(t, str) and t != "null"]
    if len(named) == 1:
        out["type"] = named[0].upper()
    elif len(named) > 1:
        out["anyOf"] = [{"type": t.upper()} for t in named]
    return "null" in types


def _is_null_schema(node: Any) -> bool:
    return isinstance(node, dict) and node.get("type") == "null"


def _clean_any_of(node: Json, out: Json, defs: Mapping[str, Any], stack: tuple[str, ...]) -> bool:
    branches = node.get("anyOf", node.get("oneOf"))
    if not isinstance(branches, list):
        return False
    kept = [b for b in branches if not _is_null_schema(b)]
    if len(kept) == 1 and "type" not in out:
        single = clean_schema(kept[0], defs, stack)
        for key, value in single.items():
            out.setdefault(key, value)
    elif kept:
        out["anyOf"] = [clean_schema(b, defs, stack) for b in kept]
    return len(kept) < len(branches)


def _clean_enum(node: Json, out: Json) -> None:
    values = [node["const"]] if "const" in node else node.get("enum")
    if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
        out["enum"] = values
        out.setdefault("type", "STRING")
        if out["type"] == "STRING":
            out["format"] = "enum"


def _clean_object(node: Json, out: Json, defs: Mapping[str, Any], stack: tuple[str, ...]) -> None:
    properties = node.get("properties")
    if not isinstance(properties, dict):
        return
    out["properties"] = {name: clean_schema(sub, defs, stack) for name, sub in properties.items()}
    out.setdefault("type", "OBJECT")
    required = node.get("required")
    if isinstance(required, list):
        kept = [r for r in dict.fromkeys(required) if isinstance(r, str) and r in properties]
        if kept:
            out["required"] = kept
