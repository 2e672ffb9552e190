"""The Bedrock adapter's request messages: system blocks, role merging, tool history, images, and the
requests it rejects with a 400."""

from __future__ import annotations

from typing import Any

import pytest

from astra_sidecar.compiler.table import PromptCache
from astra_sidecar.sidecar.errors import ClientError
from tests.sidecar.protocols.bedrock.helpers import (
    ADAPTER,
    AGENT,
    AUTH,
    CLUSTER,
    MODEL,
    PNG,
    call,
    chat,
    converse,
    make_agent,
    user,
    weather_tool,
)


def test_system_and_developer_messages_become_system_blocks_and_same_roles_merge() -> None:
    sent = converse(
        chat(
            {"role": "system", "content": "Rule one."},
            {"role": "developer", "content": [{"type": "text", "text": "Rule two."}]},
            user("a"),
            user([{"type": "text", "text": "b"}, {"type": "text", "text": ""}]),
            {"role": "assistant", "content": "c"},
            {"role": "assistant", "content": [{"type": "text", "text": "d"}]},
            user("e"),
        )
    )
    assert sent["system"] == [{"text": "Rule one."}, {"text": "Rule two."}]
    assert sent["messages"] == [
        {"role": "user", "content": [{"text": "a"}, {"text": "b"}]},
        {"role": "assistant", "content": [{"text": "c"}, {"text": "d"}]},
        {"role": "user", "content": [{"text": "e"}]},
    ]


def test_system_cache_point_when_the_agent_caches_its_system_prompt() -> None:
    agent = make_agent(prompt_cache=PromptCache(system_prompt=True))
    sent = converse(chat({"role": "system", "content": "Long rules."}, user("x")), agent)
    assert sent["system"] == [{"text": "Long rules."}, {"cachePoint": {"type": "default"}}]


def test_tool_history_parallel_calls_and_merged_results() -> None:
    sent = converse(
        chat(
            user("Weather in Paris and Rome?"),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    call("tooluse_a", "get_weather", '{"city": "Paris"}'),
                    call("tooluse_b", "get_weather", '{"city": "Rome"}'),
                ],
            },
            {"role": "tool", "tool_call_id": "tooluse_a", "content": "18C"},
            {"role": "tool", "tool_call_id": "tooluse_b", "content": [{"type": "text", "text": "21C"}]},
            user("Thanks. Which is warmer?"),
            tools=[weather_tool()],
        )
    )
    assert sent["messages"] == [
        {"role": "user", "content": [{"text": "Weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {"toolUse": {"toolUseId": "tooluse_a", "name": "get_weather", "input": {"city": "Paris"}}},
                {"toolUse": {"toolUseId": "tooluse_b", "name": "get_weather", "input": {"city": "Rome"}}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "tooluse_a", "content": [{"text": "18C"}]}},
                {"toolResult": {"toolUseId": "tooluse_b", "content": [{"text": "21C"}]}},
                {"text": "Thanks. Which is warmer?"},
            ],
        },
    ]
    spec = sent["toolConfig"]["tools"][0]["toolSpec"]
    assert spec == {
        "name": "get_weather",
        "description": "Weather",
        "inputSchema": {"json": weather_tool()["function"]["parameters"]},
    }
    assert "toolChoice" not in sent["toolConfig"]


def test_assistant_text_and_tool_call_share_one_turn_and_empty_arguments_mean_empty_object() -> None:
    sent = converse(
        chat(
            user("time?"),
            {"role": "assistant", "content": "Checking.", "tool_calls": [call("t1", "now", "")]},
            {"role": "tool", "tool_call_id": "t1", "content": "noon"},
            tools=[{"type": "function", "function": {"name": "now"}}],
        )
    )
    assert sent["messages"][1] == {
        "role": "assistant",
        "content": [{"text": "Checking."}, {"toolUse": {"toolUseId": "t1", "name": "now", "input": {}}}],
    }
    assert sent["toolConfig"]["tools"] == [
        {"toolSpec": {"name": "now", "inputSchema": {"json": {"type": "object", "properties": {}}}}}
    ]


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]", '"text"'])
def test_tool_call_arguments_must_be_a_json_object(arguments: str) -> None:
    body = chat(user("x"), {"role": "assistant", "content": None, "tool_calls": [call("t1", "f", arguments)]})
    with pytest.raises(ClientError) as raised:
        ADAPTER.build_request(CLUSTER, AGENT, body, AUTH)
    assert raised.value.status == 400
    assert "messages[1].tool_calls[0]" in raised.value.failure.message


def test_data_url_image_becomes_an_image_block() -> None:
    sent = converse(
        chat(
            user(
                [
                    {"type": "text", "text": "What is this?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"},
                    },
                    {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{PNG}"}},
                ]
            )
        )
    )
    assert sent["messages"][0]["content"] == [
        {"text": "What is this?"},
        {"image": {"format": "png", "source": {"bytes": PNG}}},
        {"image": {"format": "jpeg", "source": {"bytes": PNG}}},
    ]


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("https://example.com/cat.png", "unsupported_image_url"),
        ("http://example.com/cat.png", "unsupported_image_url"),
        (f"data:image/tiff;base64,{PNG}", "invalid_value"),
        ("data:image/png;base64,@@not-base64@@", "invalid_value"),
        ("data:image/png,rawbytes", "invalid_value"),
    ],
)
def test_unusable_images_are_a_clear_400(url: str, code: str) -> None:
    body = chat(user([{"type": "image_url", "image_url": {"url": url}}]))
    with pytest.raises(ClientError) as raised:
        ADAPTER.build_request(CLUSTER, AGENT, body, AUTH)
    assert raised.value.status == 400
    assert raised.value.failure.code == code
    assert raised.value.failure.message.startswith("messages[0]:")
    assert raised.value.failure.param == "messages"


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (
            chat(user([{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}])),
            "messages",
            "unsupported_content",
        ),
        (chat({"role": "function", "name": "f", "content": "x"}), "messages", "invalid_value"),
        (chat(user("x"), n=2), "n", "unsupported_parameter"),
        (
            chat(user("x"), tools=[{"type": "custom", "custom": {"name": "grammar"}}]),
            "tools",
            "unsupported_tool",
        ),
        (
            chat(
                user("x"),
                tools=[weather_tool()],
                tool_choice={"type": "function", "function": {"name": "other"}},
            ),
            "tool_choice",
            "invalid_value",
        ),
        (chat(user("x"), tools=[weather_tool()], tool_choice="sometimes"), "tool_choice", "invalid_value"),
        ({"model": MODEL, "messages": []}, "messages", "invalid_value"),
        (chat(user("x"), {"role": "tool", "content": "no id"}), "messages", "invalid_value"),
    ],
)
def test_unsupported_requests_are_rejected_with_400(body: dict[str, Any], param: str, code: str) -> None:
    with pytest.raises(ClientError) as raised:
        ADAPTER.build_request(CLUSTER, AGENT, body, AUTH)
    failure = raised.value.failure
    assert (failure.status, failure.error_type, failure.param, failure.code) == (
        400,
        "invalid_request_error",
        param,
        code,
    )
