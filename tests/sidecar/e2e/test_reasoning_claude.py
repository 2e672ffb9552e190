"""Reasoning end to end: the official `openai` SDK → sidecar → the fake Anthropic API.

`reasoning_effort` becomes extended thinking; the thinking text comes back as
`reasoning_content` (plain and streamed); a two-turn tool loop sends the signed thinking block back
unchanged (the fake refuses the second turn otherwise, as the API does).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestServer
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from tests.fakes.anthropic_upstream import FakeAnthropic, Reply, message, signed_thinking, text_message
from tests.sidecar.harness import Sidecar, compile_yaml, running_sidecar

ENV = {"ANTHROPIC_API_KEY": "sk-ant-e2e"}
WEATHER: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Weather in Paris?"}]
# The shape of Anthropic's documented tool-use-with-thinking answer (extended-thinking guide).
THOUGHT = "The user wants the weather in Paris. I should call get_weather."
TOOL_USE = {"type": "tool_use", "id": "toolu_01CswdEQBMshySk6Y9DFKrfq", "name": "get_weather"}


def astra_yml(url: str) -> str:
    return f"""
        version: 1
        agents:
          - id: thinker
            model: {{provider: claude, modelId: claude-test, endpoint: {url}, maxOutputTokens: 4096}}
        """


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[FakeAnthropic, Sidecar]]:
    fake = FakeAnthropic()
    server = TestServer(fake.app())
    await server.start_server()
    table = compile_yaml(tmp_path, astra_yml(str(server.make_url("")).rstrip("/")))
    try:
        async with running_sidecar(table, env=ENV) as sidecar:
            yield fake, sidecar
    finally:
        await server.close()


def thinking_then_tool() -> Reply:
    blocks = [signed_thinking(THOUGHT), {**TOOL_USE, "input": {"city": "Paris"}}]
    return Reply(message(blocks, stop_reason="tool_use"))


def second_turn(call_id: str, arguments: str) -> list[ChatCompletionMessageParam]:
    call: Any = {
        "id": call_id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": arguments},
    }
    return [
        *USER,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call_id, "content": "18°C, sunny"},
    ]


async def test_effort_maps_to_a_clamped_budget_and_thinking_comes_back_as_reasoning_content(
    world: tuple[FakeAnthropic, Sidecar],
) -> None:
    fake, sidecar = world
    fake.push(Reply(message([signed_thinking(THOUGHT), {"type": "text", "text": "Sunny."}])))
    answer = await sidecar.client().chat.completions.create(
        model="thinker", messages=USER, reasoning_effort="high", temperature=0.2
    )
    message_ = answer.choices[0].message
    assert message_.content == "Sunny."
    assert (message_.model_extra or {})["reasoning_content"] == THOUGHT
    [sent] = fake.requests
    assert sent.body["thinking"] == {"type": "enabled", "budget_tokens": 4095}
    assert "temperature" not in sent.body


async def test_no_effort_means_no_thinking(world: tuple[FakeAnthropic, Sidecar]) -> None:
    fake, sidecar = world
    fake.push(Reply(text_message("Sunny.")))
    await sidecar.client().chat.completions.create(model="thinker", messages=USER, reasoning_effort="none")
    assert "thinking" not in fake.requests[0].body


async def test_two_turn_tool_loop_with_thinking_plain(world: tuple[FakeAnthropic, Sidecar]) -> None:
    fake, sidecar = world
    client: openai.AsyncOpenAI = sidecar.client()
    fake.push(thinking_then_tool(), Reply(text_message("It is 18°C and sunny.")))
    first = await client.chat.completions.create(
        model="thinker", messages=USER, tools=[WEATHER], reasoning_effort="low"
    )
    [call] = first.choices[0].message.tool_calls or []
    assert first.choices[0].finish_reason == "tool_calls"
    assert (first.choices[0].message.model_extra or {})["reasoning_content"] == THOUGHT
    second = await client.chat.completions.create(
        model="thinker",
        messages=second_turn(call.id, call.function.arguments),
        tools=[WEATHER],
        reasoning_effort="low",
    )
    assert second.choices[0].message.content == "It is 18°C and sunny."
    sent = fake.requests[1].body
    assistant, results = sent["messages"][1]["content"], sent["messages"][2]["content"]
    assert assistant[0] == signed_thinking(THOUGHT)
    assert assistant[1]["id"] == TOOL_USE["id"]
    assert results[0]["tool_use_id"] == TOOL_USE["id"]


async def test_two_turn_tool_loop_with_thinking_streamed(world: tuple[FakeAnthropic, Sidecar]) -> None:
    fake, sidecar = world
    client: openai.AsyncOpenAI = sidecar.client()
    fake.push(thinking_then_tool(), Reply(text_message("It is 18°C and sunny.")))
    stream = await client.chat.completions.create(
        model="thinker", messages=USER, tools=[WEATHER], reasoning_effort="low", stream=True
    )
    reasoning, call_id, arguments = "", "", ""
    async for chunk in stream:
        delta = chunk.choices[0].delta if chunk.choices else None
        if delta is None:
            continue
        reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
        for call in delta.tool_calls or ():
            call_id += call.id or ""
            arguments += (call.function.arguments if call.function else None) or ""
    assert reasoning == THOUGHT
    assert arguments == '{"city": "Paris"}'
    second = await client.chat.completions.create(
        model="thinker", messages=second_turn(call_id, arguments), tools=[WEATHER], reasoning_effort="low"
    )
    assert second.choices[0].message.content == "It is 18°C and sunny."
    assert fake.requests[1].body["messages"][1]["content"][0] == signed_thinking(THOUGHT)


async def test_without_thinking_the_carried_block_is_not_sent(world: tuple[FakeAnthropic, Sidecar]) -> None:
    fake, sidecar = world
    client: openai.AsyncOpenAI = sidecar.client()
    fake.push(thinking_then_tool(), Reply(text_message("Sunny.")))
    first = await client.chat.completions.create(
        model="thinker", messages=USER, tools=[WEATHER], reasoning_effort="low"
    )
    [call] = first.choices[0].message.tool_calls or []
    await client.chat.completions.create(
        model="thinker", messages=second_turn(call.id, call.function.arguments), tools=[WEATHER]
    )
    sent = fake.requests[1].body
    assert "thinking" not in sent
    assert [b["type"] for b in sent["messages"][1]["content"]] == ["tool_use"]
