"""Responses callers on OpenAI's own clusters: the body passes to `POST {endpoint}/responses` with
the agent's policy applied and the answer comes back byte for byte, built-in tools included;
agents with a tool policy, and fallbacks to other providers, are translated. Failures of the
native API (a `failed` Response, `response.failed`, a cut stream) come back in the Responses
shape. Official `openai` SDK against fake upstreams on real ports."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestServer

from tests.fakes import anthropic_upstream as claude
from tests.fakes.openai_upstream import FakeOpenAI, Step, completion, error, response_events, response_text
from tests.sidecar.harness import Sidecar, compile_yaml, running_sidecar

WEATHER: Any = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}
CLOCK: Any = {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}}


@dataclass
class World:
    openai: FakeOpenAI
    anthropic: claude.FakeAnthropic
    sidecar: Sidecar

    @property
    def client(self) -> openai.AsyncOpenAI:
        return self.sidecar.client()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with AsyncExitStack() as stack:
        upstream = await FakeOpenAI().start()
        stack.push_async_callback(upstream.close)
        upstream.script = []
        anthropic = claude.FakeAnthropic()
        server = TestServer(anthropic.app())
        await server.start_server()
        stack.push_async_callback(server.close)
        gpt = f"{{provider: openai, modelId: gpt-up, endpoint: {upstream.url}/v1, maxOutputTokens: 200, temperature: 0.2}}"
        yaml = f"""
            version: 1
            settings:
              retry: {{maxRetries: 0}}
            agents:
              - id: gpt
                systemPrompt: "Be brief."
                model: {gpt}
              - id: guarded
                tools: {{deny: [get_time]}}
                model: {{provider: openai, modelId: gpt-up, endpoint: {upstream.url}/v1}}
              - id: with-fallback
                model:
                  provider: openai
                  modelId: gpt-up
                  endpoint: {upstream.url}/v1
                  fallback: {{provider: claude, modelId: claude-test, endpoint: "{server.make_url("")}"}}
            """
        table = compile_yaml(tmp_path, yaml)
        env = {"OPENAI_API_KEY": "sk-oa", "ANTHROPIC_API_KEY": "sk-ant"}
        async with running_sidecar(table, env=env) as sidecar:
            yield World(upstream, anthropic, sidecar)


async def test_the_body_passes_with_the_policy_applied_and_the_answer_comes_back_byte_for_byte(
    world: World,
) -> None:
    answer = response_text("Paris.")
    world.openai.script = [Step(body=answer)]
    raw = await world.client.responses.with_raw_response.create(
        model="gpt", instructions="Answer in English.", input="Capital of France?", max_output_tokens=5000,
        tools=[{"type": "web_search"}], include=["reasoning.encrypted_content"], store=False,
    )  # fmt: skip
    assert raw.http_response.content == json.dumps(answer).encode()
    assert raw.headers["x-astra-provider"] == "openai"
    received = world.openai.received[0]
    assert received.path == "/v1/responses"
    assert received.headers["Authorization"] == "Bearer sk-oa"
    assert received.body == {
        "model": "gpt-up", "input": "Capital of France?", "instructions": "Be brief.\n\nAnswer in English.",
        "max_output_tokens": 200, "temperature": 0.2, "tools": [{"type": "web_search"}],
        "include": ["reasoning.encrypted_content"], "store": False,
    }  # fmt: skip
    tokens = {"agent": "gpt", "provider": "openai"}
    assert world.sidecar.metric("astra_tokens_total", {**tokens, "kind": "completion"}) == 3


async def test_a_native_stream_is_relayed_as_it_came(world: World) -> None:
    events = response_events(response_text("Rome."))
    world.openai.script = [Step("events", chunks=events)]
    stream = await world.client.responses.create(model="gpt", input="Capital of Italy?", stream=True)
    received = [event.model_dump(exclude_unset=True) async for event in stream]
    assert [e["type"] for e in received] == [e["type"] for e in events]
    assert received[-1]["response"]["usage"]["output_tokens"] == 3
    assert (
        world.sidecar.metric(
            "astra_tokens_total", {"agent": "gpt", "provider": "openai", "kind": "completion"}
        )
        == 3
    )


async def test_an_agent_with_a_tool_policy_is_translated_and_reports_the_removed_tool(world: World) -> None:
    world.openai.script = [Step(body=completion("Done.", "gpt-up"))]
    raw = await world.client.responses.with_raw_response.create(
        model="guarded", input="Hi", tools=[WEATHER, CLOCK]
    )
    assert raw.parse().output_text == "Done."
    assert raw.headers["x-astra-tools-removed"] == "get_time"
    received = world.openai.received[0]
    assert received.path == "/v1/chat/completions"
    assert [tool["function"]["name"] for tool in received.body["tools"]] == ["get_weather"]


async def test_a_fallback_to_claude_is_translated(world: World) -> None:
    world.openai.script = [error(503)]
    world.anthropic.push(claude.Reply(claude.text_message("From Claude.")))
    raw = await world.client.responses.with_raw_response.create(
        model="with-fallback", input="Hi", tools=[WEATHER]
    )
    assert raw.parse().output_text == "From Claude."
    assert raw.headers["x-astra-provider"] == "claude"
    assert raw.headers["x-astra-attempts"] == "2"
    assert [tool["name"] for tool in world.anthropic.requests[0].body["tools"]] == ["get_weather"]


async def test_a_built_in_tool_cannot_fall_back_to_a_translated_provider(world: World) -> None:
    world.openai.script = [error(503)]
    with pytest.raises(openai.BadRequestError) as caught:
        await world.client.responses.create(
            model="with-fallback", input="Hi", tools=[{"type": "file_search", "vector_store_ids": ["vs_1"]}]
        )
    assert caught.value.param == "tools[0].type"
    assert caught.value.code == "unsupported_tool"
    assert "'file_search'" in caught.value.message
    assert len(world.openai.received) == 1
    assert world.anthropic.requests == []


async def test_a_failed_response_is_an_upstream_error(world: World) -> None:
    failed = {
        **response_text(""),
        "status": "failed",
        "output": [],
        "error": {"code": "server_error", "message": "boom"},
    }
    world.openai.script = [Step(body=failed)]
    with pytest.raises(openai.InternalServerError) as caught:
        await world.client.responses.create(model="gpt", input="Hi")
    assert caught.value.status_code == 502
    assert caught.value.code == "server_error"


async def test_response_failed_mid_stream_reaches_the_client_once(world: World) -> None:
    events = response_events(response_text("Rome."))
    failed = {"type": "response.failed", "sequence_number": 2,
              "response": {**events[0]["response"], "status": "failed", "error": {"code": "server_error", "message": "boom"}}}  # fmt: skip
    # Paced, so the sidecar relays the first events before the failure arrives.
    world.openai.script = [Step("events", chunks=[*events[:2], failed], chunk_delay_s=0.2)]
    stream = await world.client.responses.create(model="gpt", input="Hi", stream=True)
    received = [event.type async for event in stream]
    assert received == ["response.created", "response.in_progress", "response.failed"]


async def test_a_cut_native_stream_ends_with_response_failed(world: World) -> None:
    world.openai.script = [Step("events", chunks=response_events(response_text("Rome.")), cut_after=4)]
    stream = await world.client.responses.create(model="gpt", input="Hi", stream=True)
    received = [event async for event in stream]
    assert [e.type for e in received[:4]] == [e["type"] for e in response_events(response_text("Rome."))[:4]]
    assert received[-1].type == "response.failed"
    assert [e.sequence_number for e in received] == [0, 1, 2, 3, 4]
    assert received[-1].response.id == "resp_up1"
    assert len(received) == 5
