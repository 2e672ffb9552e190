"""End to end through the sidecar: the official `openai` SDK → sidecar → the fake Anthropic API.

A compiled astra.yml puts agent `claude-chat` on provider `claude` (the fake's URL), with an
OpenAI-compatible fake as its fallback. Plain, streamed, tool calls, usage with include_usage,
a retried 529, an in-stream error, and a claude → openai fallback inside one request.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestServer
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from astra_sidecar.sidecar.clock import ManualClock
from tests.fakes.anthropic_upstream import (
    ErrorReply,
    FakeAnthropic,
    Reply,
    StreamCut,
    StreamError,
    ToolUse,
    text_message,
    tool_message,
    usage,
)
from tests.fakes.openai_upstream import FakeOpenAI, Step, completion, text_chunks
from tests.sidecar.harness import Sidecar, compile_yaml, running_sidecar

ENV = {"ANTHROPIC_API_KEY": "sk-ant-e2e", "OPENAI_API_KEY": "sk-openai-e2e"}
WEATHER: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Weather in Paris and Rome?"}]


def astra_yml(anthropic_url: str, openai_url: str) -> str:
    return f"""
        version: 1
        settings:
          retry: {{maxRetries: 2, baseDelayMs: 100, maxDelayMs: 1000, jitter: 0}}
        agents:
          - id: claude-chat
            systemPrompt: "You are terse."
            promptCache: {{systemPrompt: true, tools: true}}
            model:
              provider: claude
              modelId: claude-test
              endpoint: {anthropic_url}
              maxOutputTokens: 512
              fallback:
                provider: openai
                modelId: gpt-fallback
                endpoint: {openai_url}
        """


@dataclass
class World:
    anthropic: FakeAnthropic
    fallback: FakeOpenAI
    sidecar: Sidecar
    clock: ManualClock

    @property
    def client(self) -> openai.AsyncOpenAI:
        return self.sidecar.client()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    anthropic = FakeAnthropic()
    server = TestServer(anthropic.app())
    await server.start_server()
    fallback = await FakeOpenAI(Step(body=completion("from the fallback", "gpt-fallback"))).start()
    table = compile_yaml(tmp_path, astra_yml(str(server.make_url("")).rstrip("/"), fallback.url))
    clock = ManualClock()
    try:
        async with running_sidecar(table, env=ENV, clock=clock) as sidecar:
            yield World(anthropic, fallback, sidecar, clock)
    finally:
        await fallback.close()
        await server.close()


async def test_plain_answer_and_the_translated_request(world: World) -> None:
    world.anthropic.push(
        Reply(text_message("Sunny.", usage_=usage(20, 3, cache_creation=50, cache_read=900)))
    )
    raw = await world.client.chat.completions.with_raw_response.create(
        model="claude-chat", messages=USER, temperature=1.7, stop="END", user="user-42"
    )
    answer = raw.parse()
    assert answer.choices[0].message.content == "Sunny."
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (
        970,
        3,
        973,
    )
    assert answer.usage.prompt_tokens_details is not None
    assert answer.usage.prompt_tokens_details.cached_tokens == 900
    assert raw.headers["x-astra-provider"] == "claude"
    [sent] = world.anthropic.requests
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "sk-ant-e2e"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.body == {
        "model": "claude-test",
        "max_tokens": 512,
        "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]}],
        "temperature": 1.0,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-42"},
    }
    assert world.fallback.received == []


async def test_streamed_answer_with_usage(world: World) -> None:
    message = text_message("It is sunny in Paris today.", usage_=usage(8, 9, cache_read=100))
    world.anthropic.push(Reply(message, write_size=5))
    stream = await world.client.chat.completions.create(
        model="claude-chat", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == "It is sunny in Paris today."
    )
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (108, 9)
    assert chunks[-1].usage.prompt_tokens_details is not None
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens == 100
    assert world.anthropic.requests[0].body["stream"] is True


async def test_stream_without_include_usage_has_no_usage_chunk(world: World) -> None:
    world.anthropic.push(Reply(text_message("Hi.")))
    stream = await world.client.chat.completions.create(model="claude-chat", messages=USER, stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


TOOL_ANSWER = tool_message(
    ToolUse("toolu_01", "get_weather", {"city": "Paris"}),
    ToolUse("toolu_02", "get_weather", {"city": "Rome"}),
    text="Checking both.",
)


async def test_tool_calls_plain_and_streamed_then_results_round_trip(world: World) -> None:
    world.anthropic.push(Reply(TOOL_ANSWER), Reply(TOOL_ANSWER, json_chunk=2, write_size=3))
    plain = await world.client.chat.completions.create(model="claude-chat", messages=USER, tools=[WEATHER])
    choice = plain.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking both."
    calls = choice.message.tool_calls or []
    plain_calls = [
        (c.id, c.function.name, json.loads(c.function.arguments)) for c in calls if c.type == "function"
    ]
    assert plain_calls == [
        ("toolu_01", "get_weather", {"city": "Paris"}),
        ("toolu_02", "get_weather", {"city": "Rome"}),
    ]

    stream = await world.client.chat.completions.create(
        model="claude-chat", messages=USER, tools=[WEATHER], stream=True
    )
    rebuilt: dict[int, dict[str, Any]] = {}
    finish = None
    async for chunk in stream:
        for fragment in chunk.choices[0].delta.tool_calls or []:
            slot = rebuilt.setdefault(fragment.index, {"id": None, "name": "", "arguments": ""})
            slot["id"] = fragment.id or slot["id"]
            if fragment.function is not None:
                slot["name"] += fragment.function.name or ""
                slot["arguments"] += fragment.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert [(s["id"], s["name"], json.loads(s["arguments"])) for s in rebuilt.values()] == plain_calls

    world.anthropic.push(Reply(text_message("Paris 18C, Rome 24C.")))
    follow_up: list[ChatCompletionMessageParam] = [
        *USER,
        choice.message.model_dump(exclude_none=True),  # type: ignore[list-item]
        {"role": "tool", "tool_call_id": "toolu_01", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_02", "content": "24C"},
    ]
    final = await world.client.chat.completions.create(
        model="claude-chat", messages=follow_up, tools=[WEATHER]
    )
    assert final.choices[0].message.content == "Paris 18C, Rome 24C."
    sent = world.anthropic.requests[-1].body
    assert sent["messages"][1]["content"][1:] == [
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": {"city": "Rome"}},
    ]
    assert sent["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "toolu_02", "content": "24C"},
        ],
    }
    assert sent["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert sent["tool_choice"] == {"type": "auto"}


async def test_529_overloaded_is_retried_with_retry_after(world: World) -> None:
    world.anthropic.push(
        ErrorReply(529, "overloaded_error", "Overloaded", headers={"retry-after": "3"}),
        Reply(text_message("Second time lucky.")),
    )
    raw = await world.client.chat.completions.with_raw_response.create(model="claude-chat", messages=USER)
    assert raw.parse().choices[0].message.content == "Second time lucky."
    assert raw.headers["x-astra-attempts"] == "2"
    assert raw.headers["x-astra-provider"] == "claude"
    assert world.clock.sleeps == [3.0]
    assert len(world.anthropic.requests) == 2
    assert world.fallback.received == []


async def test_invalid_request_is_not_retried_nor_sent_to_the_fallback(world: World) -> None:
    world.anthropic.push(
        ErrorReply(400, "invalid_request_error", "messages: text content blocks must be non-empty")
    )
    with pytest.raises(openai.BadRequestError) as caught:
        await world.client.chat.completions.create(model="claude-chat", messages=USER)
    assert caught.value.body["message"] == "messages: text content blocks must be non-empty"  # type: ignore[index]
    assert caught.value.body["code"] == "invalid_request_error"  # type: ignore[index]
    assert len(world.anthropic.requests) == 1
    assert world.fallback.received == []


async def test_fallback_from_claude_to_openai_within_one_request(world: World) -> None:
    world.anthropic.push(*(ErrorReply(529, "overloaded_error", "Overloaded") for _ in range(3)))
    raw = await world.client.chat.completions.with_raw_response.create(model="claude-chat", messages=USER)
    assert raw.parse().choices[0].message.content == "from the fallback"
    assert raw.headers["x-astra-provider"] == "openai"
    assert raw.headers["x-astra-attempts"] == "4"
    assert len(world.anthropic.requests) == 3
    [sent] = world.fallback.received
    assert sent.body["model"] == "gpt-fallback"
    assert sent.body["messages"] == [{"role": "system", "content": "You are terse."}, *USER]


async def test_streamed_fallback_from_claude_to_openai(world: World) -> None:
    world.anthropic.push(*(ErrorReply(500, "api_error", "Internal error") for _ in range(3)))
    world.fallback.script = [Step(kind="sse", chunks=text_chunks(["from ", "openai"], model="gpt-fallback"))]
    stream = await world.client.chat.completions.create(model="claude-chat", messages=USER, stream=True)
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "from openai"
    assert len(world.anthropic.requests) == 3
    assert len(world.fallback.received) == 1


async def test_error_event_before_anything_was_forwarded_is_retried(world: World) -> None:
    world.anthropic.push(
        StreamError(text_message("never seen"), after_events=0), Reply(text_message("Clean retry."))
    )
    stream = await world.client.chat.completions.create(model="claude-chat", messages=USER, stream=True)
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Clean retry."
    assert len(world.anthropic.requests) == 2


async def test_mid_stream_error_event_reaches_the_client_as_an_error(world: World) -> None:
    world.anthropic.push(
        StreamError(text_message("partial answer that breaks"), after_events=5, pause_s=0.05)
    )
    stream = await world.client.chat.completions.create(model="claude-chat", messages=USER, stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "partial "
    assert caught.value.message == "Overloaded"
    assert world.fallback.received == []


async def test_upstream_cut_mid_stream_ends_the_client_stream_with_an_error(world: World) -> None:
    world.anthropic.push(StreamCut(text_message("this answer is cut off"), after_events=6))
    stream = await world.client.chat.completions.create(model="claude-chat", messages=USER, stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIError):
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "this ans"
    assert world.fallback.received == []
