"""The official `@anthropic-ai/sdk` Node SDK (tests/clients/node/anthropic.mjs) on the sidecar's
Anthropic route: Messages plain, streamed and a tool round trip, each on an agent served by
Claude (native) and by OpenAI (translated through Chat Completions)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.clients.node.harness import NodeWorld, node_world, run_node
from tests.fakes import anthropic_upstream as claude
from tests.fakes.openai_upstream import Step, completion, text_chunks

AGENTS = ["claude-agent", "gpt-agent"]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[NodeWorld]:
    async with node_world(tmp_path) as world:
        yield world


def _env(world: NodeWorld, agent: str) -> dict[str, str]:
    return {"ASTRA_BASE_URL": f"{world.sidecar.url}/v1/anthropic/{agent}", "ASTRA_MODEL": "claude-any"}


def _tool_completion() -> dict[str, object]:
    body = completion("", "gpt-up")
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
    }
    body["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [call]}
    body["choices"][0]["finish_reason"] = "tool_calls"
    return body


@pytest.mark.parametrize("agent", AGENTS)
async def test_messages_plain(world: NodeWorld, agent: str) -> None:
    if agent == "claude-agent":
        world.anthropic.push(claude.Reply(claude.text_message("Paris.", usage_=claude.usage(12, 3))))
    else:
        world.openai.script.append(Step(body=completion("Paris.", "gpt-up", usage=(12, 3))))
    result = await run_node("anthropic.mjs", "messages-plain", _env(world, agent))
    assert result == {"ok": True, "text": "Paris.", "stop": "end_turn", "outputTokens": 3}
    assert world.paths() == ([] if agent == "claude-agent" else ["/v1/chat/completions"])
    assert len(world.anthropic.requests) == (1 if agent == "claude-agent" else 0)


@pytest.mark.parametrize("agent", AGENTS)
async def test_messages_stream(world: NodeWorld, agent: str) -> None:
    if agent == "claude-agent":
        world.anthropic.push(claude.Reply(claude.text_message("Rome.")))
    else:
        world.openai.script.append(Step("sse", chunks=text_chunks(["Ro", "me."], "gpt-up")))
    result = await run_node("anthropic.mjs", "messages-stream", _env(world, agent))
    assert result["ok"], result
    assert result["text"] == "Rome."
    assert result["stop"] == "end_turn"
    assert result["events"][0] == "message_start"
    assert result["events"][-1] == "message_stop"
    assert "content_block_delta" in result["events"]


@pytest.mark.parametrize("agent", AGENTS)
async def test_messages_tool_round_trip(world: NodeWorld, agent: str) -> None:
    if agent == "claude-agent":
        world.anthropic.push(
            claude.Reply(claude.tool_message(claude.ToolUse("toolu_1", "get_weather", {"city": "Oslo"}))),
            claude.Reply(claude.text_message("Sunny in Oslo.")),
        )
    else:
        world.openai.script += [
            Step(body=_tool_completion()),
            Step(body=completion("Sunny in Oslo.", "gpt-up")),
        ]
    result = await run_node("anthropic.mjs", "messages-tool", _env(world, agent))
    expected = {"ok": True, "calls": [{"name": "get_weather", "input": {"city": "Oslo"}}], "stop": "tool_use"}
    assert result == {**expected, "text": "Sunny in Oslo."}
    if agent == "claude-agent":
        last = world.anthropic.requests[1].body["messages"][-1]
        assert last["content"][0]["type"] == "tool_result"
    else:
        messages = world.openai.received[1].body["messages"]
        assert messages[-1] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny in Oslo"}
    assert "sunny in Oslo" in json.dumps(
        world.anthropic.requests[1].body if agent == "claude-agent" else messages
    )
