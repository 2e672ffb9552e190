"""Reasoning end to end: the official `openai` SDK → sidecar → the fake Bedrock (SigV4, botocore
validation). `reasoning_effort` → Claude's `thinking` in `additionalModelRequestFields`;
`reasoningContent` → `reasoning_content`; a two-turn tool loop sends the signed block back first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import bedrock_upstream as fake
from tests.fakes.bedrock_upstream import (
    Answer,
    BedrockUpstream,
    Stream,
    converse_response,
    signed_reasoning,
    stream_frames,
    text_response,
    tool_use,
)
from tests.sidecar.harness import Sidecar, compile_yaml, running_sidecar

MODEL = "anthropic.claude-3-7-sonnet-20250219-v1:0"
ENV = {
    "AWS_ACCESS_KEY_ID": fake.TEST_ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": fake.TEST_SECRET_KEY,
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}
THOUGHT = "The user asks for the weather in Paris; I will call get_weather."
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
USER: Any = [{"role": "user", "content": "Weather in Paris?"}]


@pytest.fixture
async def world(aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[tuple[BedrockUpstream, Sidecar]]:
    upstream = BedrockUpstream()
    server = await aiohttp_server(upstream.app)
    url = str(server.make_url("")).rstrip("/")
    yml = f"""
    version: 1
    agents:
      thinker:
        model: {{provider: bedrock, modelId: {MODEL}, endpoint: {url}, region: us-east-1, maxOutputTokens: 3000}}
    """
    async with running_sidecar(compile_yaml(tmp_path, yml), env=ENV) as sidecar:
        yield upstream, sidecar


def thought_then_call() -> Any:
    return converse_response(
        [
            signed_reasoning(THOUGHT),
            tool_use("tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "get_weather", {"city": "Paris"}),
        ],
        "tool_use",
    )


def second_turn(call_id: str, arguments: str) -> Any:
    call = {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
    return [*USER, {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call_id, "content": "18°C"}]  # fmt: skip


async def test_two_turn_tool_loop_with_thinking_plain(world: tuple[BedrockUpstream, Sidecar]) -> None:
    upstream, sidecar = world
    upstream.script(Answer(thought_then_call()), Answer(text_response("18°C in Paris.")))
    client = sidecar.client()
    first = await client.chat.completions.create(
        model="thinker", messages=USER, tools=[WEATHER], reasoning_effort="low"
    )
    assert (first.choices[0].message.model_extra or {})["reasoning_content"] == THOUGHT
    [call] = first.choices[0].message.tool_calls or []
    second = await client.chat.completions.create(
        model="thinker",
        messages=second_turn(call.id, call.function.arguments),
        tools=[WEATHER],
        reasoning_effort="low",
    )
    assert second.choices[0].message.content == "18°C in Paris."
    sent = upstream.requests[1].json
    assert sent["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    assert sent["messages"][1]["content"][0] == signed_reasoning(THOUGHT)
    assert sent["messages"][1]["content"][1]["toolUse"]["toolUseId"] == "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q"
    assert sent["messages"][2]["content"][0]["toolResult"]["toolUseId"] == "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q"


async def test_two_turn_tool_loop_with_thinking_streamed(world: tuple[BedrockUpstream, Sidecar]) -> None:
    upstream, sidecar = world
    upstream.script(Stream(stream_frames(thought_then_call())), Answer(text_response("18°C in Paris.")))
    client = sidecar.client()
    stream = await client.chat.completions.create(
        model="thinker", messages=USER, tools=[WEATHER], reasoning_effort="low", stream=True
    )
    reasoning, call_id, arguments = "", "", ""
    async for chunk in stream:
        for choice in chunk.choices:
            reasoning += (choice.delta.model_extra or {}).get("reasoning_content") or ""
            for call in choice.delta.tool_calls or ():
                call_id += call.id or ""
                arguments += (call.function.arguments if call.function else None) or ""
    assert reasoning == THOUGHT
    second = await client.chat.completions.create(
        model="thinker", messages=second_turn(call_id, arguments), tools=[WEATHER], reasoning_effort="low"
    )
    assert second.choices[0].message.content == "18°C in Paris."
    assert upstream.requests[1].json["messages"][1]["content"][0] == signed_reasoning(THOUGHT)
