"""The Bedrock adapter's request tools, inference config and JSON mode: tool choice, stub tool specs,
cache points, maxTokens/temperature/stop, and `response_format` to `outputConfig`."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from astra_sidecar.compiler.table import PromptCache
from tests.sidecar.protocols.bedrock.helpers import HISTORY, chat, converse, make_agent, user, weather_tool


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"auto": {}}),
        ("required", {"any": {}}),
        ({"type": "function", "function": {"name": "get_time"}}, {"tool": {"name": "get_time"}}),
    ],
)
def test_tool_choice_mapping(choice: Any, expected: dict[str, Any]) -> None:
    tools = [weather_tool(), weather_tool("get_time")]
    sent = converse(chat(user("x"), tools=tools, tool_choice=choice))
    assert sent["toolConfig"]["toolChoice"] == expected
    assert [t["toolSpec"]["name"] for t in sent["toolConfig"]["tools"]] == ["get_weather", "get_time"]


def test_no_tool_choice_means_bedrock_default() -> None:
    sent = converse(chat(user("x"), tools=[weather_tool()]))
    assert "toolChoice" not in sent["toolConfig"]


def test_allowed_tools_narrows_the_list() -> None:
    choice = {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "required",
            "tools": [{"type": "function", "function": {"name": "get_time"}}],
        },
    }
    sent = converse(chat(user("x"), tools=[weather_tool(), weather_tool("get_time")], tool_choice=choice))
    assert [t["toolSpec"]["name"] for t in sent["toolConfig"]["tools"]] == ["get_time"]
    assert sent["toolConfig"]["toolChoice"] == {"any": {}}


def test_tool_choice_none_omits_tools_without_tool_history() -> None:
    sent = converse(chat(user("x"), tools=[weather_tool()], tool_choice="none"))
    assert "toolConfig" not in sent


def test_tool_choice_none_keeps_tool_config_when_history_has_tool_blocks() -> None:
    sent = converse(chat(*HISTORY, tools=[weather_tool()], tool_choice="none"))
    assert sent["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "Weather",
                    "inputSchema": {"json": weather_tool()["function"]["parameters"]},
                }
            }
        ]
    }


def test_tool_history_without_tools_gets_stub_tool_specs() -> None:
    sent = converse(chat(*HISTORY))
    assert sent["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "inputSchema": {"json": {"type": "object", "properties": {}}},
                }
            }
        ]
    }


def test_tools_cache_point_when_the_agent_caches_tools() -> None:
    agent = make_agent(prompt_cache=PromptCache(tools=True))
    sent = converse(chat(user("x"), tools=[weather_tool()]), agent)
    assert sent["toolConfig"]["tools"][-1] == {"cachePoint": {"type": "default"}}
    assert len(sent["toolConfig"]["tools"]) == 2


def test_function_strict_is_not_forwarded() -> None:
    tool = weather_tool()
    tool["function"]["strict"] = True
    sent = converse(chat(user("x"), tools=[tool]))
    assert "strict" not in sent["toolConfig"]["tools"][0]["toolSpec"]


@pytest.mark.parametrize(
    ("params", "agent_max", "expected"),
    [
        ({"max_completion_tokens": 100, "max_tokens": 50}, 10, {"maxTokens": 100}),
        ({"max_tokens": 50}, 10, {"maxTokens": 50}),
        ({}, 10, {"maxTokens": 10}),
        ({"temperature": 1.7, "top_p": 0.9}, None, {"temperature": 1.0, "topP": 0.9}),
        ({"temperature": 0}, None, {"temperature": 0.0}),
        ({"stop": "END"}, None, {"stopSequences": ["END"]}),
        ({"stop": ["a", "b"]}, None, {"stopSequences": ["a", "b"]}),
    ],
)
def test_inference_config(params: dict[str, Any], agent_max: int | None, expected: dict[str, Any]) -> None:
    sent = converse(chat(user("x"), **params), make_agent(max_output_tokens=agent_max))
    assert sent["inferenceConfig"] == expected


def test_no_inference_config_when_nothing_is_set_and_dropped_params() -> None:
    sent = converse(
        chat(
            user("x"), seed=7, presence_penalty=0.5, user="u1", parallel_tool_calls=False, logprobs=False, n=1
        )
    )
    assert sent == {"messages": [{"role": "user", "content": [{"text": "x"}]}]}


def test_json_schema_response_format_maps_to_output_config_with_a_string_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False}
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}
    sent = converse(chat(user("x"), response_format=fmt))
    assert sent["outputConfig"] == {
        "textFormat": {
            "type": "json_schema",
            "structure": {"jsonSchema": {"schema": orjson.dumps(schema).decode(), "name": "answer"}},
        }
    }


def test_json_object_and_text_response_formats_are_not_forwarded() -> None:
    assert "outputConfig" not in converse(chat(user("x"), response_format={"type": "json_object"}))
    assert "outputConfig" not in converse(chat(user("x"), response_format={"type": "text"}))
