"""`previous_response_id`, `GET` and `DELETE /v1/responses/{id}` through the official `openai` SDK:
the sidecar's response store on a translated agent (vLLM, Chat Completions) and a native one
(OpenAI's Responses API), plain and streamed; `store: false`, the TTL on the sidecar's clock, the
store turned off, and a store shared by two sidecars through Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from astra_sidecar.sidecar.clock import ManualClock
from tests.fakes.openai_upstream import (
    FakeOpenAI,
    Step,
    completion,
    response_events,
    response_text,
    text_chunks,
)
from tests.fleet.redis_server import RedisServer
from tests.sidecar.harness import Sidecar, compile_yaml, running_sidecar

ENV = {"VLLM_API_KEY": "sk-v", "OPENAI_API_KEY": "sk-oa"}


@dataclass
class World:
    upstream: FakeOpenAI
    sidecar: Sidecar
    clock: ManualClock

    @property
    def client(self) -> openai.AsyncOpenAI:
        return self.sidecar.client()

    def sent(self, index: int = -1) -> Any:
        return self.upstream.received[index].body


def _yaml(url: str, settings: str = "") -> str:
    return f"""
        version: 1
        {settings}
        agents:
          - id: chat-agent
            model: {{provider: vllm, modelId: gpt-up, endpoint: {url}/v1}}
          - id: gpt-agent
            model: {{provider: openai, modelId: gpt-up, endpoint: {url}/v1}}
        """


@asynccontextmanager
async def _world(
    tmp_path: Path, settings: str = "", env: dict[str, str] | None = None
) -> AsyncIterator[World]:
    upstream = await FakeOpenAI().start()
    upstream.script = []
    clock = ManualClock()
    try:
        table = compile_yaml(tmp_path, _yaml(upstream.url, settings))
        async with running_sidecar(table, env={**ENV, **(env or {})}, clock=clock) as sidecar:
            yield World(upstream, sidecar, clock)
    finally:
        await upstream.close()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with _world(tmp_path, "settings: {responses: {store: {ttlMs: 60000}}}") as world:
        yield world


def _texts(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in messages]


async def test_a_translated_answer_is_continued_read_and_deleted(world: World) -> None:
    world.upstream.script = [
        Step(body=completion("Paris.", "gpt-up")),
        Step(body=completion("Rome.", "gpt-up")),
    ]
    first = await world.client.responses.create(
        model="chat-agent", instructions="Be brief.", input="Capital of France?"
    )
    assert first.store is True
    second = await world.client.responses.create(
        model="chat-agent", previous_response_id=first.id, input="And Italy?"
    )
    assert second.output_text == "Rome."
    # The stored conversation comes first; the first request's instructions do not carry over.
    assert _texts(world.sent()["messages"]) == [
        ("user", "Capital of France?"), ("assistant", "Paris."), ("user", "And Italy?"),
    ]  # fmt: skip
    read = await world.client.responses.retrieve(first.id)
    assert (read.id, read.output_text) == (first.id, "Paris.")
    deleted = await world.client.responses.delete(first.id)
    assert deleted is None  # the SDK returns nothing for a 200
    with pytest.raises(openai.NotFoundError) as caught:
        await world.client.responses.retrieve(first.id)
    assert caught.value.code == "response_not_found"
    with pytest.raises(openai.BadRequestError) as refused:
        await world.client.responses.create(model="chat-agent", previous_response_id=first.id, input="Spain?")
    assert (refused.value.param, refused.value.code) == (
        "previous_response_id",
        "previous_response_not_found",
    )
    assert len(world.upstream.received) == 2


async def test_store_false_is_not_kept(world: World) -> None:
    world.upstream.script = [Step(body=completion("Paris.", "gpt-up"))]
    first = await world.client.responses.create(model="chat-agent", input="Capital of France?", store=False)
    assert first.store is False
    with pytest.raises(openai.BadRequestError) as caught:
        await world.client.responses.create(
            model="chat-agent", previous_response_id=first.id, input="And Italy?"
        )
    assert caught.value.code == "previous_response_not_found"
    assert "store: false" in caught.value.message
    assert len(world.upstream.received) == 1


async def test_a_stored_response_expires_after_its_ttl(world: World) -> None:
    world.upstream.script = [
        Step(body=completion("Paris.", "gpt-up")),
        Step(body=completion("Rome.", "gpt-up")),
    ]
    first = await world.client.responses.create(model="chat-agent", input="Capital of France?")
    world.clock.advance(59.9)
    await world.client.responses.create(model="chat-agent", previous_response_id=first.id, input="And Italy?")
    world.clock.advance(0.1)  # 60 s after the first answer was stored
    with pytest.raises(openai.BadRequestError) as caught:
        await world.client.responses.create(model="chat-agent", previous_response_id=first.id, input="Spain?")
    assert caught.value.code == "previous_response_not_found"
    assert len(world.upstream.received) == 2


async def test_a_streamed_translated_answer_is_kept_with_its_tool_call(world: World) -> None:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-up"}
    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
    }
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [call]}, "finish_reason": None}]},
              {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}]  # fmt: skip
    world.upstream.script = [Step("sse", chunks=chunks), Step(body=completion("Sunny.", "gpt-up"))]
    tool = {
        "type": "function",
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    stream = await world.client.responses.create(
        model="chat-agent", input="Weather in Oslo?", tools=[tool], stream=True
    )
    events = [event async for event in stream]
    done = events[-1]
    assert done.type == "response.completed"
    output = [{"type": "function_call_output", "call_id": "call_1", "output": "sunny"}]
    second = await world.client.responses.create(
        model="chat-agent",
        previous_response_id=done.response.id,
        input=output,
        tools=[tool],  # type: ignore[arg-type]
    )
    assert second.output_text == "Sunny."
    messages = world.sent()["messages"]
    assert messages[0] == {"role": "user", "content": "Weather in Oslo?"}
    assert messages[1]["tool_calls"][0]["id"] == "call_1"
    assert messages[2] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}


async def test_a_native_answer_is_kept_under_openai_s_id_and_continued_natively(world: World) -> None:
    first_answer = response_text("Paris.", rid="resp_native_1")
    world.upstream.script = [
        Step("events", chunks=response_events(first_answer)),
        Step(body=response_text("Rome.", rid="resp_native_2")),
    ]
    stream = await world.client.responses.create(model="gpt-agent", input="Capital of France?", stream=True)
    events = [event async for event in stream]
    assert events[-1].type == "response.completed"
    assert events[-1].response.id == "resp_native_1"
    second = await world.client.responses.create(
        model="gpt-agent", previous_response_id="resp_native_1", input="And Italy?"
    )
    assert second.output_text == "Rome."
    sent = world.sent()
    assert world.upstream.received[-1].path == "/v1/responses"
    assert "previous_response_id" not in sent  # the sidecar's own, never OpenAI's
    assert sent["input"] == [
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Capital of France?"}],
        },
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Paris.", "annotations": []}],
        },
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "And Italy?"}]},
    ]
    assert (await world.client.responses.retrieve("resp_native_2")).output_text == "Rome."


async def test_with_the_store_turned_off_previous_response_id_says_how_to_turn_it_on(tmp_path: Path) -> None:
    async with _world(tmp_path, "settings: {responses: {store: {maxEntries: 0}}}") as world:
        world.upstream.script = [Step(body=completion("Paris.", "gpt-up"))]
        first = await world.client.responses.create(model="chat-agent", input="Capital of France?")
        assert first.store is False
        with pytest.raises(openai.BadRequestError) as caught:
            await world.client.responses.create(
                model="chat-agent", previous_response_id=first.id, input="Italy?"
            )
        assert caught.value.code == "unsupported_parameter"
        assert "settings.responses.store.maxEntries" in caught.value.message
        with pytest.raises(openai.NotFoundError):
            await world.client.responses.retrieve(first.id)



async def test_two_sidecars_share_responses_through_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    settings = "settings: {state: {redis: {urlEnv: REDIS_URL}}}"
    env = {"REDIS_URL": redis_server.url}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with _world(tmp_path / "a", settings, env) as one, _world(tmp_path / "b", settings, env) as two:
        one.upstream.script = [Step("sse", chunks=text_chunks(["Par", "is."], "gpt-up"))]
        two.upstream.script = [Step(body=completion("Rome.", "gpt-up"))]
        stream = await one.client.responses.create(
            model="chat-agent", input="Capital of France?", stream=True
        )
        first = [event async for event in stream][-1].response
        second = await two.client.responses.create(
            model="chat-agent", previous_response_id=first.id, input="And Italy?"
        )
        assert second.output_text == "Rome."
        assert _texts(two.sent()["messages"]) == [
            ("user", "Capital of France?"),
            ("assistant", "Paris."),
            ("user", "And Italy?"),
        ]
        assert (await two.client.responses.retrieve(first.id)).output_text == "Paris."
