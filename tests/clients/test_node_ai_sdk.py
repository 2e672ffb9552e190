"""The Vercel AI SDK (tests/clients/node/ai-sdk.mjs): `generateText`, `streamText` and a tool it
runs itself, with `@ai-sdk/openai` (its default provider calls the Responses API) and with
`@ai-sdk/anthropic`, each on the agent of its own API (native) and on the other (translated)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.clients.node.harness import NodeWorld, node_world, run_node
from tests.fakes import anthropic_upstream as claude
from tests.fakes.openai_upstream import (
    Step,
    completion,
    response_call,
    response_events,
    response_text,
    text_chunks,
)

# (AI SDK provider, agent): the first two are native, the last two translated.
CASES = [
    ("openai", "gpt-agent"),
    ("anthropic", "claude-agent"),
    ("openai", "claude-agent"),
    ("anthropic", "gpt-agent"),
]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[NodeWorld]:
    async with node_world(tmp_path) as world:
        yield world


def _env(world: NodeWorld, provider: str, agent: str) -> dict[str, str]:
    if provider == "openai":
        return {"ASTRA_PROVIDER": "openai", "ASTRA_BASE_URL": f"{world.sidecar.url}/v1", "ASTRA_MODEL": agent}
    base = f"{world.sidecar.url}/v1/anthropic/{agent}/v1"
    return {"ASTRA_PROVIDER": "anthropic", "ASTRA_BASE_URL": base, "ASTRA_MODEL": "claude-any"}


def _answer(world: NodeWorld, provider: str, agent: str, text: str, stream: bool) -> None:
    if agent == "claude-agent":
        world.anthropic.push(claude.Reply(claude.text_message(text, usage_=claude.usage(12, 3))))
    elif provider == "openai":
        answer = response_text(text)
        world.openai.script.append(
            Step("events", chunks=response_events(answer)) if stream else Step(body=answer)
        )
    elif stream:
        usage = {
            **text_chunks([""], "gpt-up")[-1],
            "choices": [],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        }
        world.openai.script.append(Step("sse", chunks=[*text_chunks([text], "gpt-up"), usage]))
    else:
        world.openai.script.append(Step(body=completion(text, "gpt-up", usage=(12, 3))))


def _expected_paths(provider: str, agent: str, count: int) -> list[str]:
    if agent == "claude-agent":
        return []
    return ["/v1/responses" if provider == "openai" else "/v1/chat/completions"] * count


@pytest.mark.parametrize(("provider", "agent"), CASES)
async def test_generate_text(world: NodeWorld, provider: str, agent: str) -> None:
    _answer(world, provider, agent, "Paris.", stream=False)
    result = await run_node("ai-sdk.mjs", "generate", _env(world, provider, agent))
    assert result == {"ok": True, "text": "Paris.", "finish": "stop", "outputTokens": 3}
    assert world.paths() == _expected_paths(provider, agent, 1)


@pytest.mark.parametrize(("provider", "agent"), CASES)
async def test_stream_text(world: NodeWorld, provider: str, agent: str) -> None:
    _answer(world, provider, agent, "Rome.", stream=True)
    result = await run_node("ai-sdk.mjs", "stream", _env(world, provider, agent))
    assert result == {"ok": True, "text": "Rome.", "finish": "stop", "outputTokens": 3}
    assert world.paths() == _expected_paths(provider, agent, 1)


def _tool_call(world: NodeWorld, provider: str, agent: str) -> None:
    if agent == "claude-agent":
        world.anthropic.push(
            claude.Reply(claude.tool_message(claude.ToolUse("toolu_1", "get_weather", {"city": "Oslo"})))
        )
    elif provider == "openai":
        world.openai.script.append(Step(body=response_call("call_1", "get_weather", '{"city": "Oslo"}')))
    else:
        body = completion("", "gpt-up")
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
        }
        body["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [call]}
        body["choices"][0]["finish_reason"] = "tool_calls"
        world.openai.script.append(Step(body=body))


@pytest.mark.parametrize(("provider", "agent"), CASES)
async def test_tool_round_trip(world: NodeWorld, provider: str, agent: str) -> None:
    _tool_call(world, provider, agent)
    _answer(world, provider, agent, "Sunny in Oslo.", stream=False)
    result = await run_node("ai-sdk.mjs", "tool", _env(world, provider, agent))
    assert result == {"ok": True, "text": "Sunny in Oslo.", "calls": ["Oslo"], "steps": 2}
    assert world.paths() == _expected_paths(provider, agent, 2)
    second = world.anthropic.requests[1].body if agent == "claude-agent" else world.openai.received[1].body
    assert "sunny in Oslo" in json.dumps(second)  # the tool's result went upstream
