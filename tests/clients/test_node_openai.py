"""The official `openai` Node SDK (tests/clients/node/openai.mjs) through the sidecar:
`responses.create` plain, streamed and a tool round trip, and `chat.completions.create`, each on
an agent served by OpenAI (the Responses API natively) and by Claude (translated)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.clients.node.harness import NodeWorld, node_world, run_node
from tests.fakes import anthropic_upstream as claude
from tests.fakes.openai_upstream import Step, completion, response_call, response_events, response_text

AGENTS = ["gpt-agent", "claude-agent"]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[NodeWorld]:
    async with node_world(tmp_path) as world:
        yield world


def _env(world: NodeWorld, agent: str) -> dict[str, str]:
    return {"ASTRA_BASE_URL": f"{world.sidecar.url}/v1", "ASTRA_MODEL": agent}


def _answer(world: NodeWorld, agent: str, text: str, *, stream: bool = False) -> None:
    if agent == "gpt-agent":
        answer = response_text(text)
        world.openai.script.append(
            Step("events", chunks=response_events(answer)) if stream else Step(body=answer)
        )
    else:
        world.anthropic.push(claude.Reply(claude.text_message(text, usage_=claude.usage(12, 3))))


@pytest.mark.parametrize("agent", AGENTS)
async def test_responses_plain(world: NodeWorld, agent: str) -> None:
    _answer(world, agent, "Paris.")
    result = await run_node("openai.mjs", "responses-plain", _env(world, agent))
    assert result == {"ok": True, "text": "Paris.", "status": "completed", "outputTokens": 3}
    assert world.paths() == (["/v1/responses"] if agent == "gpt-agent" else [])
    assert len(world.anthropic.requests) == (1 if agent == "claude-agent" else 0)


@pytest.mark.parametrize("agent", AGENTS)
async def test_responses_stream(world: NodeWorld, agent: str) -> None:
    _answer(world, agent, "Rome.", stream=True)
    result = await run_node("openai.mjs", "responses-stream", _env(world, agent))
    assert result["ok"], result
    assert result["text"] == "Rome."
    assert result["types"][0] == "response.created"
    assert result["types"][-1] == "response.completed"
    assert "response.output_text.delta" in result["types"]
    assert result["sequence"] == list(range(len(result["types"])))
    assert result["finalStatus"] == "completed"
    assert result["outputTokens"] == 3


@pytest.mark.parametrize("agent", AGENTS)
async def test_responses_tool_round_trip(world: NodeWorld, agent: str) -> None:
    if agent == "gpt-agent":
        world.openai.script += [Step(body=response_call("call_1", "get_weather", '{"city": "Oslo"}')),
                                Step(body=response_text("Sunny in Oslo."))]  # fmt: skip
    else:
        world.anthropic.push(
            claude.Reply(claude.tool_message(claude.ToolUse("toolu_1", "get_weather", {"city": "Oslo"}))),
            claude.Reply(claude.text_message("Sunny in Oslo.")),
        )
    result = await run_node("openai.mjs", "responses-tool", _env(world, agent))
    assert result == {
        "ok": True,
        "calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}],
        "text": "Sunny in Oslo.",
    }
    if agent == "gpt-agent":
        second = world.openai.received[1].body
        outputs = [item for item in second["input"] if item.get("type") == "function_call_output"]
        assert outputs == [{"type": "function_call_output", "call_id": "call_1", "output": "sunny in Oslo"}]
    else:
        second = world.anthropic.requests[1].body
        assert "sunny in Oslo" in json.dumps(second["messages"][-1])


@pytest.mark.parametrize("agent", AGENTS)
async def test_chat_completions(world: NodeWorld, agent: str) -> None:
    if agent == "gpt-agent":
        world.openai.script.append(Step(body=completion("Madrid.", "gpt-up")))
    else:
        world.anthropic.push(claude.Reply(claude.text_message("Madrid.")))
    result = await run_node("openai.mjs", "chat", _env(world, agent))
    assert result == {"ok": True, "text": "Madrid.", "finish": "stop"}
    assert world.paths() == (["/v1/chat/completions"] if agent == "gpt-agent" else [])
