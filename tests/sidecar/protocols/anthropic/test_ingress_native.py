"""The Anthropic Messages ingress on same-format agents, with the official `anthropic` SDK as the
client (the `world` of `conftest.py`): claude agents served natively, the body passed through
with the policy, the answer relayed byte for byte; and a governed agent, always translated.
"""

from __future__ import annotations

import json

import anthropic
import pytest
from anthropic.types import MessageParam

from tests.fakes.anthropic_upstream import (
    Reply,
    StreamCut,
    StreamError,
    ToolUse,
    message_events,
    sse_bytes,
    text_message,
    tool_message,
    usage,
)
from tests.sidecar.protocols.anthropic.helpers import (
    DELETE,
    SDK_VERSION_HEADER,
    USER,
    WEATHER,
    World,
)

# --- same format: claude agent → the Anthropic API, body passed through with the policy ----------


async def test_native_plain_answer_with_the_policy_applied_in_anthropic_shape(world: World) -> None:
    upstream = text_message("Sunny.", usage_=usage(20, 3, cache_creation=50, cache_read=900))
    world.anthropic.push(Reply(upstream))
    raw = await world.client("claude-native").messages.with_raw_response.create(
        model="claude-whatever",
        max_tokens=2000,
        system="Client system.",
        messages=USER,
        stop_sequences=["END"],
        metadata={"user_id": "u-42"},
    )
    answer = await raw.parse()
    assert answer.model_dump(exclude_none=True) == {
        "id": "msg_01FakeMessage",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [{"type": "text", "text": "Sunny."}],
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": 20,
            "output_tokens": 3,
            "cache_creation_input_tokens": 50,
            "cache_read_input_tokens": 900,
        },
    }
    assert json.loads(raw.http_response.content) == upstream
    assert (raw.headers["x-astra-provider"], raw.headers["x-astra-attempts"]) == ("claude", "1")
    [sent] = world.anthropic.requests
    assert sent.path == "/v1/messages"
    assert sent.body == {
        "model": "claude-test",
        "max_tokens": 512,
        "system": [
            {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Client system."},
        ],
        "messages": USER,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u-42"},
        "temperature": 0.4,
    }
    assert sent.headers["x-api-key"] == "sk-ant-env"
    assert sent.headers["anthropic-version"] == SDK_VERSION_HEADER
    assert "authorization" not in sent.headers
    assert not [name for name in sent.headers if name.startswith("x-stainless")]
    assert "anthropic" not in sent.headers.get("user-agent", "").lower()
    assert world.openai.received == []
    tokens = {"agent": "claude-native", "provider": "claude"}
    assert world.sidecar.metric("astra_tokens_total", {**tokens, "kind": "prompt"}) == 970
    assert world.sidecar.metric("astra_tokens_total", {**tokens, "kind": "cached"}) == 900


async def test_native_keeps_the_callers_sampling_and_versions(world: World) -> None:
    world.anthropic.push(Reply(text_message("ok")))
    await world.client("claude-native").messages.create(
        model="m",
        max_tokens=100,
        system=[{"type": "text", "text": "Blocks.", "cache_control": {"type": "ephemeral"}}],
        messages=USER,
        extra_body={"temperature": 0.9},
        extra_headers={"anthropic-version": "2023-06-01", "anthropic-beta": "beta-one,beta-two"},
    )
    [sent] = world.anthropic.requests
    assert sent.body["max_tokens"] == 100
    assert sent.body["temperature"] == 0.9
    assert sent.body["system"] == [
        {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Blocks.", "cache_control": {"type": "ephemeral"}},
    ]
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["anthropic-beta"] == "beta-one,beta-two"


async def test_governed_agent_tools_are_filtered_and_round_trip(world: World) -> None:
    """A restrictive tool policy sends the call through the translation, even to claude."""
    world.anthropic.push(
        Reply(tool_message(ToolUse("toolu_01", "get_weather", {"city": "Paris"}), text="Let me see."))
    )
    client = world.client("claude-governed")
    raw = await client.messages.with_raw_response.create(
        model="m", max_tokens=100, messages=USER, tools=[WEATHER, DELETE], tool_choice={"type": "auto"}
    )
    answer = await raw.parse()
    assert raw.headers["x-astra-tools-removed"] == "delete_account"
    assert answer.stop_reason == "tool_use"
    assert [block.to_dict() for block in answer.content] == [
        {"type": "text", "text": "Let me see."},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
    ]
    assert world.anthropic.requests[0].body["tools"] == [WEATHER]
    assert world.anthropic.requests[0].body["tool_choice"] == {"type": "auto"}

    world.anthropic.push(Reply(text_message("Paris: 18C.")))
    follow_up: list[MessageParam] = [
        *USER,
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me see."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C"}]},
    ]
    final = await client.messages.create(model="m", max_tokens=100, messages=follow_up, tools=[WEATHER])
    assert final.content[0].type == "text" and final.content[0].text == "Paris: 18C."
    # Translated to OpenAI and back: the same conversation, the user's text now as a block.
    assert world.anthropic.requests[1].body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        *follow_up[1:],
    ]


async def test_governed_tool_choice_naming_a_denied_tool_is_a_400(world: World) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        await world.client("claude-governed").messages.create(
            model="m",
            max_tokens=10,
            messages=USER,
            tools=[WEATHER, DELETE],
            tool_choice={"type": "tool", "name": "delete_account"},
        )
    assert caught.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "tool 'delete_account' is not allowed for this agent",
        },
    }
    assert world.anthropic.requests == []


async def test_native_stream_with_the_sdk_stream_helper(world: World) -> None:
    upstream = tool_message(
        ToolUse("toolu_07", "get_weather", {"city": "Rome"}), text="It is sunny in Paris."
    )
    world.anthropic.push(Reply(upstream, write_size=7))
    async with world.client("claude-native").messages.stream(
        model="m", max_tokens=100, messages=USER, tools=[WEATHER]
    ) as stream:
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(texts) == "It is sunny in Paris."
    assert final.to_dict() == {**upstream, "stop_details": None}
    assert final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (10, 5)
    assert world.anthropic.requests[0].body["stream"] is True


async def test_native_stream_is_relayed_byte_for_byte(world: World) -> None:
    upstream = text_message("Relayed as is.", usage_=usage(8, 9, cache_read=100))
    world.anthropic.push(Reply(upstream), Reply(upstream, write_size=5))
    client = world.client("claude-native")
    stream = await client.messages.create(model="m", max_tokens=100, messages=USER, stream=True)
    events = [event.to_dict() async for event in stream]
    assert events == [e for e in message_events(upstream) if e["type"] != "ping"]
    async with client.messages.with_streaming_response.create(
        model="m", max_tokens=100, messages=USER, stream=True
    ) as raw:
        assert raw.headers["content-type"] == "text/event-stream"
        assert await raw.read() == sse_bytes(upstream)
    tokens = {"agent": "claude-native", "provider": "claude"}
    assert world.sidecar.metric("astra_tokens_total", {**tokens, "kind": "prompt"}) == 2 * 108
    assert world.sidecar.metric("astra_tokens_total", {**tokens, "kind": "completion"}) == 2 * 9


# --- native streams that fail -------------------------------------------------------------------


async def test_mid_stream_error_event_native(world: World) -> None:
    world.anthropic.push(
        StreamError(text_message("partial answer that breaks"), after_events=5, pause_s=0.05)
    )
    received: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        async with world.client("claude-native").messages.stream(
            model="m", max_tokens=50, messages=USER
        ) as stream:
            async for text in stream.text_stream:
                received.append(text)
    assert "".join(received) == "partial "
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    assert world.openai.received == []


async def test_native_stream_cut_mid_event_still_ends_in_an_sdk_error(world: World) -> None:
    world.anthropic.push(StreamCut(text_message("this answer is cut off"), after_events=6))
    received: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        async with world.client("claude-native").messages.stream(
            model="m", max_tokens=50, messages=USER
        ) as stream:
            async for text in stream.text_stream:
                received.append(text)
    assert received == ["this", " ans"]
    assert '{"type":"error","error":{"type":"api_error"' in str(caught.value.body)
    assert world.openai.received == []
