"""Reasoning through the Gemini ingress: the official `google-genai` SDK → sidecar → fake
Anthropic, Bedrock, OpenRouter and Gemini upstreams (`reasoning_world`).

`thinkingConfig` becomes the provider's control; reasoning comes back as `thought: true` parts
(plain and streamed) when the caller asks for thoughts, its tokens as `thoughtsTokenCount`; a
two-turn tool loop on Claude and on Claude via Bedrock sends their signed reasoning back (the
fakes refuse the second turn otherwise); `expose: false` hides thoughts but keeps the count.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from google.genai import types

from tests.fakes.anthropic_upstream import Reply, message, signed_thinking, text_message, usage
from tests.fakes.bedrock_upstream import Answer, Stream, stream_frames, text_response
from tests.sidecar.e2e.reasoning_world import (
    GEMINI_SIGNATURE,
    THOUGHT,
    World,
    bedrock_thought_then_call,
    bedrock_thought_then_text,
    claude_thinking_then_text,
    claude_thinking_then_tool,
    gemini_text,
    gemini_thought_then_call,
    gemini_thought_then_text,
    reasoning_world,
    router_reasoning_answer,
    router_reasoning_stream,
)

pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")

MODEL = "gemini-2.5-flash"  # the SDK's model name; the route names the agent
USER: Any = [types.Content(role="user", parts=[types.Part(text="Weather in Paris?")])]
WEATHER = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="get_weather",
            description="Weather for a city",
            parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}},
        )
    ]
)


def thinking(budget: int = 2048, include: bool | None = True) -> types.ThinkingConfig:
    return types.ThinkingConfig(thinking_budget=budget, include_thoughts=include)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with reasoning_world(tmp_path) as built:
        yield built


async def ask(world: World, agent: str, contents: Any, **config: Any) -> Any:
    client = world.gemini_client(agent)
    return await client.aio.models.generate_content(
        model=MODEL, contents=contents, config=types.GenerateContentConfig(**config)
    )


async def ask_stream(world: World, agent: str, contents: Any, **config: Any) -> list[Any]:
    client = world.gemini_client(agent)
    stream = await client.aio.models.generate_content_stream(
        model=MODEL, contents=contents, config=types.GenerateContentConfig(**config)
    )
    return [chunk async for chunk in stream]


def parts_of(chunks: list[Any]) -> list[Any]:
    return [part for chunk in chunks if chunk.candidates for part in chunk.candidates[0].content.parts or ()]


def second_turn(first: Any) -> Any:
    """The client's next request: the model turn as the SDK returned it, then the result."""
    model_turn = first.candidates[0].content
    [call] = [part.function_call for part in model_turn.parts if part.function_call]
    result = types.Part(
        function_response=types.FunctionResponse(id=call.id, name=call.name, response={"output": "18°C"})
    )
    return [*USER, model_turn, types.Content(role="user", parts=[result])]


async def test_thinking_config_on_claude_and_thought_parts_back(world: World) -> None:
    world.anthropic.push(claude_thinking_then_text())
    answer = await ask(world, "claude", USER, thinking_config=thinking(), max_output_tokens=4000)
    thought, text = answer.candidates[0].content.parts
    assert thought.thought is True and thought.text == THOUGHT
    assert not text.thought and text.text == "Sunny, 18°C."
    assert answer.text == "Sunny, 18°C."
    # budget 2048 → low → 1024 (Anthropic's smallest), below max_tokens
    assert world.anthropic.requests[0].body["thinking"] == {"type": "enabled", "budget_tokens": 1024}


async def test_thought_parts_only_when_the_caller_asks_for_them(world: World) -> None:
    world.anthropic.push(claude_thinking_then_text())
    answer = await ask(world, "claude", USER, thinking_config=thinking(include=None), max_output_tokens=4000)
    assert [part.text for part in answer.candidates[0].content.parts] == ["Sunny, 18°C."]
    assert world.anthropic.requests[0].body["thinking"]["type"] == "enabled"


async def test_thinking_on_claude_streamed_as_thought_parts(world: World) -> None:
    world.anthropic.push(
        Reply(message([signed_thinking(THOUGHT), {"type": "text", "text": "Sunny."}]), text_chunk=9)
    )
    chunks = await ask_stream(world, "claude", USER, thinking_config=thinking(), max_output_tokens=4000)
    parts = parts_of(chunks)
    assert "".join(p.text or "" for p in parts if p.thought) == THOUGHT
    assert "".join(p.text or "" for p in parts if not p.thought) == "Sunny."
    assert len([p for p in parts if p.thought]) > 1  # sent as it arrives


async def test_openrouter_reasoning_and_thoughts_token_count(world: World) -> None:
    world.router.script = [router_reasoning_answer()]
    answer = await ask(world, "router", USER, thinking_config=thinking(budget=10000))
    thought, text = answer.candidates[0].content.parts
    assert thought.thought is True and thought.text == THOUGHT and text.text == "Sunny, 18°C."
    assert answer.usage_metadata.thoughts_token_count == 30
    assert answer.usage_metadata.candidates_token_count == 10
    assert world.router.received[0].body["reasoning_effort"] == "medium"


async def test_openrouter_reasoning_streamed(world: World) -> None:
    world.router.script = [router_reasoning_stream()]
    chunks = await ask_stream(world, "router", USER, thinking_config=thinking())
    parts = parts_of(chunks)
    assert "".join(p.text or "" for p in parts if p.thought) == THOUGHT
    assert chunks[-1].usage_metadata.thoughts_token_count == 30


async def test_two_turn_tool_loop_with_thinking_on_claude(world: World) -> None:
    world.anthropic.push(claude_thinking_then_tool(), Reply(text_message("It is 18°C and sunny.")))
    first = await ask(
        world, "claude", USER, tools=[WEATHER], thinking_config=thinking(), max_output_tokens=4000
    )
    thought, call = first.candidates[0].content.parts
    assert thought.thought is True and call.function_call.args == {"city": "Paris"}
    second = await ask(
        world,
        "claude",
        second_turn(first),
        tools=[WEATHER],
        thinking_config=thinking(),
        max_output_tokens=4000,
    )
    assert second.text == "It is 18°C and sunny."
    # The fake refuses a tool turn that does not start with the signed block, unchanged.
    assistant = world.anthropic.requests[1].body["messages"][1]["content"]
    assert assistant[0] == signed_thinking(THOUGHT)


async def test_two_turn_tool_loop_with_thinking_on_bedrock_streamed(world: World) -> None:
    world.bedrock.script(
        Stream(stream_frames(bedrock_thought_then_call().body)),
        Answer(text_response("It is 18°C and sunny.")),
    )
    chunks = await ask_stream(world, "bedrock", USER, tools=[WEATHER], thinking_config=thinking())
    parts = parts_of(chunks)
    assert "".join(p.text or "" for p in parts if p.thought) == THOUGHT
    [call] = [p.function_call for p in parts if p.function_call]
    model_turn = types.Content(role="model", parts=[types.Part(function_call=call)])
    result = types.Part(
        function_response=types.FunctionResponse(id=call.id, name=call.name, response={"output": "18°C"})
    )
    contents = [*USER, model_turn, types.Content(role="user", parts=[result])]
    second = await ask(world, "bedrock", contents, tools=[WEATHER], thinking_config=thinking())
    assert second.text == "It is 18°C and sunny."
    assert world.bedrock.rejected == [] and len(world.bedrock.requests) == 2
    assert world.bedrock.requests[1].validation_errors is None


async def test_hidden_reasoning_on_gemini_keeps_the_count_and_the_signature(world: World) -> None:
    world.gemini.enqueue(gemini_thought_then_call(), gemini_text("It is 18°C and sunny."))
    first = await ask(world, "gemini-hidden", USER, tools=[WEATHER], thinking_config=thinking())
    assert [bool(part.thought) for part in first.candidates[0].content.parts] == [False]
    assert first.usage_metadata.thoughts_token_count == 120
    assert world.gemini.requests[0].body["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": 1024,
        "includeThoughts": False,
    }
    second = await ask(
        world, "gemini-hidden", second_turn(first), tools=[WEATHER], thinking_config=thinking()
    )
    assert second.text == "It is 18°C and sunny."
    assert world.gemini.requests[1].body["contents"][1]["parts"][0]["thoughtSignature"] == GEMINI_SIGNATURE


async def test_agent_default_on_the_native_gemini_path_fitted_to_the_model(world: World) -> None:
    world.gemini.enqueue(gemini_thought_then_text(), gemini_text("Sunny."))
    answer = await ask(world, "gemini-default", USER)
    assert answer.candidates[0].content.parts[0].thought is True  # native: Gemini's own parts
    # budgetTokens 30000 → 24576, Gemini 2.5 Flash's largest
    first = world.gemini.requests[0].body["generationConfig"]["thinkingConfig"]
    assert first == {"thinkingBudget": 24576, "includeThoughts": True}
    await ask(world, "gemini-default", USER, thinking_config=thinking(budget=0, include=None))
    assert world.gemini.requests[1].body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0}


async def test_claude_usage_thinking_tokens_are_not_invented(world: World) -> None:
    world.anthropic.push(Reply(message([{"type": "text", "text": "Hi."}], usage_=usage(10, 5))))
    answer = await ask(world, "claude", USER, thinking_config=thinking(), max_output_tokens=4000)
    assert answer.usage_metadata.thoughts_token_count is None
    assert answer.usage_metadata.candidates_token_count == 5


async def test_bedrock_reasoning_plain_as_thought_parts(world: World) -> None:
    world.bedrock.script(bedrock_thought_then_text())
    answer = await ask(world, "bedrock", USER, thinking_config=thinking())
    thought, text = answer.candidates[0].content.parts
    assert thought.thought is True and thought.text == THOUGHT and text.text == "Sunny, 18°C."
    assert world.bedrock.requests[0].json["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 1024


async def test_two_turn_tool_loop_with_thinking_on_gemini_native(world: World) -> None:
    # Native: Gemini's own parts, thoughtSignature included, reach the client and come back.
    world.gemini.enqueue(gemini_thought_then_call(), gemini_text("It is 18°C and sunny."))
    first = await ask(world, "gemini", USER, tools=[WEATHER], thinking_config=thinking())
    assert first.candidates[0].content.parts[0].thought is True
    second = await ask(world, "gemini", second_turn(first), tools=[WEATHER], thinking_config=thinking())
    assert second.text == "It is 18°C and sunny."
    model_turn = world.gemini.requests[1].body["contents"][1]["parts"]
    assert [part.get("thoughtSignature") for part in model_turn if "functionCall" in part] == [
        GEMINI_SIGNATURE
    ]
