"""Anthropic Messages ⇄ OpenAI translation, without a network
(`astra_sidecar.sidecar.protocols.anthropic.ingress_translate`, `ingress_stream`).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.protocols.anthropic.ingress_stream import AnthropicStreamEncoder
from astra_sidecar.sidecar.protocols.anthropic.ingress_translate import (
    message_from_completion,
    openai_request,
)
from tests.sidecar.protocols.anthropic.helpers import (
    USER,
    WEATHER,
)

# --- the translation and the native policy, without a network ------------------------------------


def test_translated_request_details() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                    {"type": "text", "text": "What is this?", "cache_control": {"type": "ephemeral"}},
                ],
            }
        ],
        "system": "",
        "tools": [{**WEATHER, "strict": True}],
        "tool_choice": {"type": "none", "disable_parallel_tool_use": True},
        "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "top_k": 3,
        "stream": False,
    }
    assert openai_request("agent", body) == {
        "model": "agent",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    {"type": "text", "text": "What is this?"},
                ],
            }
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "parameters": WEATHER["input_schema"],
                    "strict": True,
                },
            }
        ],
        "tool_choice": "none",
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": {"type": "object"}},
        },
        "reasoning_effort": "low",  # thinking.budget_tokens 2048: below medium's 8192
    }
    named = openai_request(
        "a", {"messages": USER, "tools": [WEATHER], "tool_choice": {"type": "tool", "name": "get_weather"}}
    )
    assert named["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert "tool_choice" not in openai_request("a", {"messages": USER, "tool_choice": {"type": "any"}})


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
            "messages.0.content.0",
        ),
        ({"messages": USER, "tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}],
                    }
                ]
            },
            "messages.0.content.0",
        ),
    ],
)
def test_anthropic_only_content_is_a_400_on_the_translated_path(body: dict[str, Any], param: str) -> None:
    with pytest.raises(ClientError) as caught:
        openai_request("a", body)
    assert (caught.value.status, caught.value.failure.param) == (400, param)
    assert caught.value.failure.code == "unsupported_content"


def _completion(message: dict[str, Any], finish: str) -> bytes:
    return json.dumps(
        {"model": "m", "choices": [{"index": 0, "message": message, "finish_reason": finish}]}
    ).encode()


def test_answers_translated_back_to_messages() -> None:
    refused = json.loads(message_from_completion(_completion({"content": None, "refusal": "No."}, "stop")))
    assert (refused["content"], refused["stop_reason"]) == ([{"type": "text", "text": "No."}], "refusal")
    cut = json.loads(message_from_completion(_completion({"content": "Once upon"}, "length")))
    assert cut["stop_reason"] == "max_tokens"
    assert cut["usage"] == {
        "input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 0,
    }
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
    broken = json.loads(message_from_completion(_completion({"content": None, "tool_calls": [call]}, "stop")))
    assert broken["content"] == [{"type": "tool_use", "id": "c1", "name": "f", "input": {}}]
    assert broken["stop_reason"] == "tool_use"


def test_an_empty_translated_stream_still_has_every_event() -> None:
    encoder = AnthropicStreamEncoder()
    names = [line for line in encoder.close().split(b"\n") if line.startswith(b"event: ")]
    assert names == [b"event: message_start", b"event: message_delta", b"event: message_stop"]
