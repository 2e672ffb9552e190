"""The agent's reasoning default and `expose: false` through the OpenAI ingress (Chat Completions
and Responses, official `openai` SDK) on the fake upstreams of `reasoning_world`.

A request without reasoning gets the agent's default, fitted to the model; a request value wins;
`expose: false` strips `reasoning_content` (plain and streamed) and still reports the reasoning
tokens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.anthropic_upstream import Reply, text_message
from tests.fakes.bedrock_upstream import Answer, text_response
from tests.fakes.gemini_upstream import SseReply, candidate, response, thought_part, usage_metadata
from tests.sidecar.e2e.reasoning_world import THOUGHT, World, gemini_thought_then_text, reasoning_world

USER: Any = [{"role": "user", "content": "Weather in Paris?"}]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with reasoning_world(tmp_path) as built:
        yield built


async def test_the_default_applies_when_the_request_has_none_and_a_request_value_wins(world: World) -> None:
    world.anthropic.push(*(Reply(text_message("Sunny.")) for _ in range(3)))
    client = world.sidecar.client()
    await client.chat.completions.create(model="claude-default", messages=USER)
    await client.chat.completions.create(model="claude-default", messages=USER, reasoning_effort="high")
    await client.chat.completions.create(model="claude-default", messages=USER, reasoning_effort="none")
    default, high, none = (request.body for request in world.anthropic.requests)
    assert default["thinking"] == {"type": "enabled", "budget_tokens": 3000}  # the agent's budgetTokens
    assert high["thinking"] == {"type": "enabled", "budget_tokens": 4095}  # 24576, below max_tokens 4096
    assert "thinking" not in none


async def test_the_default_through_the_responses_api(world: World) -> None:
    world.anthropic.push(Reply(text_message("Sunny.")), Reply(text_message("Sunny.")))
    client = world.sidecar.client()
    await client.responses.create(model="claude-default", input="Weather in Paris?")
    await client.responses.create(
        model="claude-default", input="Weather in Paris?", reasoning={"effort": "low"}
    )
    default, low = (request.body for request in world.anthropic.requests)
    assert default["thinking"] == {"type": "enabled", "budget_tokens": 3000}
    assert low["thinking"] == {"type": "enabled", "budget_tokens": 1024}


async def test_budget_only_default_is_clamped_to_the_models_maximum(world: World) -> None:
    world.gemini.enqueue(gemini_thought_then_text())
    answer = await world.sidecar.client().chat.completions.create(model="gemini-default", messages=USER)
    assert (answer.choices[0].message.model_extra or {})["reasoning_content"] == THOUGHT
    config = world.gemini.requests[0].body["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingBudget": 24576, "includeThoughts": True}


async def test_bedrock_default_effort(world: World) -> None:
    world.bedrock.script(Answer(text_response("Sunny.")))
    await world.sidecar.client().chat.completions.create(model="bedrock-default", messages=USER)
    fields = world.bedrock.requests[0].json["additionalModelRequestFields"]
    assert fields == {"thinking": {"type": "enabled", "budget_tokens": 2999}}


async def test_hidden_reasoning_plain_keeps_the_reasoning_tokens(world: World) -> None:
    world.gemini.enqueue(gemini_thought_then_text())
    answer = await world.sidecar.client().chat.completions.create(
        model="gemini-hidden", messages=USER, reasoning_effort="medium"
    )
    message = answer.choices[0].message
    assert message.content == "Sunny, 18°C."
    assert "reasoning_content" not in (message.model_extra or {})
    assert answer.usage is not None and answer.usage.completion_tokens_details is not None
    assert answer.usage.completion_tokens_details.reasoning_tokens == 120
    config = world.gemini.requests[0].body["generationConfig"]["thinkingConfig"]
    assert config == {"thinkingBudget": 1999, "includeThoughts": False}  # 8192, below maxOutputTokens 2000


async def test_hidden_reasoning_streamed(world: World) -> None:
    events = [
        response([candidate([thought_part(THOUGHT)], finish=None)]),
        response([candidate([{"text": "Sunny."}])], usage=usage_metadata(40, 2, thoughts=120)),
    ]
    world.gemini.enqueue(SseReply(events))
    stream = await world.sidecar.client().chat.completions.create(
        model="gemini-hidden",
        messages=USER,
        reasoning_effort="low",
        stream=True,
        stream_options={"include_usage": True},
    )
    text, extras, reasoning_tokens = "", [], None
    async for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            extras.append(choice.delta.model_extra or {})
        if chunk.usage is not None and chunk.usage.completion_tokens_details is not None:
            reasoning_tokens = chunk.usage.completion_tokens_details.reasoning_tokens
    assert text == "Sunny."
    assert all("reasoning_content" not in extra for extra in extras)
    assert reasoning_tokens == 120
