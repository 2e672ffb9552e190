"""Reasoning through the Anthropic ingress: the official `anthropic` SDK → sidecar → fake Gemini,
Bedrock, OpenRouter and Anthropic upstreams (`reasoning_world`).

`thinking` becomes the provider's control; the answer's reasoning comes back as a `thinking`
block (plain) or `content_block_start` type thinking + `thinking_delta`s (streamed); a two-turn
tool loop, with the client sending its thinking block back, is accepted by upstreams that require
their signed reasoning back (Gemini 3, Claude on Bedrock, Claude with `expose: false`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from anthropic import AsyncAnthropic

from tests.fakes.anthropic_upstream import Reply, signed_thinking, text_message
from tests.fakes.bedrock_upstream import Answer, Stream, stream_frames, text_response
from tests.fakes.gemini_upstream import SseReply, candidate, response, thought_part, usage_metadata
from tests.sidecar.e2e.reasoning_world import (
    GEMINI_SIGNATURE,
    THOUGHT,
    World,
    bedrock_thought_then_call,
    claude_thinking_then_tool,
    gemini_text,
    gemini_thought_then_call,
    gemini_thought_then_text,
    reasoning_world,
    router_reasoning_answer,
    router_reasoning_stream,
)

pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")

WEATHER: Any = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
USER: Any = [{"role": "user", "content": "Weather in Paris?"}]
THINKING: Any = {"type": "enabled", "budget_tokens": 2048}


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with reasoning_world(tmp_path) as built:
        yield built


def second_turn(first: Any) -> Any:
    """The client's next request: its assistant turn as the SDK returned it, then the result."""
    assistant = [block.model_dump(exclude_none=True) for block in first.content]
    [call] = [block for block in first.content if block.type == "tool_use"]
    result = {"type": "tool_result", "tool_use_id": call.id, "content": "18°C, sunny"}
    return [*USER, {"role": "assistant", "content": assistant}, {"role": "user", "content": [result]}]


async def test_thinking_on_gemini_maps_to_thinking_config_and_comes_back_as_a_thinking_block(
    world: World,
) -> None:
    world.gemini.enqueue(gemini_thought_then_text())
    client: AsyncAnthropic = world.anthropic_client("gemini")
    answer = await client.messages.create(model="gemini", max_tokens=1500, messages=USER, thinking=THINKING)
    thinking, text = answer.content
    assert thinking.type == "thinking" and thinking.thinking == THOUGHT and thinking.signature == ""
    assert text.type == "text" and text.text == "Sunny, 18°C."
    assert answer.usage.output_tokens == 126  # 6 answer + 120 thought tokens
    # budget 2048 → low → 1024, Gemini 3 Pro's range, below the 1500-token cap
    config = world.gemini.requests[0].body["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingBudget": 1024, "includeThoughts": True}


async def test_thinking_on_gemini_streamed_as_thinking_deltas(world: World) -> None:
    half = len(THOUGHT) // 2
    events = [
        response([candidate([thought_part(THOUGHT[:half])], finish=None)]),
        response([candidate([thought_part(THOUGHT[half:])], finish=None)]),
        response([candidate([{"text": "Sunny."}])], usage=usage_metadata(40, 2, thoughts=120)),
    ]
    world.gemini.enqueue(SseReply(events))
    client = world.anthropic_client("gemini")
    kinds: list[str] = []
    thinking = ""
    async with client.messages.stream(
        model="gemini", max_tokens=1500, messages=USER, thinking=THINKING
    ) as stream:
        async for event in stream:
            if event.type == "content_block_start":
                kinds.append(event.content_block.type)
            elif event.type == "content_block_delta" and event.delta.type == "thinking_delta":
                thinking += event.delta.thinking
        final = await stream.get_final_message()
    assert kinds == ["thinking", "text"]
    assert thinking == THOUGHT
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.usage.output_tokens == 122


async def test_two_turn_tool_loop_with_thinking_on_gemini(world: World) -> None:
    world.gemini.enqueue(gemini_thought_then_call(), gemini_text("It is 18°C and sunny."))
    client = world.anthropic_client("gemini")
    first = await client.messages.create(
        model="gemini", max_tokens=1500, messages=USER, tools=[WEATHER], thinking=THINKING
    )
    assert [block.type for block in first.content] == ["thinking", "tool_use"]
    assert first.stop_reason == "tool_use"
    second = await client.messages.create(
        model="gemini", max_tokens=1500, messages=second_turn(first), tools=[WEATHER], thinking=THINKING
    )
    assert second.content[0].type == "text" and second.content[0].text == "It is 18°C and sunny."
    # The fake refuses a model turn whose call lost its signature (Gemini 3): it came back.
    model_turn = world.gemini.requests[1].body["contents"][1]
    assert model_turn["parts"][0]["thoughtSignature"] == GEMINI_SIGNATURE
    assert all("thought" not in part for part in model_turn["parts"])


async def test_two_turn_tool_loop_with_thinking_on_bedrock_claude(world: World) -> None:
    world.bedrock.script(bedrock_thought_then_call(), Answer(text_response("It is 18°C and sunny.")))
    client = world.anthropic_client("bedrock")
    first = await client.messages.create(
        model="bedrock", max_tokens=2048, messages=USER, tools=[WEATHER], thinking=THINKING
    )
    thinking, call = first.content
    assert thinking.type == "thinking" and thinking.thinking == THOUGHT
    assert call.type == "tool_use" and call.input == {"city": "Paris"}
    fields = world.bedrock.requests[0].json["additionalModelRequestFields"]
    assert fields == {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    second = await client.messages.create(
        model="bedrock", max_tokens=2048, messages=second_turn(first), tools=[WEATHER], thinking=THINKING
    )
    assert second.content[0].type == "text" and second.content[0].text == "It is 18°C and sunny."
    assert world.bedrock.rejected == []
    assert len(world.bedrock.requests) == 2


async def test_thinking_on_bedrock_streamed(world: World) -> None:
    world.bedrock.script(Stream(stream_frames(bedrock_thought_then_call().body)))
    client = world.anthropic_client("bedrock")
    kinds: list[str] = []
    async with client.messages.stream(
        model="bedrock", max_tokens=2048, messages=USER, tools=[WEATHER], thinking=THINKING
    ) as stream:
        async for event in stream:
            if event.type == "content_block_start":
                kinds.append(event.content_block.type)
        final = await stream.get_final_message()
    assert kinds == ["thinking", "tool_use"]
    assert final.content[0].type == "thinking" and final.content[0].thinking == THOUGHT
    assert final.stop_reason == "tool_use"


async def test_openrouter_reasoning_streamed_as_thinking(world: World) -> None:
    world.router.script = [router_reasoning_stream()]
    client = world.anthropic_client("router")
    async with client.messages.stream(
        model="router", max_tokens=1024, messages=USER, thinking=THINKING
    ) as stream:
        final = await stream.get_final_message()
    thinking, text = final.content
    assert thinking.type == "thinking" and thinking.thinking == THOUGHT
    assert text.type == "text" and text.text == "Sunny, 18°C."
    assert world.router.received[0].body["reasoning_effort"] == "low"


async def test_thinking_disabled_is_effort_none(world: World) -> None:
    world.gemini.enqueue(gemini_text("Sunny."))
    client = world.anthropic_client("gemini")
    await client.messages.create(
        model="gemini", max_tokens=1500, messages=USER, thinking={"type": "disabled"}
    )
    # Gemini 3 Pro cannot turn thinking off: its smallest budget, no thoughts asked for.
    assert world.gemini.requests[0].body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 128}


async def test_hidden_reasoning_on_claude_keeps_the_tool_loop(world: World) -> None:
    # expose: false → translated even on claude; no thinking block reaches the client, but the
    # signed block rides in the tool_use id and the fake accepts the second turn.
    world.anthropic.push(claude_thinking_then_tool(), Reply(text_message("It is 18°C and sunny.")))
    client = world.anthropic_client("claude-hidden")
    first = await client.messages.create(
        model="claude-hidden", max_tokens=4096, messages=USER, tools=[WEATHER]
    )
    assert [block.type for block in first.content] == ["tool_use"]
    assert world.anthropic.requests[0].body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    second = await client.messages.create(
        model="claude-hidden", max_tokens=4096, messages=second_turn(first), tools=[WEATHER]
    )
    assert second.content[0].type == "text" and second.content[0].text == "It is 18°C and sunny."
    assistant = world.anthropic.requests[1].body["messages"][1]["content"]
    assert assistant[0] == signed_thinking(THOUGHT)
    assert assistant[1]["id"] == "toolu_01A09q90qw90lq917835lq9"


async def test_agent_default_on_the_native_path_and_the_callers_choices_win(world: World) -> None:
    world.anthropic.push(*(Reply(text_message("Sunny.")) for _ in range(3)))
    client = world.anthropic_client("claude-default")
    await client.messages.create(model="claude-default", max_tokens=4096, messages=USER)
    await client.messages.create(
        model="claude-default", max_tokens=4096, messages=USER, extra_body={"temperature": 0.5}
    )
    await client.messages.create(
        model="claude-default",
        max_tokens=4096,
        messages=USER,
        thinking={"type": "enabled", "budget_tokens": 1500},
    )
    first, second, third = (request.body for request in world.anthropic.requests)
    assert first["thinking"] == {"type": "enabled", "budget_tokens": 3000}
    assert "thinking" not in second and second["temperature"] == 0.5
    assert third["thinking"] == {"type": "enabled", "budget_tokens": 1500}


async def test_bedrock_default_effort_high_is_fitted_below_max_tokens(world: World) -> None:
    world.bedrock.script(Answer(text_response("Sunny.")))
    client = world.anthropic_client("bedrock-default")
    await client.messages.create(model="bedrock-default", max_tokens=2500, messages=USER)
    fields = world.bedrock.requests[0].json["additionalModelRequestFields"]
    assert fields == {"thinking": {"type": "enabled", "budget_tokens": 2499}}


async def test_openrouter_reasoning_plain_as_a_thinking_block(world: World) -> None:
    world.router.script = [router_reasoning_answer()]
    client = world.anthropic_client("router")
    answer = await client.messages.create(model="router", max_tokens=1024, messages=USER, thinking=THINKING)
    assert [(block.type, getattr(block, "thinking", None)) for block in answer.content] == [
        ("thinking", THOUGHT),
        ("text", None),
    ]
    assert answer.usage.output_tokens == 40


async def test_two_turn_tool_loop_with_thinking_on_claude_native(world: World) -> None:
    # Native: Anthropic's signed block reaches the client and comes back byte for byte.
    world.anthropic.push(claude_thinking_then_tool(), Reply(text_message("It is 18°C and sunny.")))
    client = world.anthropic_client("claude")
    first = await client.messages.create(
        model="claude", max_tokens=4096, messages=USER, tools=[WEATHER], thinking=THINKING
    )
    assert (
        first.content[0].type == "thinking"
        and first.content[0].signature == signed_thinking(THOUGHT)["signature"]
    )
    second = await client.messages.create(
        model="claude", max_tokens=4096, messages=second_turn(first), tools=[WEATHER], thinking=THINKING
    )
    assert second.content[0].type == "text" and second.content[0].text == "It is 18°C and sunny."
