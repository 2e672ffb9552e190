"""JSON Schema validation of astra.yml (Draft 2020-12), with errors mapped to line:col.

Each jsonschema error becomes one diagnostic with a stable code: unknown keys AST101 (at the key,
with a "did you mean"), missing keys AST102 (at the mapping's key), wrong types AST103, invalid
values AST104 and numbers out of range AST105 (at the value). When a value has the wrong type,
other complaints about that same value are dropped: they only repeat the type error.
`validate_parts` also says which agents hold the errors, so the document checks can still run on
the other agents (`astra_sidecar.compiler.loader`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped]

from astra_sidecar.compiler.diagnostics import Diagnostic, suggestion
from astra_sidecar.compiler.schemas import INPUT_SCHEMA, validator
from astra_sidecar.compiler.yamlpos import Path, YamlDocument, dotted

_JSON_TYPES = {
    type(None): "nothing",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a mapping",
}
_SCHEMA_TYPES = {
    "null": "null",
    "boolean": "a boolean",
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "array": "a list",
    "object": "a mapping",
}
_LISTED_KEYS = 8
_RANGE = {
    "minimum": "at least",
    "maximum": "at most",
    "exclusiveMinimum": "above",
    "exclusiveMaximum": "below",
}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _type_name(value: Any) -> str:
    name = _JSON_TYPES.get(type(value), type(value).__name__)
    return f"{name} {_short(value)}" if isinstance(value, str | int | float) else name


def _unknown_keys(doc: YamlDocument, path: Path, err: ValidationError) -> Iterator[Diagnostic]:
    schema = err.schema if isinstance(err.schema, dict) else {}
    known = list(schema.get("properties", {}))
    patterns = [re.compile(pattern) for pattern in schema.get("patternProperties", {})]
    for key in err.instance:
        if key not in known and not any(p.search(key) for p in patterns):
            where = "" if not path else f" in {dotted(path)}"
            hint = suggestion(key, known)
            if not hint and len(known) <= _LISTED_KEYS:
                hint = "; allowed keys: " + ", ".join(known)
            yield doc.diag(doc.key_pos((*path, key)), "AST101", f"unknown key '{key}'{where}{hint}")


def _missing_keys(doc: YamlDocument, path: Path, err: ValidationError) -> Iterator[Diagnostic]:
    for key in err.validator_value:
        if key not in err.instance:
            yield doc.diag(doc.key_pos(path), "AST102", f"{dotted(path)}: missing required key '{key}'")


def _pattern_message(err: ValidationError) -> str:
    schema = err.schema if isinstance(err.schema, dict) else {}
    hint = schema.get("patternErrorMessage") or f"must match the pattern {err.validator_value}"
    return f"{_short(err.instance)} {hint}"


def _value_message(err: ValidationError) -> tuple[str, str]:
    """(code, message without the path) for an error about the value itself."""
    kind, expected, value = err.validator, err.validator_value, err.instance
    if kind == "type":
        names = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_SCHEMA_TYPES[name] for name in names)
        return "AST103", f"expected {wanted}, got {_type_name(value)}"
    if kind in _RANGE:
        return "AST105", f"{value} is out of range: must be {_RANGE[str(kind)]} {expected}"
    if kind == "const":
        return "AST104", f"{_short(value)} is not supported: must be {expected!r}"
    if kind == "enum":
        options = ", ".join(str(o) for o in expected)
        return (
            "AST104",
            f"{_short(value)} is not one of: {options}{suggestion(str(value), map(str, expected))}",
        )
    if kind == "pattern":
        return "AST104", _pattern_message(err)
    if kind in ("minLength", "minItems", "minProperties") and expected == 1:
        return "AST104", "must not be empty"
    return "AST104", err.message


def _duplicate_item(value: list[Any]) -> int:
    seen: list[Any] = []
    for index, item in enumerate(value):
        if item in seen:
            return index
        seen.append(item)
    return 0


def _diagnose(doc: YamlDocument, err: ValidationError) -> Iterator[Diagnostic]:
    path: Path = tuple(err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        yield from _unknown_keys(doc, path, err)
    elif err.validator == "required" and isinstance(err.instance, dict):
        yield from _missing_keys(doc, path, err)
    elif "propertyNames" in err.relative_schema_path:
        key = str(err.instance)
        yield doc.diag(doc.key_pos((*path, key)), "AST104", f"{dotted(path)}: key {_pattern_message(err)}")
    elif err.validator == "uniqueItems" and isinstance(err.instance, list):
        index = _duplicate_item(err.instance)
        message = f"{dotted(path)}: {_short(err.instance[index])} is listed more than once"
        yield doc.diag(doc.value_pos((*path, index)), "AST104", message)
    else:
        code, message = _value_message(err)
        yield doc.diag(doc.value_pos(path), code, f"{dotted(path)}: {message}")


def _relevant(errors: list[ValidationError]) -> Iterator[ValidationError]:
    """Drop errors that only repeat a type error on the same value (keep the outermost type error)."""
    type_errors: dict[Path, ValidationError] = {}
    for err in errors:
        path: Path = tuple(err.absolute_path)
        if err.validator == "type" and (
            path not in type_errors or len(err.schema_path) < len(type_errors[path].schema_path)
        ):
            type_errors[path] = err
    for err in errors:
        path = tuple(err.absolute_path)
        if path not in type_errors or err is type_errors[path]:
            yield err


@dataclass(frozen=True, slots=True)
class SchemaResult:
    """The schema's diagnostics, and which agents they are confined to.

    `invalid_agents` holds the key (mapping form) or index (list form) of every agent with an
    error; it is None when some error lies outside one agent (settings, providers, the shape of
    `agents` itself), in which case nothing after the schema can be checked.
    """

    diagnostics: list[Diagnostic]
    invalid_agents: frozenset[str | int] | None


def _agent_of(path: Path) -> str | int | None:
    return path[1] if len(path) >= 2 and path[0] == "agents" else None


def validate_parts(doc: YamlDocument) -> SchemaResult:
    """Every schema violation in `doc`, sorted, each at most once, and the agents they are in."""
    errors = list(validator(INPUT_SCHEMA).iter_errors(doc.data))
    found: set[Diagnostic] = set()
    agents: set[str | int] | None = set()
    for err in _relevant(errors):
        found.update(_diagnose(doc, err))
        agent = _agent_of(tuple(err.absolute_path))
        if agent is None:
            agents = None
        elif agents is not None:
            agents.add(agent)
    return SchemaResult(sorted(found), None if agents is None else frozenset(agents))


def validate(doc: YamlDocument) -> list[Diagnostic]:
    """Every schema violation in `doc`, sorted, each at most once."""
    return validate_parts(doc).diagnostics
