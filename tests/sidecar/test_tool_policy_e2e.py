"""Tool policy on answers, end to end, through the official SDKs of every ingress.

The mock provider answers with tool calls (`mock.toolCalls`): `lookup` and `notify` are allowed,
`refund` is denied. Claude and Gemini agents with a tool policy get a denied call from the fake
upstreams: they are served through the translation, where the guard reads every answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestServer
from anthropic import AsyncAnthropic
from google import genai
from google.genai import types

from astra_sidecar.compiler.loader import load_routing_table
from tests.fakes.anthropic_upstream import FakeAnthropic, Reply, ToolUse, tool_message
from tests.fakes.gemini_upstream import FakeGemini, JsonReply, SseReply, function_call_response
from tests.fakes.openai_upstream import FakeOpenAI, Step
from tests.sidecar.harness import Sidecar, compile_yaml, running_sidecar

pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")

REFUSAL = 'Tool call "refund" was blocked by this gateway\'s policy.'
USER = [{"role": "user", "content": "Refund order 42"}]
CALLS = """[{name: lookup, arguments: {order: 42}}, {name: refund, arguments: {order: 42, amount: 1000}},
                          {name: notify}]"""


def astra_yml(anthropic_url: str, gemini_url: str, openai_url: str) -> str:
    return f"""
        version: 1
        agents:
          guarded:
            tools: {{deny: [refund]}}
            model:
              provider: mock
              modelId: tools
              mock: {{reply: "Let me check.", toolCalls: {CALLS}}}
          open:
            model:
              provider: mock
              modelId: tools
              mock: {{reply: "Let me check.", toolCalls: {CALLS}}}
          locked:
            tools: {{allow: [search]}}
            model: {{provider: mock, modelId: locked, mock: {{toolCalls: [{{name: refund, arguments: {{amount: 1000}}}}]}}}}
          claude-guarded:
            tools: {{deny: [refund]}}
            model: {{provider: claude, modelId: claude-test, endpoint: "{anthropic_url}"}}
          gemini-guarded:
            tools: {{deny: [refund]}}
            model: {{provider: gemini, modelId: gemini-2.5-flash, endpoint: "{gemini_url}"}}
          openai-guarded:
            tools: {{deny: [refund]}}
            model: {{provider: openai, modelId: gpt-test, endpoint: "{openai_url}"}}
        """


@dataclass
class World:
    sidecar: Sidecar
    anthropic: FakeAnthropic
    gemini: FakeGemini
    openai_fake: FakeOpenAI
    #: How to close the SDK clients handed out (also when a test fails before closing its own).
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def openai(self) -> openai.AsyncOpenAI:
        return self.sidecar.client()

    def anthropic_client(self, agent: str) -> AsyncAnthropic:
        client = AsyncAnthropic(base_url=f"{self.sidecar.url}/v1/anthropic/{agent}", api_key="k", max_retries=0)
        self.closers.append(client.close)
        return client

    def gemini_client(self, agent: str) -> genai.Client:
        options = types.HttpOptions(base_url=f"{self.sidecar.url}/v1/gemini/{agent}", timeout=20_000)
        client = genai.Client(api_key="k", http_options=options)
        self.closers.append(client.aio.aclose)
        return client

    def blocked(self, agent: str, tool: str = "refund") -> float:
        return self.sidecar.metric("astra_tool_calls_blocked_total", {"agent": agent, "tool": tool})


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    anthropic_fake, gemini_fake = FakeAnthropic(), FakeGemini()
    servers = [TestServer(anthropic_fake.app()), TestServer(gemini_fake.app())]
    for server in servers:
        await server.start_server()
    urls = [str(server.make_url("")).rstrip("/") for server in servers]
    openai_fake = await FakeOpenAI().start()
    env = {"ANTHROPIC_API_KEY": "a", "GEMINI_API_KEY": "g", "OPENAI_API_KEY": "o"}
    try:
        table = compile_yaml(tmp_path, astra_yml(*urls, openai_fake.url))
        async with running_sidecar(table, env=env) as sidecar:
            world = World(sidecar, anthropic_fake, gemini_fake, openai_fake)
            try:
                yield world
            finally:
                for close in world.closers:
                    await close()
    finally:
        await openai_fake.close()
        for server in servers:
            await server.close()


def _assembled(chunks: list[Any]) -> tuple[str, dict[int, tuple[str, str]], str | None]:
    """(text, {index: (name, arguments)}, finish reason) of an OpenAI chunk stream."""
    text, calls, finish = "", dict[int, tuple[str, str]](), None
    for chunk in chunks:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or ():
                name, arguments = calls.get(call.index, ("", ""))
                calls[call.index] = (
                    name + (call.function.name or ""),
                    arguments + (call.function.arguments or ""),
                )
            finish = choice.finish_reason or finish
    return text, calls, finish


async def test_openai_sdk_plain_and_streamed(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="astra")
    client = world.openai()
    plain = await client.chat.completions.create(model="guarded", messages=USER)  # type: ignore[arg-type]
    stream = await client.chat.completions.create(model="guarded", messages=USER, stream=True)  # type: ignore[arg-type]
    text, calls, finish = _assembled([chunk async for chunk in stream])
    message = plain.choices[0].message
    assert message.content == "Let me check.\n\n" + REFUSAL
    assert [(c.function.name, c.function.arguments) for c in message.tool_calls or ()] == [
        ("lookup", '{"order":42}'),
        ("notify", "{}"),
    ]
    assert plain.choices[0].finish_reason == "tool_calls"
    assert (text, calls, finish) == (
        "Let me check.\n\n" + REFUSAL,
        {0: ("lookup", '{"order":42}'), 1: ("notify", "{}")},
        "tool_calls",
    )
    assert world.blocked("guarded") == 2
    lines = [r for r in caplog.records if r.name == "astra.toolguard"]
    assert [(r.levelname, r.getMessage(), r.agent, r.tool) for r in lines] == [  # type: ignore[attr-defined]
        ("WARNING", "tool call refund blocked by the agent's tool policy", "guarded", "refund")
    ] * 2
    assert not [r for r in caplog.records if "1000" in r.getMessage() or "amount" in r.getMessage()]


def _blocks(message: Any) -> list[dict[str, Any]]:
    """The content blocks without their ids (tool-use ids are the mock's, random)."""
    return [{k: v for k, v in block.to_dict().items() if k != "id"} for block in message.content]


async def test_anthropic_sdk_plain_and_streamed(world: World) -> None:
    client = world.anthropic_client("guarded")
    plain = await client.messages.create(model="m", max_tokens=100, messages=USER)  # type: ignore[arg-type]
    async with client.messages.stream(model="m", max_tokens=100, messages=USER) as stream:  # type: ignore[arg-type]
        final = await stream.get_final_message()
    # Plain: the refusal joins the text; streamed: text flows at once, so the refusal comes where
    # the blocked call was, between the calls that passed.
    assert _blocks(plain) == [
        {"type": "text", "text": "Let me check.\n\n" + REFUSAL},
        {"type": "tool_use", "name": "lookup", "input": {"order": 42}},
        {"type": "tool_use", "name": "notify", "input": {}},
    ]
    assert _blocks(final) == [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "name": "lookup", "input": {"order": 42}},
        {"type": "text", "text": "\n\n" + REFUSAL},
        {"type": "tool_use", "name": "notify", "input": {}},
    ]
    assert (plain.stop_reason, final.stop_reason) == ("tool_use", "tool_use")
    await client.close()
    assert world.blocked("guarded") == 2


async def test_gemini_sdk_plain_and_streamed(world: World) -> None:
    client = world.gemini_client("guarded")
    try:
        plain = await client.aio.models.generate_content(model="m", contents="Refund order 42")
        chunks = [
            c async for c in await client.aio.models.generate_content_stream(model="m", contents="Refund")
        ]
    finally:
        await client.aio.aclose()
    streamed_calls = [call for chunk in chunks for call in chunk.function_calls or ()]
    for calls in (plain.function_calls or [], streamed_calls):
        assert [(call.name, call.args) for call in calls] == [("lookup", {"order": 42}), ("notify", {})]
    assert plain.text == "Let me check.\n\n" + REFUSAL
    assert "".join(chunk.text or "" for chunk in chunks) == "Let me check.\n\n" + REFUSAL
    assert world.blocked("guarded") == 2


async def test_when_every_call_is_blocked_each_api_says_the_answer_stopped(world: World) -> None:
    answer = await world.openai().chat.completions.create(model="locked", messages=USER)  # type: ignore[arg-type]
    assert (answer.choices[0].message.content, answer.choices[0].message.tool_calls) == (REFUSAL, None)
    assert answer.choices[0].finish_reason == "stop"
    client = world.anthropic_client("locked")
    message = await client.messages.create(model="m", max_tokens=100, messages=USER)  # type: ignore[arg-type]
    await client.close()
    assert [block.to_dict() for block in message.content] == [{"type": "text", "text": REFUSAL}]
    assert message.stop_reason == "end_turn"
    gemini = world.gemini_client("locked")
    try:
        response = await gemini.aio.models.generate_content(model="m", contents="Refund")
    finally:
        await gemini.aio.aclose()
    assert (response.text, response.function_calls) == (REFUSAL, None)
    assert response.candidates and response.candidates[0].finish_reason == types.FinishReason.STOP
    assert world.blocked("locked") == 3


async def test_agents_without_a_tool_policy_get_every_call(world: World) -> None:
    client = world.openai()
    plain = await client.chat.completions.create(model="open", messages=USER)  # type: ignore[arg-type]
    stream = await client.chat.completions.create(model="open", messages=USER, stream=True)  # type: ignore[arg-type]
    text, calls, finish = _assembled([chunk async for chunk in stream])
    names = [c.function.name for c in plain.choices[0].message.tool_calls or ()]
    assert (plain.choices[0].message.content, names) == ("Let me check.", ["lookup", "refund", "notify"])
    assert (text, [name for name, _ in calls.values()], finish) == (
        "Let me check.",
        ["lookup", "refund", "notify"],
        "tool_calls",
    )
    assert calls[1] == ("refund", '{"order":42,"amount":1000}')
    assert world.blocked("open") == 0
    assert world.sidecar.state.runtime.agents["open"].policy.tool_guard is None


async def test_a_claude_agent_with_a_tool_policy_is_translated_and_guarded(world: World) -> None:
    refund = ToolUse("toolu_01", "refund", {"order": 42})
    world.anthropic.push(Reply(tool_message(refund, text="Refunding.")), Reply(tool_message(refund)))
    client = world.anthropic_client("claude-guarded")
    plain = await client.messages.create(model="m", max_tokens=100, messages=USER)  # type: ignore[arg-type]
    async with client.messages.stream(model="m", max_tokens=100, messages=USER) as stream:  # type: ignore[arg-type]
        final = await stream.get_final_message()
    await client.close()
    assert [block.to_dict() for block in plain.content] == [
        {"type": "text", "text": "Refunding.\n\n" + REFUSAL}
    ]
    assert [block.to_dict() for block in final.content] == [{"type": "text", "text": REFUSAL}]
    assert (plain.stop_reason, final.stop_reason) == ("end_turn", "end_turn")
    assert [r.path for r in world.anthropic.requests] == ["/v1/messages", "/v1/messages"]
    assert world.blocked("claude-guarded") == 2


async def test_a_gemini_agent_with_a_tool_policy_is_translated_and_guarded(world: World) -> None:
    calls = [("refund", {"order": 42}), ("lookup", {"order": 42})]
    world.gemini.enqueue(
        JsonReply(function_call_response(calls, text="On it.")),
        SseReply([function_call_response(calls)]),
    )
    client = world.gemini_client("gemini-guarded")
    try:
        plain = await client.aio.models.generate_content(model="m", contents="Refund order 42")
        chunks = [
            c async for c in await client.aio.models.generate_content_stream(model="m", contents="Refund")
        ]
    finally:
        await client.aio.aclose()
    assert [(c.name, c.args) for c in plain.function_calls or ()] == [("lookup", {"order": 42})]
    assert plain.text == "On it.\n\n" + REFUSAL
    assert [(c.name, c.args) for chunk in chunks for c in chunk.function_calls or ()] == [
        ("lookup", {"order": 42})
    ]
    assert "".join(chunk.text or "" for chunk in chunks) == REFUSAL
    assert [r.method for r in world.gemini.requests] == ["generateContent", "streamGenerateContent"]
    assert world.blocked("gemini-guarded") == 2


def _openai_chunks() -> list[dict[str, Any]]:
    """An OpenAI upstream stream: text, then three calls in fragments, usage last."""
    base = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1, "model": "gpt-test"}

    def delta(d: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": d, "finish_reason": finish}]}

    def fragment(index: int, arguments: str, name: str | None = None) -> dict[str, Any]:
        call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
        if name is not None:
            call.update(id=f"call_{index}", type="function")
            call["function"]["name"] = name
        return delta({"tool_calls": [call]})

    return [
        delta({"role": "assistant", "content": "Checking."}),
        fragment(0, "", "refund"),
        fragment(0, '{"amount":'),
        fragment(0, "1000}"),
        fragment(1, '{"order":', "lookup"),
        fragment(1, "42}"),
        delta({}, "tool_calls"),
        {**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}},
    ]


async def test_an_openai_agent_streams_upstream_calls_through_the_guard(world: World) -> None:
    world.openai_fake.script = [Step("sse", chunks=_openai_chunks())]
    stream = await world.openai().chat.completions.create(
        model="openai-guarded",
        messages=USER,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text, calls, finish = _assembled(chunks)
    assert (text, calls, finish) == ("Checking.\n\n" + REFUSAL, {0: ("lookup", '{"order":42}')}, "tool_calls")
    assert [c.id for chunk in chunks for choice in chunk.choices for c in choice.delta.tool_calls or ()] == [
        "call_1",
        None,
    ]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 9
    assert world.blocked("openai-guarded") == 1


async def test_the_metric_is_exported(world: World) -> None:
    await world.openai().chat.completions.create(model="guarded", messages=USER)  # type: ignore[arg-type]
    exposition = world.sidecar.state.shared.metrics.render().decode()
    assert 'astra_tool_calls_blocked_total{agent="guarded",tool="refund"} 1.0' in exposition
    assert json.dumps("1000") not in exposition


async def test_the_shipped_example_demonstrates_the_policy() -> None:
    table = load_routing_table(str(Path(__file__).resolve().parents[2] / "examples" / "astra.yml"))
    async with running_sidecar(table) as sidecar:
        answer = await sidecar.client().chat.completions.create(model="tool-policy", messages=USER)  # type: ignore[arg-type]
        blocked = sidecar.metric("astra_tool_calls_blocked_total", {"agent": "tool-policy", "tool": "refund"})
    message = answer.choices[0].message
    assert message.content == "Let me look into that.\n\n" + REFUSAL
    assert [(c.function.name, c.function.arguments) for c in message.tool_calls or ()] == [
        ("lookup_order", '{"order":42}')
    ]
    assert blocked == 1
