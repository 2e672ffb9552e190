"""The Anthropic adapter's tools, tool_choice and JSON mode, native and emulated
(`astra_sidecar.sidecar.protocols.anthropic.upstream_tools`, `upstream_request`).
"""

from __future__ import annotations

from typing import Any

import pytest

from astra_sidecar.sidecar.protocols.anthropic.upstream_tools import JSON_TOOL_NAME
from tests.sidecar.protocols.anthropic.helpers import (
    TIME_TOOL,
    WEATHER_TOOL,
    Json,
    build,
    chat,
    user,
    with_cache,
)

# --- request: tools and tool_choice ---------------------------------------------------------------


def test_tool_definitions() -> None:
    strict = {"type": "function", "function": {**WEATHER_TOOL["function"], "strict": True}}
    body = build(chat(user("q"), tools=[strict, TIME_TOOL]))
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
            "strict": True,
        },
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert body["tool_choice"] == {"type": "auto"}


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        (None, None, {"type": "auto"}),
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("none", False, {"type": "none"}),
        ("required", None, {"type": "any"}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        (None, True, {"type": "auto"}),
        ({"type": "function", "function": {"name": "get_time"}}, None, {"type": "tool", "name": "get_time"}),
        (
            {"type": "function", "function": {"name": "get_time"}},
            False,
            {"type": "tool", "name": "get_time", "disable_parallel_tool_use": True},
        ),
    ],
)
def test_tool_choice(choice: Any, parallel: bool | None, expected: Json) -> None:
    extra: Json = {"tools": [WEATHER_TOOL, TIME_TOOL]}
    if choice is not None:
        extra["tool_choice"] = choice
    if parallel is not None:
        extra["parallel_tool_calls"] = parallel
    body = build(chat(user("q"), **extra))
    assert body["tool_choice"] == expected
    assert [t["name"] for t in body["tools"]] == ["get_weather", "get_time"]


@pytest.mark.parametrize(("mode", "expected"), [("auto", "auto"), ("required", "any")])
def test_allowed_tools_filters_the_list(mode: str, expected: str) -> None:
    choice = {
        "type": "allowed_tools",
        "allowed_tools": {"mode": mode, "tools": [{"type": "function", "function": {"name": "get_time"}}]},
    }
    body = build(chat(user("q"), tools=[WEATHER_TOOL, TIME_TOOL], tool_choice=choice))
    assert [t["name"] for t in body["tools"]] == ["get_time"]
    assert body["tool_choice"] == {"type": expected}


def test_tool_choice_without_tools_is_dropped() -> None:
    body = build(chat(user("q"), tool_choice="required", parallel_tool_calls=False))
    assert "tools" not in body and "tool_choice" not in body


# --- request: JSON mode -------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}},
    "required": ["name"],
    "additionalProperties": False,
}


def test_json_schema_uses_native_structured_output() -> None:
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": SCHEMA, "strict": True},
    }
    body = build(chat(user("Who?"), response_format=response_format))
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}
    assert "tools" not in body and "response_format" not in body


JSON_TOOL = {
    "name": JSON_TOOL_NAME,
    "description": "Give your complete answer to the user as one JSON object: the input of this tool.",
    "input_schema": {"type": "object"},
}


@pytest.mark.parametrize(
    ("extra", "tool_names", "choice"),
    [
        ({}, [JSON_TOOL_NAME], {"type": "tool", "name": JSON_TOOL_NAME}),
        (
            {"parallel_tool_calls": False},
            [JSON_TOOL_NAME],
            {"type": "tool", "name": JSON_TOOL_NAME, "disable_parallel_tool_use": True},
        ),
        ({"tools": [TIME_TOOL]}, ["get_time", JSON_TOOL_NAME], {"type": "any"}),
        ({"tools": [TIME_TOOL], "tool_choice": "auto"}, ["get_time", JSON_TOOL_NAME], {"type": "any"}),
        (
            {"tools": [TIME_TOOL], "tool_choice": "none"},
            ["get_time", JSON_TOOL_NAME],
            {"type": "tool", "name": JSON_TOOL_NAME},
        ),
        ({"tools": [TIME_TOOL], "tool_choice": "required"}, ["get_time"], {"type": "any"}),
        (
            {"tools": [TIME_TOOL], "tool_choice": {"type": "function", "function": {"name": "get_time"}}},
            ["get_time"],
            {"type": "tool", "name": "get_time"},
        ),
    ],
)
def test_json_object_is_emulated_with_a_forced_tool(extra: Json, tool_names: list[str], choice: Json) -> None:
    body = build(chat(user("JSON please"), response_format={"type": "json_object"}, **extra))
    assert [t["name"] for t in body["tools"]] == tool_names
    assert body["tool_choice"] == choice
    if JSON_TOOL_NAME in tool_names:
        assert body["tools"][-1] == JSON_TOOL
    assert "output_config" not in body


def test_schemaless_json_schema_is_emulated_too_and_name_clash_disables_it() -> None:
    body = build(chat(user("q"), response_format={"type": "json_schema", "json_schema": {"name": "any"}}))
    assert body["tool_choice"] == {"type": "tool", "name": JSON_TOOL_NAME}
    assert "output_config" not in body
    clash = {"type": "function", "function": {"name": JSON_TOOL_NAME}}
    plain = build(chat(user("q"), response_format={"type": "json_object"}, tools=[clash]))
    assert plain["tools"] == [{"name": JSON_TOOL_NAME, "input_schema": {"type": "object", "properties": {}}}]
    assert plain["tool_choice"] == {"type": "auto"}


def test_json_tool_gets_the_tool_cache_mark() -> None:
    body = build(chat(user("q"), response_format={"type": "json_object"}), agent=with_cache(tools=True))
    assert body["tools"] == [{**JSON_TOOL, "cache_control": {"type": "ephemeral"}}]
