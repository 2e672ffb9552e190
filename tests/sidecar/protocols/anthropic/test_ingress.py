"""The Anthropic Messages ingress, with the official `anthropic` SDK as the client.

One compiled astra.yml: `claude-native` (claude → the fake Anthropic API, policy: system prompt
with prompt cache, output cap, default temperature; OpenAI fallback), `claude-governed` (the same
with a denied tool: a restrictive tool policy, so always translated for the answers' tool guard),
`gpt-agent` (openai → the fake OpenAI API), `demo` (the built-in mock) and `claude-byok`
(claude with `credentials: passthrough`, OpenAI fallback on the sidecar's key). Apps only change
the SDK's base URL to `{sidecar}/v1/anthropic/{agent}`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import pytest
from aiohttp.test_utils import TestServer
from anthropic import AsyncAnthropic
from anthropic.types import MessageParam, ToolParam

from sidecar.clock import ManualClock
from sidecar.errors import ClientError
from sidecar.policy.agent import AgentPolicy
from sidecar.protocols.anthropic import native
from sidecar.protocols.anthropic.ingress import CODEC
from sidecar.protocols.anthropic.ingress_stream import AnthropicStreamEncoder
from sidecar.protocols.anthropic.ingress_translate import message_from_completion, openai_request
from sidecar.protocols.base import Failure
from tests.fakes.anthropic_upstream import (
    ErrorReply,
    FakeAnthropic,
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
from tests.fakes.openai_upstream import FakeOpenAI, Step, completion, text_chunks
from tests.sidecar.harness import Sidecar, compile_yaml, running_sidecar

ENV = {"ANTHROPIC_API_KEY": "sk-ant-env", "OPENAI_API_KEY": "sk-openai-env"}
SDK_VERSION_HEADER = "2026-10-21"
USER: list[MessageParam] = [{"role": "user", "content": "Weather in Paris?"}]
WEATHER: ToolParam = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
DELETE: ToolParam = {"name": "delete_account", "input_schema": {"type": "object", "properties": {}}}


def astra_yml(anthropic_url: str, openai_url: str) -> str:
    return f"""
        version: 1
        settings:
          retry: {{maxRetries: 1, baseDelayMs: 100, maxDelayMs: 1000, jitter: 0}}
        agents:
          - id: claude-native
            systemPrompt: "You are terse."
            promptCache: {{systemPrompt: true}}
            model:
              provider: claude
              modelId: claude-test
              endpoint: {anthropic_url}
              maxOutputTokens: 512
              temperature: 0.4
              fallback:
                provider: openai
                modelId: gpt-fallback
                endpoint: {openai_url}
          - id: claude-governed
            systemPrompt: "You are terse."
            promptCache: {{systemPrompt: true}}
            tools: {{deny: [delete_account]}}
            model:
              provider: claude
              modelId: claude-test
              endpoint: {anthropic_url}
              maxOutputTokens: 512
              temperature: 0.4
              fallback:
                provider: openai
                modelId: gpt-fallback
                endpoint: {openai_url}
          - id: gpt-agent
            systemPrompt: "You are brief."
            model: {{provider: openai, modelId: gpt-test, endpoint: {openai_url}, maxOutputTokens: 300}}
          - id: demo
            model: {{provider: mock, modelId: astra-demo, mock: {{reply: "Hello from the demo agent."}}}}
          - id: claude-byok
            model:
              provider: claude
              modelId: claude-byok
              endpoint: {anthropic_url}
              credentials: passthrough
              fallback:
                provider: openai
                modelId: gpt-fallback
                endpoint: {openai_url}
        """


@dataclass
class World:
    anthropic: FakeAnthropic
    openai: FakeOpenAI
    sidecar: Sidecar
    clients: list[AsyncAnthropic] = field(default_factory=list)

    def client(self, agent: str, api_key: str = "sk-caller") -> AsyncAnthropic:
        """The official SDK, pointed at the agent's route: the only change an app makes."""
        client = AsyncAnthropic(
            base_url=f"{self.sidecar.url}/v1/anthropic/{agent}", api_key=api_key, max_retries=0, timeout=20
        )
        self.clients.append(client)
        return client


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    fake = FakeAnthropic()
    server = TestServer(fake.app())
    await server.start_server()
    openai_fake = await FakeOpenAI().start()
    table = compile_yaml(tmp_path, astra_yml(str(server.make_url("")).rstrip("/"), openai_fake.url))
    try:
        async with running_sidecar(table, env=ENV, clock=ManualClock()) as sidecar:
            world = World(fake, openai_fake, sidecar)
            yield world
            for client in world.clients:
                await client.close()
    finally:
        await openai_fake.close()
        await server.close()


def sse(chunks: list[dict[str, Any]]) -> Step:
    return Step(kind="sse", chunks=chunks)


def openai_usage(prompt: int, completion_tokens: int, cached: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def usage_chunk(prompt: int, completion_tokens: int, cached: int = 0) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-test",
        "choices": [],
        "usage": openai_usage(prompt, completion_tokens, cached),
    }


def tool_call_chunks() -> list[dict[str, Any]]:
    base = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-test",
    }

    def delta(d: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": d, "finish_reason": finish}]}

    def call(index: int, arguments: str, id: str | None = None, name: str | None = None) -> dict[str, Any]:
        fragment: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
        if id:
            fragment.update(id=id, type="function")
            fragment["function"]["name"] = name
        return delta({"tool_calls": [fragment]})

    return [
        delta({"role": "assistant", "content": ""}),
        delta({"content": "Checking."}),
        call(0, "", id="call_1", name="get_weather"),
        call(0, '{"city":'),
        call(0, '"Paris"}'),
        call(1, '{"city":"Rome"}', id="call_2", name="get_weather"),
        delta({}, "tool_calls"),
        usage_chunk(30, 12),
    ]


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


# --- cross format: the Anthropic SDK → an agent on another provider, translated both ways --------


async def test_openai_agent_plain_answer(world: World) -> None:
    body = completion("Hello!", "gpt-test")
    body["usage"] = openai_usage(40, 7, cached=30)
    world.openai.script = [Step(body=body)]
    raw = await world.client("gpt-agent").messages.with_raw_response.create(
        model="claude-sonnet",
        max_tokens=100,
        system=[{"type": "text", "text": "Client system."}],
        messages=[*USER, {"role": "assistant", "content": "Let me"}, {"role": "user", "content": "go on"}],
        stop_sequences=["END"],
        metadata={"user_id": "u-1"},
        extra_body={"temperature": 0.2, "top_k": 5},
    )
    answer = await raw.parse()
    assert answer.id.startswith("msg_") and len(answer.id) == 28
    assert answer.model_dump(exclude_none=True, exclude={"id"}) == {
        "type": "message",
        "role": "assistant",
        "model": "gpt-test",
        "content": [{"type": "text", "text": "Hello!"}],
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": 10,
            "output_tokens": 7,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 30,
        },
    }
    assert raw.headers["x-astra-provider"] == "openai"
    [sent] = world.openai.received
    assert sent.body == {
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": "You are brief."},
            {"role": "system", "content": [{"type": "text", "text": "Client system."}]},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "Let me"},
            {"role": "user", "content": "go on"},
        ],
        "max_tokens": 100,
        "temperature": 0.2,
        "stop": ["END"],
        "user": "u-1",
    }
    assert sent.headers["Authorization"] == "Bearer sk-openai-env"


async def test_openai_agent_stream_in_anthropic_events(world: World) -> None:
    world.openai.script = [sse([*text_chunks(["It is ", "sunny."]), usage_chunk(25, 4, cached=5)])]
    stream = await world.client("gpt-agent").messages.create(
        model="m", max_tokens=50, messages=USER, stream=True
    )
    events: list[dict[str, Any]] = [event.to_dict() async for event in stream]
    start = events[0]
    assert start["type"] == "message_start" and start["message"]["id"].startswith("msg_")
    assert events[1:] == [
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "It is "}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "sunny."}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {
                "input_tokens": 20,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 5,
                "output_tokens": 4,
            },
        },
        {"type": "message_stop"},
    ]
    assert start["message"] | {"id": "x"} == {
        "id": "x",
        "type": "message",
        "role": "assistant",
        "model": "gpt-test",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 0,
        },
    }
    sent = world.openai.received[0].body
    assert (sent["stream"], sent["stream_options"]) == (True, {"include_usage": True})


async def test_openai_agent_stream_with_the_sdk_stream_helper(world: World) -> None:
    world.openai.script = [sse([*text_chunks(["Hel", "lo ", "there"]), usage_chunk(12, 3)])]
    async with world.client("gpt-agent").messages.stream(model="m", max_tokens=50, messages=USER) as stream:
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert texts == ["Hel", "lo ", "there"]
    assert final.to_dict()["content"] == [{"type": "text", "text": "Hello there"}]
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (12, 3)


async def test_openai_agent_tool_calls_plain(world: World) -> None:
    body = completion("", "gpt-test")
    body["choices"][0]["message"] = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            },
            {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
        ],
    }
    body["choices"][0]["finish_reason"] = "tool_calls"
    world.openai.script = [Step(body=body)]
    answer = await world.client("gpt-agent").messages.create(
        model="m",
        max_tokens=50,
        messages=USER,
        tools=[WEATHER],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
    )
    assert answer.stop_reason == "tool_use"
    assert [block.to_dict() for block in answer.content] == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {}},
    ]
    sent = world.openai.received[0].body
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": WEATHER["input_schema"],
            },
        }
    ]
    assert (sent["tool_choice"], sent["parallel_tool_calls"]) == ("required", False)


async def test_openai_agent_tool_calls_streamed(world: World) -> None:
    world.openai.script = [sse(tool_call_chunks())]
    client = world.client("gpt-agent")
    stream = await client.messages.create(
        model="m", max_tokens=50, messages=USER, tools=[WEATHER], stream=True
    )
    events: list[dict[str, Any]] = [event.to_dict() async for event in stream]
    assert [(e["type"], e.get("index")) for e in events] == [
        ("message_start", None),
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("content_block_start", 2),
        ("content_block_delta", 2),
        ("content_block_stop", 2),
        ("message_delta", None),
        ("message_stop", None),
    ]
    assert events[4]["content_block"] == {
        "type": "tool_use",
        "id": "call_1",
        "name": "get_weather",
        "input": {},
    }
    assert [e["delta"] for e in events[5:7]] == [
        {"type": "input_json_delta", "partial_json": '{"city":'},
        {"type": "input_json_delta", "partial_json": '"Paris"}'},
    ]
    assert events[-2]["delta"]["stop_reason"] == "tool_use"

    world.openai.script = [sse(tool_call_chunks())]
    async with client.messages.stream(model="m", max_tokens=50, messages=USER, tools=[WEATHER]) as helper:
        final = await helper.get_final_message()
    assert final.to_dict()["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}},
    ]
    assert (final.stop_reason, final.usage.input_tokens, final.usage.output_tokens) == ("tool_use", 30, 12)


async def test_openai_agent_tool_results_become_tool_messages_in_order(world: World) -> None:
    history: list[MessageParam] = [
        *USER,
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "call_2",
                    "content": [
                        {"type": "text", "text": "24C"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
                        },
                    ],
                    "is_error": False,
                },
                {"type": "text", "text": "Summarise."},
            ],
        },
    ]
    await world.client("gpt-agent").messages.create(
        model="m", max_tokens=50, messages=history, tools=[WEATHER]
    )
    assert world.openai.received[0].body["messages"][1:] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "24C"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                {"type": "text", "text": "Summarise."},
            ],
        },
    ]


async def test_mock_agent_plain_streamed_and_with_tools(world: World) -> None:
    client = world.client("demo")
    plain = await client.messages.create(model="m", max_tokens=50, messages=USER, tools=[WEATHER])
    assert plain.to_dict()["content"] == [{"type": "text", "text": "Hello from the demo agent."}]
    assert plain.stop_reason == "end_turn" and plain.model == "astra-demo"
    async with client.messages.stream(model="m", max_tokens=50, messages=USER) as stream:
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(texts) == "Hello from the demo agent."
    assert final.to_dict()["content"] == plain.to_dict()["content"]
    assert final.usage.output_tokens == 5


# --- a same-format agent whose primary fails: fallback to OpenAI within one request --------------


async def test_fallback_from_claude_to_openai_plain(world: World) -> None:
    world.anthropic.push(*(ErrorReply(529, "overloaded_error", "Overloaded") for _ in range(2)))
    world.openai.script = [Step(body=completion("from the fallback", "gpt-fallback"))]
    raw = await world.client("claude-governed").messages.with_raw_response.create(
        model="m", max_tokens=2000, system="Client system.", messages=USER, tools=[WEATHER, DELETE]
    )
    answer = await raw.parse()
    assert answer.to_dict()["content"] == [{"type": "text", "text": "from the fallback"}]
    assert answer.model == "gpt-fallback"
    assert (raw.headers["x-astra-provider"], raw.headers["x-astra-attempts"]) == ("openai", "3")
    assert raw.headers["x-astra-tools-removed"] == "delete_account"
    assert len(world.anthropic.requests) == 2
    [sent] = world.openai.received
    assert sent.body["model"] == "gpt-fallback"
    assert sent.body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "system", "content": "Client system."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    assert (sent.body["max_tokens"], sent.body["temperature"]) == (512, 0.4)
    assert [t["function"]["name"] for t in sent.body["tools"]] == ["get_weather"]


async def test_fallback_from_claude_to_openai_streamed(world: World) -> None:
    world.anthropic.push(*(ErrorReply(529, "overloaded_error", "Overloaded") for _ in range(2)))
    world.openai.script = [sse([*text_chunks(["from ", "openai"], model="gpt-fallback"), usage_chunk(9, 2)])]
    async with world.client("claude-native").messages.stream(
        model="m", max_tokens=50, messages=USER
    ) as stream:
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(texts) == "from openai"
    assert (final.stop_reason, final.usage.input_tokens, final.usage.output_tokens) == ("end_turn", 9, 2)
    assert stream.response.headers["x-astra-provider"] == "openai"
    assert len(world.anthropic.requests) == 2 and len(world.openai.received) == 1


# --- errors in Anthropic's shape ------------------------------------------------------------------


async def test_upstream_400_comes_back_in_anthropic_shape_without_retry_or_fallback(world: World) -> None:
    world.anthropic.push(
        ErrorReply(400, "invalid_request_error", "messages.0: text content blocks must be non-empty")
    )
    with pytest.raises(anthropic.BadRequestError) as caught:
        await world.client("claude-native").messages.create(model="m", max_tokens=10, messages=USER)
    assert caught.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "messages.0: text content blocks must be non-empty",
        },
    }
    assert len(world.anthropic.requests) == 1 and world.openai.received == []


async def test_unknown_agent_is_404_not_found_error(world: World) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        await world.client("nope").messages.create(model="m", max_tokens=10, messages=USER)
    assert caught.value.body == {
        "type": "error",
        "error": {
            "type": "not_found_error",
            "message": "The model 'nope' does not exist: it names no agent of this sidecar",
        },
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"max_tokens": 10, "messages": []}, "messages: must be a non-empty array"),
        (
            {"messages": [{"role": "system", "content": "x"}]},
            "messages.0.role: must be 'user' or 'assistant'",
        ),
        (
            {"messages": [{"role": "user", "content": 5}]},
            "messages.0.content: must be a string or an array of content blocks",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages.0.content.0.text: must be a string",
        ),
        ({"messages": USER, "max_tokens": "ten"}, "max_tokens: must be an integer of at least 1"),
        ({"messages": USER, "stream": "yes"}, "stream: must be a boolean"),
        ({"messages": USER, "system": 3}, "system: must be a string or an array of text blocks"),
        ({"messages": USER, "tools": [{"name": "f"}]}, "tools.0.input_schema: must be an object"),
        (
            {"messages": USER, "tool_choice": {"type": "maybe"}},
            "tool_choice: must be an object of type auto, any, tool or none",
        ),
        ({"messages": USER, "model": 7}, "model: must be a string"),
    ],
)
async def test_bad_bodies_are_400_naming_the_field(world: World, body: dict[str, Any], message: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        await world.client("claude-native").post("/v1/messages", body=body, cast_to=object)
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": message},
    }
    assert world.anthropic.requests == []


async def test_plain_http_without_sdk_headers(world: World) -> None:
    world.anthropic.push(Reply(text_message("Hi.")))
    base = f"{world.sidecar.url}/v1/anthropic/claude-native"
    async with aiohttp.ClientSession() as http:
        async with http.post(base + "/messages", data=b"{not json") as bad:
            assert (bad.status, (await bad.json())["error"]["type"]) == (400, "invalid_request_error")
        async with http.post(base + "/messages", json={"messages": USER}) as good:
            assert good.status == 200
            assert (await good.json())["content"] == [{"type": "text", "text": "Hi."}]
        async with http.post(base + "/v1/messages/count_tokens", json={"messages": USER}) as missing:
            assert missing.status == 404
            assert (await missing.json())["error"]["type"] == "not_found_error"
    [sent] = world.anthropic.requests
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.body["max_tokens"] == 512


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


async def test_mid_stream_cut_translated_ends_with_an_error_event(world: World) -> None:
    world.openai.script = [Step(kind="sse", chunks=text_chunks(["one ", "two ", "three"]), cut_after=3)]
    stream = await world.client("gpt-agent").messages.create(
        model="m", max_tokens=50, messages=USER, stream=True
    )
    types: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        async for event in stream:
            types.append(event.type)
    assert types == ["message_start", "content_block_start", "content_block_delta", "content_block_delta"]
    assert caught.value.body["error"]["type"] == "api_error"  # type: ignore[index]


def test_error_types_by_status() -> None:
    expected = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        422: "invalid_request_error",
        429: "rate_limit_error",
        500: "api_error",
        502: "api_error",
        503: "overloaded_error",
        504: "timeout_error",
        529: "overloaded_error",
    }
    for status, kind in expected.items():
        body = json.loads(CODEC.error_body(Failure(status, "x", "boom")))
        assert body == {"type": "error", "error": {"type": kind, "message": "boom"}}
    assert CODEC.stream_error(Failure(503, "x", "busy")) == (
        b'\nevent: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"busy"}}\n\n'
    )


async def test_models_list_in_anthropic_shape(world: World) -> None:
    page = await world.client("claude-native").models.list()
    assert [(m.id, m.type, m.display_name) for m in page.data] == [
        ("claude-native", "model", "claude-native")
    ]
    with pytest.raises(anthropic.NotFoundError):
        await world.client("nope").models.list()


# --- credentials: passthrough, and a canary key that never leaks ---------------------------------

CANARY = "sk-ant-CANARY-7f3a9c1e5b"


async def test_passthrough_key_reaches_anthropic_only_and_never_leaks(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = world.client("claude-byok", api_key=CANARY)
    seen: list[str] = []

    world.anthropic.push(Reply(text_message("Hi.")))
    plain = await client.messages.with_raw_response.create(model="m", max_tokens=10, messages=USER)
    seen += [plain.http_response.text, str(dict(plain.headers))]

    world.anthropic.push(Reply(text_message("Streamed.")))
    async with client.messages.with_streaming_response.create(
        model="m", max_tokens=10, messages=USER, stream=True
    ) as streamed:
        seen += [(await streamed.read()).decode(), str(dict(streamed.headers))]

    world.anthropic.push(ErrorReply(400, "invalid_request_error", "max_tokens: too large"))
    with pytest.raises(anthropic.BadRequestError) as refused:
        await client.messages.create(model="m", max_tokens=10, messages=USER)
    seen += [refused.value.response.text, str(dict(refused.value.response.headers))]

    world.anthropic.push(*(ErrorReply(529, "overloaded_error", "Overloaded") for _ in range(2)))
    world.openai.script = [Step(body=completion("fallback", "gpt-fallback"))]
    fallback = await client.messages.with_raw_response.create(model="m", max_tokens=10, messages=USER)
    seen += [fallback.http_response.text, str(dict(fallback.headers))]
    assert fallback.headers["x-astra-provider"] == "openai"

    assert [r.headers["x-api-key"] for r in world.anthropic.requests] == [CANARY] * 5
    assert all("authorization" not in r.headers for r in world.anthropic.requests)
    [to_openai] = world.openai.received
    assert to_openai.headers["Authorization"] == "Bearer sk-openai-env"
    assert CANARY not in json.dumps([to_openai.headers, to_openai.body])
    async with aiohttp.ClientSession() as http, http.get(world.sidecar.url + "/metrics") as metrics:
        seen.append(await metrics.text())
    seen += [record.getMessage() for record in caplog.records] + [caplog.text]
    assert caplog.records, "the access log should have recorded the requests"
    assert not [text for text in seen if CANARY in text]


async def test_passthrough_without_a_key_is_401_authentication_error(world: World) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{world.sidecar.url}/v1/anthropic/claude-byok/v1/messages",
            json={"max_tokens": 5, "messages": USER},
        ) as response,
    ):
        assert response.status == 401
        body = await response.json()
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    assert world.anthropic.requests == []


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


NATIVE_YML = """
    version: 1
    agents:
      - id: cached
        systemPrompt: "Agent rules."
        promptCache: {systemPrompt: true, tools: true}
        model: {provider: claude, modelId: claude-x, temperature: 0.5}
    """


def _native_agent(tmp_path: Path) -> tuple[AgentPolicy, Any]:
    table = compile_yaml(tmp_path, NATIVE_YML)
    agent = table.agents["cached"]
    return AgentPolicy(agent), table.clusters[agent.primary]


def test_native_policy_marks_the_cache_within_anthropics_limit(tmp_path: Path) -> None:
    policy, cluster = _native_agent(tmp_path)
    body = {"messages": USER, "tools": [WEATHER], "temperature": 1.7}
    prepared = native.prepare(body, policy.agent)
    assert prepared.body["max_tokens"] == 4096
    sent = native.for_cluster(prepared, policy, cluster)
    assert sent["system"] == [
        {"type": "text", "text": "Agent rules.", "cache_control": {"type": "ephemeral"}}
    ]
    assert sent["tools"] == [{**WEATHER, "cache_control": {"type": "ephemeral"}}]
    assert (sent["model"], sent["temperature"]) == ("claude-x", 1.0)

    marked = {"type": "text", "text": "m", "cache_control": {"type": "ephemeral"}}
    full = {"messages": [{"role": "user", "content": [marked] * 4}], "tools": [WEATHER], "system": "Caller."}
    sent = native.for_cluster(native.prepare(full, policy.agent), policy, cluster)
    assert sent["system"] == [{"type": "text", "text": "Agent rules."}, {"type": "text", "text": "Caller."}]
    assert sent["tools"] == [WEATHER]


def test_native_default_temperature_yields_to_top_p_and_thinking(tmp_path: Path) -> None:
    policy, _ = _native_agent(tmp_path)
    assert native.prepare({"messages": USER}, policy.agent).body["temperature"] == 0.5
    assert "temperature" not in native.prepare({"messages": USER, "top_p": 0.9}, policy.agent).body
    thinking = {"messages": USER, "thinking": {"type": "enabled", "budget_tokens": 1024}}
    assert "temperature" not in native.prepare(thinking, policy.agent).body
