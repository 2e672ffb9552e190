"""Reasoning end to end: the official `openai` SDK → sidecar → the fake Gemini API.

`reasoning_effort` → `thinkingConfig` (budget clamped below `maxOutputTokens`, thoughts included);
thought parts come back as `reasoning_content`, plain and streamed, with `thoughtsTokenCount` as
`reasoning_tokens`; a two-turn tool loop on a fake that, like Gemini 3, refuses a model turn whose
first function call lost its `thoughtSignature`; Vertex `MODEL_ARMOR` → `content_filter`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestServer

from tests.fakes.gemini_upstream import (
    FakeGemini,
    JsonReply,
    SseReply,
    call_parts,
    candidate,
    response,
    text_response,
    thought_part,
    usage_metadata,
)
from tests.sidecar.harness import Sidecar, compile_yaml, running_sidecar

ENV = {"GEMINI_API_KEY": "g-key"}
SIGNATURE = "CiQB0e2Kb7ZmFwGnhZ0JrT0zSgH0lO0r1o3f2F7c3mT0cGxhY2U="
THOUGHT = "**Checking the weather**\n\nI need the current conditions for Paris, so I call get_weather."
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
USER: Any = [{"role": "user", "content": "Weather in Paris?"}]


def astra_yml(url: str) -> str:
    return f"""
        version: 1
        agents:
          - id: thinker
            model: {{provider: gemini, modelId: gemini-3-pro-preview, endpoint: "{url}", maxOutputTokens: 2000}}
        """


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[FakeGemini, Sidecar]]:
    fake = FakeGemini(api_key="g-key", require_signatures=True)
    server = TestServer(fake.app())
    await server.start_server()
    table = compile_yaml(tmp_path, astra_yml(str(server.make_url("")).rstrip("/")))
    try:
        async with running_sidecar(table, env=ENV) as sidecar:
            yield fake, sidecar
    finally:
        await server.close()


def thought_then_call() -> Any:
    parts = [thought_part(THOUGHT), *call_parts([("get_weather", {"city": "Paris"})], signature=SIGNATURE)]
    return response([candidate(parts)], usage=usage_metadata(40, 10, thoughts=120))


def second_turn(call_id: str, arguments: str) -> Any:
    call = {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
    return [
        *USER,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call_id, "content": "18°C"},
    ]


async def test_effort_maps_to_thinking_config_and_thoughts_to_reasoning_content(
    world: tuple[FakeGemini, Sidecar],
) -> None:
    fake, sidecar = world
    parts = [thought_part(THOUGHT), {"text": "Sunny."}]
    fake.enqueue(JsonReply(response([candidate(parts)], usage=usage_metadata(40, 2, thoughts=120))))
    answer = await sidecar.client().chat.completions.create(
        model="thinker", messages=USER, reasoning_effort="high"
    )
    message = answer.choices[0].message
    assert message.content == "Sunny."
    assert (message.model_extra or {})["reasoning_content"] == THOUGHT
    assert answer.usage is not None and answer.usage.completion_tokens_details is not None
    assert answer.usage.completion_tokens_details.reasoning_tokens == 120
    config = fake.requests[0].body["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingBudget": 1999, "includeThoughts": True}


async def test_effort_none_on_gemini_3_pro_is_its_smallest_budget(world: tuple[FakeGemini, Sidecar]) -> None:
    # Gemini 3 Pro cannot turn thinking off (https://ai.google.dev/gemini-api/docs/thinking).
    fake, sidecar = world
    fake.enqueue(JsonReply(text_response("Sunny.")))
    await sidecar.client().chat.completions.create(model="thinker", messages=USER, reasoning_effort="none")
    assert fake.requests[0].body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 128}


async def test_two_turn_tool_loop_with_thinking_plain(world: tuple[FakeGemini, Sidecar]) -> None:
    fake, sidecar = world
    fake.enqueue(JsonReply(thought_then_call()), JsonReply(text_response("18°C in Paris.")))
    client = sidecar.client()
    first = await client.chat.completions.create(
        model="thinker", messages=USER, tools=[WEATHER], reasoning_effort="low"
    )
    [call] = first.choices[0].message.tool_calls or []
    assert (first.choices[0].message.model_extra or {})["reasoning_content"] == THOUGHT
    second = await client.chat.completions.create(
        model="thinker", messages=second_turn(call.id, call.function.arguments), tools=[WEATHER]
    )
    assert second.choices[0].message.content == "18°C in Paris."
    model_turn = fake.requests[1].body["contents"][1]
    assert model_turn["parts"][0]["thoughtSignature"] == SIGNATURE
    assert not any(p.get("thought") for p in model_turn["parts"])


async def test_two_turn_tool_loop_with_thinking_streamed(world: tuple[FakeGemini, Sidecar]) -> None:
    fake, sidecar = world
    fake.enqueue(SseReply([thought_then_call()], piece_size=7), JsonReply(text_response("18°C in Paris.")))
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
        model="thinker", messages=second_turn(call_id, arguments), tools=[WEATHER]
    )
    assert second.choices[0].message.content == "18°C in Paris."
    assert fake.requests[1].body["contents"][1]["parts"][0]["thoughtSignature"] == SIGNATURE


async def test_a_lost_signature_is_refused_by_the_fake(world: tuple[FakeGemini, Sidecar]) -> None:
    """The fake's rule holds: a plain id (no carried signature) gets Gemini 3's 400."""
    _, sidecar = world
    with pytest.raises(openai.BadRequestError, match="thought_signature"):
        await sidecar.client().chat.completions.create(
            model="thinker", messages=second_turn("call_plain", "{}"), tools=[WEATHER]
        )


@pytest.mark.parametrize("stream", [False, True])
async def test_model_armor_is_a_content_filter(world: tuple[FakeGemini, Sidecar], stream: bool) -> None:
    fake, sidecar = world
    blocked = response([candidate([], "MODEL_ARMOR")])
    fake.enqueue(SseReply([blocked]) if stream else JsonReply(blocked))
    client = sidecar.client()
    if stream:
        chunks = [
            c async for c in await client.chat.completions.create(model="thinker", messages=USER, stream=True)
        ]
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finishes == ["content_filter"]
    else:
        answer = await client.chat.completions.create(model="thinker", messages=USER)
        assert answer.choices[0].finish_reason == "content_filter"
