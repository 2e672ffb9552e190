"""`POST /v1/responses` through the official `openai` SDK, translated to an OpenAI-compatible
fake upstream (Chat Completions): plain, streamed, a tool round trip with
`function_call_output`, structured output, refusals in the Responses error shape."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.fakes.openai_upstream import FakeOpenAI, Step, completion, error, text_chunks
from tests.sidecar.harness import Sidecar, compile_yaml, running_sidecar

WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": True,
}


def _tool_completion(call_id: str, arguments: str) -> dict[str, Any]:
    body = completion("")
    body["choices"][0]["message"] = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
        ],
    }
    body["choices"][0]["finish_reason"] = "tool_calls"
    return body


def _tool_chunks(call_id: str, pieces: list[str]) -> list[dict[str, Any]]:
    base = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-test",
    }
    first = {
        "index": 0,
        "id": call_id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    out = [
        {
            **base,
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "tool_calls": [first]}, "finish_reason": None}
            ],
        }
    ]
    for piece in pieces:
        call = {"index": 0, "function": {"arguments": piece}}
        out.append(
            {**base, "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]}
        )
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    out.append({**base, "choices": [], "usage": usage})
    return out


@dataclass
class World:
    upstream: FakeOpenAI
    sidecar: Sidecar

    @property
    def client(self) -> openai.AsyncOpenAI:
        return self.sidecar.client()

    def sent(self, index: int = -1) -> Any:
        return self.upstream.received[index].body


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    upstream = await FakeOpenAI().start()
    table = compile_yaml(
        tmp_path,
        f"""
        version: 1
        settings:
          retry: {{maxRetries: 1, baseDelayMs: 1, maxDelayMs: 1, jitter: 0}}
        agents:
          - id: coder
            systemPrompt: "Be brief."
            model: {{provider: vllm, modelId: gpt-up, endpoint: {upstream.url}, maxOutputTokens: 256}}
        """,
    )
    try:
        async with running_sidecar(table, env={"VLLM_API_KEY": "sk-up"}) as sidecar:
            yield World(upstream, sidecar)
    finally:
        await upstream.close()


async def test_plain_answer_and_the_chat_request_it_became(world: World) -> None:
    usage = {"prompt_tokens": 30, "completion_tokens": 4, "total_tokens": 34,
             "prompt_tokens_details": {"cached_tokens": 20}, "completion_tokens_details": {"reasoning_tokens": 2}}  # fmt: skip
    body = completion("Hi there.", "gpt-up")
    body["usage"] = usage
    world.upstream.script = [Step(body=body)]
    raw = await world.client.responses.with_raw_response.create(
        model="coder", instructions="Answer in English.", input="Hello", max_output_tokens=100,
        temperature=0.3, reasoning={"effort": "low"}, store=False,
    )  # fmt: skip
    answer = raw.parse()
    assert answer.output_text == "Hi there."
    assert answer.status == "completed"
    assert answer.usage is not None
    assert (answer.usage.input_tokens, answer.usage.output_tokens, answer.usage.total_tokens) == (30, 4, 34)
    assert answer.usage.input_tokens_details.cached_tokens == 20
    assert answer.usage.output_tokens_details.reasoning_tokens == 2
    assert answer.instructions == "Answer in English."
    assert raw.headers["x-astra-provider"] == "vllm"
    assert raw.headers["x-astra-attempts"] == "1"
    sent = world.sent()
    assert sent["model"] == "gpt-up"
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "Answer in English."},
        {"role": "user", "content": "Hello"},
    ]
    assert sent["max_completion_tokens"] == 100
    assert sent["temperature"] == 0.3
    assert sent["reasoning_effort"] == "low"


async def test_length_stop_is_an_incomplete_response(world: World) -> None:
    body = completion("Cut", "gpt-up")
    body["choices"][0]["finish_reason"] = "length"
    world.upstream.script = [Step(body=body)]
    answer = await world.client.responses.create(model="coder", input="Write a saga")
    assert answer.status == "incomplete"
    assert answer.incomplete_details is not None
    assert answer.incomplete_details.reason == "max_output_tokens"


async def test_streamed_text_events_in_order_with_sequence_numbers(world: World) -> None:
    chunks = text_chunks(["Hel", "lo", "!"], "gpt-up")
    chunks.append(
        {
            **chunks[-1],
            "choices": [],
            "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
        }
    )
    world.upstream.script = [Step("sse", chunks=chunks)]
    stream = await world.client.responses.create(model="coder", input="Hi", stream=True)
    events = [event async for event in stream]
    kinds = [event.type for event in events]
    assert kinds == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
        "response.output_text.delta", "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed",
    ]  # fmt: skip
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Hello!"
    done = events[-1]
    assert done.type == "response.completed"
    assert done.response.output_text == "Hello!"
    assert done.response.usage is not None and done.response.usage.total_tokens == 12
    assert world.sent()["stream_options"] == {"include_usage": True}


async def test_tool_round_trip_with_function_call_output(world: World) -> None:
    world.upstream.script = [
        Step(body=_tool_completion("call_1", '{"city":"Paris"}')),
        Step(body=completion("Sunny in Paris.", "gpt-up")),
    ]
    first = await world.client.responses.create(model="coder", input="Weather in Paris?", tools=[WEATHER])
    [call] = first.output
    assert call.type == "function_call"
    assert (call.call_id, call.name, json.loads(call.arguments)) == (
        "call_1",
        "get_weather",
        {"city": "Paris"},
    )
    assert world.sent(0)["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                          "parameters": WEATHER["parameters"], "strict": True}}
    ]  # fmt: skip
    second = await world.client.responses.create(
        model="coder",
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21C"},
        ],
    )
    assert second.output_text == "Sunny in Paris."
    messages = world.sent(1)["messages"]
    assert messages[-3:] == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"},
    ]  # fmt: skip


async def test_streamed_tool_call_events(world: World) -> None:
    world.upstream.script = [Step("sse", chunks=_tool_chunks("call_9", ['{"ci', 'ty":"Rome"}']))]
    stream = await world.client.responses.create(model="coder", input="Rome?", tools=[WEATHER], stream=True)
    events = [event async for event in stream]
    kinds = [event.type for event in events]
    assert kinds == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.function_call_arguments.delta", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done", "response.completed",
    ]  # fmt: skip
    done = events[-1]
    assert done.type == "response.completed"
    [item] = done.response.output
    assert item.type == "function_call"
    assert (item.call_id, item.arguments) == ("call_9", '{"city":"Rome"}')
    assert done.response.usage is not None and done.response.usage.input_tokens == 11


async def test_structured_output_becomes_response_format(world: World) -> None:
    world.upstream.script = [Step(body=completion('{"city": "Paris"}', "gpt-up"))]
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}  # fmt: skip
    answer = await world.client.responses.create(
        model="coder", input="Which city?",
        text={"format": {"type": "json_schema", "name": "place", "schema": schema, "strict": True}},
    )  # fmt: skip
    assert json.loads(answer.output_text) == {"city": "Paris"}
    assert world.sent()["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "place", "schema": schema, "strict": True}
    }  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "param", "code"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id", "previous_response_not_found"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type", "unsupported_tool"),
        ({"background": True}, "background", "unsupported_parameter"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type", "invalid_value"),
    ],
)
async def test_what_cannot_be_served_is_a_400_in_openai_shape(
    world: World, extra: dict[str, Any], param: str, code: str
) -> None:
    body: dict[str, Any] = {"input": "Hi", **extra}
    with pytest.raises(openai.BadRequestError) as caught:
        await world.client.responses.create(model="coder", **body)
    assert caught.value.status_code == 400
    assert caught.value.param == param
    assert caught.value.code == code
    assert world.upstream.received == []


async def test_unknown_agent_is_a_404_naming_the_model(world: World) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await world.client.responses.create(model="nobody", input="Hi")
    assert caught.value.code == "model_not_found"


async def test_retry_then_success_counts_attempts(world: World) -> None:
    world.upstream.script = [error(503), Step(body=completion("Second time.", "gpt-up"))]
    raw = await world.client.responses.with_raw_response.create(model="coder", input="Hi")
    assert raw.parse().output_text == "Second time."
    assert raw.headers["x-astra-attempts"] == "2"
    assert len(world.upstream.received) == 2


async def test_failure_mid_stream_is_a_final_response_failed(world: World) -> None:
    chunks = text_chunks(["a", "b", "c", "d"], "gpt-up")
    world.upstream.script = [Step("sse", chunks=chunks, cut_after=3)]
    stream = await world.client.responses.create(model="coder", input="Hi", stream=True)
    events = [event async for event in stream]
    assert events[-1].type == "response.failed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert events[-1].response.error is not None
