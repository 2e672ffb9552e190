"""`POST /v1/responses` end to end on every wire format: the official `openai` SDK and the OpenAI
Agents SDK (its default `OpenAIResponsesModel`) → the sidecar → fake Anthropic, Gemini, Bedrock
and OpenAI-compatible (vLLM) upstreams, all translated, and OpenAI's own Responses API (native),
on real ports. Plain, streamed, and a tool round trip (`function_call` → `function_call_output`)
per provider."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import agents
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.fakes import anthropic_upstream as claude
from tests.fakes import bedrock_upstream as bedrock
from tests.fakes import gemini_upstream as gemini
from tests.fakes.openai_upstream import (
    FakeOpenAI,
    Step,
    completion,
    response_call,
    response_events,
    response_text,
)
from tests.sidecar.harness import Sidecar, compile_yaml, running_sidecar

ENV = {
    "ANTHROPIC_API_KEY": "sk-ant",
    "GEMINI_API_KEY": "g-key",
    "OPENAI_API_KEY": "sk-oa",
    "AWS_ACCESS_KEY_ID": bedrock.TEST_ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": bedrock.TEST_SECRET_KEY,
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@dataclass
class Backend:
    """One fake upstream and how to script it: a text answer (plain or streamed), a tool call."""

    provider: str
    yaml: str
    text: Callable[[str, bool], None]
    tool_call: Callable[[str, str, dict[str, Any]], None]
    requests: Callable[[], list[Any]]


async def _server(app: web.Application, stack: AsyncExitStack) -> str:
    server = TestServer(app)
    await server.start_server()
    stack.push_async_callback(server.close)
    return str(server.make_url("")).rstrip("/")


async def _claude(stack: AsyncExitStack) -> Backend:
    fake = claude.FakeAnthropic()
    url = await _server(fake.app(), stack)

    def text(value: str, stream: bool) -> None:
        fake.push(claude.Reply(claude.text_message(value, usage_=claude.usage(12, 3))))

    def tool_call(call_id: str, name: str, arguments: dict[str, Any]) -> None:
        fake.push(claude.Reply(claude.tool_message(claude.ToolUse(call_id, name, arguments))))

    yaml = f"{{provider: claude, modelId: claude-test, endpoint: {url}, maxOutputTokens: 256}}"
    return Backend("claude", yaml, text, tool_call, lambda: [r.body for r in fake.requests])


async def _gemini(stack: AsyncExitStack) -> Backend:
    fake = gemini.FakeGemini()
    url = await _server(fake.app(), stack)
    usage = gemini.usage_metadata(12, 3)

    def text(value: str, stream: bool) -> None:
        reply = gemini.text_response(value, usage=usage)
        fake.enqueue(
            gemini.SseReply(gemini.text_stream([value], usage=usage)) if stream else gemini.JsonReply(reply)
        )

    def tool_call(call_id: str, name: str, arguments: dict[str, Any]) -> None:
        fake.enqueue(
            gemini.JsonReply(gemini.function_call_response([(name, arguments)], ids=[call_id], usage=usage))
        )

    yaml = f'{{provider: gemini, modelId: gemini-2.5-flash, endpoint: "{url}"}}'
    return Backend("gemini", yaml, text, tool_call, lambda: [r.body for r in fake.requests])


async def _bedrock(stack: AsyncExitStack) -> Backend:
    fake = bedrock.BedrockUpstream()
    url = await _server(fake.app, stack)
    usage = bedrock.usage(12, 3)

    def text(value: str, stream: bool) -> None:
        body = bedrock.text_response(value, token_usage=usage)
        fake.script(bedrock.Stream(bedrock.stream_frames(body)) if stream else bedrock.Answer(body))

    def tool_call(call_id: str, name: str, arguments: dict[str, Any]) -> None:
        body = bedrock.converse_response([bedrock.tool_use(call_id, name, arguments)], "tool_use", usage)
        fake.script(bedrock.Answer(body))

    model = "anthropic.claude-3-haiku-20240307-v1:0"
    yaml = (
        f"{{provider: bedrock, modelId: {model}, endpoint: {url}, region: us-east-1, maxOutputTokens: 256}}"
    )
    return Backend("bedrock", yaml, text, tool_call, lambda: [r.body for r in fake.requests])


async def _compat(stack: AsyncExitStack) -> Backend:
    """An OpenAI-compatible provider (vLLM): Chat Completions only, so translated."""
    fake = await FakeOpenAI().start()
    stack.push_async_callback(fake.close)
    fake.script = []

    def text(value: str, stream: bool) -> None:
        if stream:
            base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-up"}
            chunks = [
                {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": value}, "finish_reason": None}]},
                {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                {**base, "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}},
            ]  # fmt: skip
            fake.script.append(Step("sse", chunks=chunks))
        else:
            fake.script.append(Step(body=completion(value, "gpt-up", usage=(12, 3))))

    def tool_call(call_id: str, name: str, arguments: dict[str, Any]) -> None:
        body = completion("", "gpt-up", usage=(12, 3))
        body["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}]}  # fmt: skip
        body["choices"][0]["finish_reason"] = "tool_calls"
        fake.script.append(Step(body=body))

    yaml = f"{{provider: vllm, modelId: gpt-up, endpoint: {fake.url}/v1}}"
    return Backend("vllm", yaml, text, tool_call, lambda: [r.body for r in fake.received])


async def _openai(stack: AsyncExitStack) -> Backend:
    """OpenAI itself: the Responses API natively (`POST {endpoint}/responses`)."""
    fake = await FakeOpenAI().start()
    stack.push_async_callback(fake.close)
    fake.script = []

    def text(value: str, stream: bool) -> None:
        answer = response_text(value)
        fake.script.append(Step("events", chunks=response_events(answer)) if stream else Step(body=answer))

    def tool_call(call_id: str, name: str, arguments: dict[str, Any]) -> None:
        fake.script.append(Step(body=response_call(call_id, name, json.dumps(arguments))))

    def requests() -> list[Any]:
        assert all(r.path == "/v1/responses" for r in fake.received)
        return [r.body for r in fake.received]

    yaml = f"{{provider: openai, modelId: gpt-up, endpoint: {fake.url}/v1}}"
    return Backend("openai", yaml, text, tool_call, requests)


BACKENDS = {"claude": _claude, "gemini": _gemini, "bedrock": _bedrock, "openai": _openai, "vllm": _compat}


@dataclass
class World:
    backend: Backend
    sidecar: Sidecar

    @property
    def client(self) -> openai.AsyncOpenAI:
        return self.sidecar.client()


@pytest.fixture(params=sorted(BACKENDS))
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    async with AsyncExitStack() as stack:
        backend = await BACKENDS[request.param](stack)
        yaml = f"""
            version: 1
            agents:
              - id: coder
                model: {backend.yaml}
            """
        table = compile_yaml(tmp_path, yaml)
        async with running_sidecar(table, env=ENV) as sidecar:
            yield World(backend, sidecar)


async def test_plain_answer(world: World) -> None:
    world.backend.text("Paris.", False)
    raw = await world.client.responses.with_raw_response.create(model="coder", input="Capital of France?")
    answer = raw.parse()
    assert answer.output_text == "Paris."
    assert answer.status == "completed"
    assert answer.usage is not None and answer.usage.output_tokens == 3
    assert raw.headers["x-astra-provider"] == world.backend.provider


async def test_streamed_answer(world: World) -> None:
    world.backend.text("Rome.", True)
    stream = await world.client.responses.create(model="coder", input="Capital of Italy?", stream=True)
    events = [event async for event in stream]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert events[0].type == "response.created"
    done = events[-1]
    assert done.type == "response.completed"
    assert done.response.output_text == "Rome."
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Rome."


async def test_agents_sdk_tool_round_trip(world: World) -> None:
    agents.set_tracing_disabled(True)
    calls: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """Weather for a city."""
        calls.append(city)
        return f"sunny in {city}"

    world.backend.tool_call("call_7", "get_weather", {"city": "Oslo"})
    world.backend.text("It is sunny in Oslo.", False)
    model = agents.OpenAIResponsesModel(model="coder", openai_client=world.client)
    agent = agents.Agent(name="weather", instructions="Use the tool.", model=model, tools=[get_weather])
    result = await agents.Runner.run(agent, "Weather in Oslo?")
    assert result.final_output == "It is sunny in Oslo."
    assert calls == ["Oslo"]
    first, second = world.backend.requests()
    assert "sunny in Oslo" not in str(first)
    assert "sunny in Oslo" in str(second)  # the function_call_output went upstream as a tool result
