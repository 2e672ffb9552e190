"""The two published schemas agree with the code that reads and writes them."""

from __future__ import annotations

import copy
from dataclasses import fields
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from astra_sidecar.compiler import table
from astra_sidecar.compiler.providers import known_provider_names
from astra_sidecar.compiler.schemas import INPUT_SCHEMA, TABLE_SCHEMA, load_schema, schema_defaults
from astra_sidecar.compiler.schemas import validator as table_validator
from astra_sidecar.compiler.table import Json
from tests.compiler.helpers import compile_text


@pytest.mark.parametrize("name", [INPUT_SCHEMA, TABLE_SCHEMA])
def test_schemas_are_valid_draft_2020_12(name: str) -> None:
    schema = load_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_provider_examples_are_the_registry() -> None:
    assert load_schema(INPUT_SCHEMA)["$defs"]["providerName"]["examples"] == list(known_provider_names())


@pytest.mark.parametrize(
    ("pointer", "model"),
    [("$defs/retry", table.RetryPolicy), ("$defs/circuitBreaker", table.BreakerPolicy),
     ("$defs/timeouts", table.Timeouts), ("$defs/settings/properties/listen", table.Listen)],
)
def test_schema_defaults_match_the_table_model(pointer: str, model: type) -> None:
    expected = {}
    for f in fields(model):
        head, *rest = f.name.split("_")
        value = f.default
        expected[head + "".join(p.capitalize() for p in rest)] = list(value) if isinstance(value, tuple) else value
    assert schema_defaults(pointer) == expected


def test_mock_defaults_match_the_table_model() -> None:
    mock = table.MockBehavior()
    assert schema_defaults("$defs/mock") == {"latencyMs": mock.latency_ms, "chunkDelayMs": mock.chunk_delay_ms,
                                             "failRate": mock.fail_rate, "seed": mock.seed}


def test_gateway_defaults_match_the_table_model() -> None:
    defaults = schema_defaults("$defs/settings")
    assert (defaults["drainGraceMs"], defaults["maxBodyBytes"]) == (
        table.Settings().drain_grace_ms, table.Settings().max_body_bytes)


def test_fallback_targets_accept_the_model_target_keys() -> None:
    defs = load_schema(INPUT_SCHEMA)["$defs"]
    target_keys = set(defs["fallbackTarget"]["properties"])
    assert target_keys == {
        "provider", "modelId", "endpoint", "region", "vertex", "credentials", "capabilities", "mock", "maxContextTokens",
        "pool",
    }
    assert target_keys < set(defs["model"]["properties"])


def test_every_object_in_the_input_schema_is_closed() -> None:
    """Misspelled keys must never be ignored: every object schema says what else it accepts."""
    open_objects = []

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                open_objects.append(where)
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}/{index}")

    walk(load_schema(INPUT_SCHEMA), "#")
    assert open_objects == []


def _paths(node: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every object key path in a JSON document (list items skipped)."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.append((*prefix, key))
            found.extend(_paths(value, (*prefix, key)))
    return found


def _rich_table() -> Json:
    """A table where every optional field has a value, so every key gets checked."""
    return compile_text(
        "settings:\n  inboundAuth: {tokenEnv: T}\n  timeouts: {attemptMs: 1000}\n"
        "providers:\n  openrouter: {headers: {X-Title: t}}\n"
        "agents:\n  a:\n    displayName: A\n    tier: t\n    systemPrompt: hi\n    promptVars: {v: x}\n"
        "    tools: {allow: [s], deny: [d]}\n"
        "    model:\n      provider: gemini\n      modelId: g\n      temperature: 1\n"
        "      maxContextTokens: 9\n      maxOutputTokens: 8\n"
        "      vertex: {project: p, location: l, credentialsFile: f}\n      fallback:\n"
        "        - {provider: bedrock, modelId: b, region: r}\n        - {provider: ollama, modelId: o}\n"
        "        - {provider: openrouter, modelId: r}\n        - {provider: vllm, modelId: v, endpoint: 'http://gpu:8000'}\n"
        "        - {provider: mock, modelId: m, mock: {reply: r, status: 500, retryAfterMs: 1, cutAfterChunks: 2}}\n"
    )


def test_table_schema_requires_exactly_what_table_py_needs() -> None:
    """Dropping a key breaks table_from_json exactly when the artifact schema requires it."""
    data = _rich_table()
    validator = table_validator(TABLE_SCHEMA)
    free_form = {"clusters", "agents", "headers", "renameParams", "promptVars"}
    checked = 0
    for path in _paths(data):
        if (path[-2:-1] and path[-2] in free_form) or path == ("hash",):
            continue
        broken = copy.deepcopy(data)
        parent: Any = broken
        for key in path[:-1]:
            parent = parent[key]
        del parent[path[-1]]
        schema_says = not validator.is_valid(broken)
        try:
            table.table_from_json(broken)
            reader_needs = False
        except KeyError:
            reader_needs = True
        assert schema_says == reader_needs, path
        checked += 1
    assert checked > 80


def test_table_schema_rejects_unknown_keys() -> None:
    data = _rich_table()
    data["extra"] = 1
    errors = list(Draft202012Validator(load_schema(TABLE_SCHEMA)).iter_errors(data))
    assert [e.validator for e in errors] == ["additionalProperties"]
