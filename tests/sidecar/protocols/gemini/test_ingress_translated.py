"""The Gemini ingress, cross format: agents on openai or mock, and fallbacks, get the request
translated to OpenAI and the answer translated back, streams included (google-genai as the
client).
"""

from __future__ import annotations

from typing import Any

import pytest
from google.genai import types

from tests.fakes.gemini_upstream import (
    JsonReply,
    google_error,
)
from tests.fakes.openai_upstream import Step, completion, text_chunks
from tests.sidecar.protocols.gemini.helpers import (
    GENAI_WARNINGS,
    MODEL,
    OPENAI_KEY,
    VERSIONS,
    WEATHER,
    World,
    ask,
    ask_stream,
    gemini_client,
    text_of,
    tool_call_chunks,
)

pytestmark = GENAI_WARNINGS


# --- cross format: translated to OpenAI and back --------------------------------------------------


async def test_openai_agent_plain_answer_and_the_translated_request(world: World) -> None:
    world.openai.script = [Step(body=completion("Hi there!", "gpt-4o-mini", usage=(11, 3)))]
    async with world.sidecar() as url:
        answer = await ask(
            url,
            "on-openai",
            [
                types.Content(role="user", parts=[types.Part.from_text(text="Hello")]),
                types.Content(role="model", parts=[types.Part.from_text(text="Hi! How can I help?")]),
                types.Content(
                    role="user",
                    parts=[
                        types.Part.from_text(text="What is this?"),
                        types.Part.from_bytes(data=b"\x89PNG", mime_type="image/png"),
                    ],
                ),
            ],
            system_instruction="Answer in English.",
            temperature=0.2,
            top_p=0.9,
            top_k=40,
            max_output_tokens=1000,
            stop_sequences=["END"],
            seed=7,
            response_mime_type="application/json",
            response_schema=types.Schema(
                type=types.Type.OBJECT,
                properties={"answer": types.Schema(type=types.Type.STRING, nullable=True)},
                required=["answer"],
            ),
        )
    assert answer.text == "Hi there!"
    assert answer.candidates[0].finish_reason == types.FinishReason.STOP
    assert (answer.model_version, answer.response_id) == ("gpt-4o-mini", "chatcmpl-fake")
    usage = answer.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (11, 3, 14)
    assert answer.sdk_http_response.headers["x-astra-provider"] == "openai"
    sent = world.openai.received[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["Authorization"] == f"Bearer {OPENAI_KEY}"
    assert sent.body == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "system", "content": "Answer in English."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi! How can I help?"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}},
                ],
            },
        ],
        "temperature": 0.2,
        "top_p": 0.9,
        "max_completion_tokens": 300,
        "seed": 7,
        "stop": ["END"],
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "response",
                "schema": {
                    "type": "object",
                    "properties": {"answer": {"type": ["string", "null"]}},
                    "required": ["answer"],
                },
            },
        },
    }


@pytest.mark.parametrize("version", VERSIONS)
async def test_openai_agent_stream_is_translated_to_gemini_events(world: World, version: str | None) -> None:
    chunks = text_chunks(["Hel", "lo", "!"], "gpt-4o-mini")
    usage_chunk = {
        **chunks[0],
        "choices": [],
        "usage": {"prompt_tokens": 6, "completion_tokens": 3, "total_tokens": 9},
    }
    world.openai.script = [Step("sse", chunks=[*chunks, usage_chunk])]
    async with world.sidecar() as url:
        received = await ask_stream(url, "on-openai", "hi", version)
    assert [c.text for c in received] == ["Hel", "lo", "!", ""]
    last = received[-1]
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert (last.usage_metadata.prompt_token_count, last.usage_metadata.total_token_count) == (6, 9)
    assert all(c.usage_metadata is None for c in received[:-1])
    assert all(c.model_version == "gpt-4o-mini" for c in received)
    sent = world.openai.received[0].body
    assert (sent["stream"], sent["stream_options"]) == (True, {"include_usage": True})


async def test_openai_agent_function_calls_plain_streamed_and_round_trip(world: World) -> None:
    plain_calls = {
        **completion("", "gpt-4o-mini"),
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        },
                        {
                            "id": "call_b",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                        },
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
    }
    world.openai.script = [
        Step(body=plain_calls),
        Step("sse", chunks=tool_call_chunks()),
        Step(body=completion("Paris 18C, Oslo 9C", "gpt-4o-mini")),
    ]
    tools: list[Any] = [types.Tool(function_declarations=[WEATHER])]
    forced = types.ToolConfig(
        function_calling_config=types.FunctionCallingConfig(
            mode=types.FunctionCallingConfigMode.ANY, allowed_function_names=["get_weather"]
        )
    )
    async with world.sidecar() as url, gemini_client(url, "on-openai") as client:
        plain: Any = await client.aio.models.generate_content(
            model=MODEL,
            contents="Weather?",
            config=types.GenerateContentConfig(tools=tools, tool_config=forced),
        )
        stream = await client.aio.models.generate_content_stream(
            model=MODEL, contents="Weather?", config=types.GenerateContentConfig(tools=tools)
        )
        streamed: list[Any] = [c async for c in stream]
        history = [
            types.Content(role="user", parts=[types.Part.from_text(text="Weather?")]),
            types.Content(
                role="model",
                parts=[
                    types.Part.from_function_call(name="get_weather", args={"city": "Paris"}),
                    types.Part.from_function_call(name="get_weather", args={"city": "Oslo"}),
                ],
            ),
            types.Content(
                role="user",
                parts=[
                    types.Part.from_function_response(name="get_weather", response={"output": "18C"}),
                    types.Part.from_function_response(name="get_weather", response={"temp": 9}),
                ],
            ),
        ]
        final: Any = await client.aio.models.generate_content(
            model=MODEL, contents=history, config=types.GenerateContentConfig(tools=tools)
        )
    expected = [("call_a", "get_weather", {"city": "Paris"}), ("call_b", "get_weather", {"city": "Oslo"})]
    assert [(c.id, c.name, c.args) for c in plain.function_calls or []] == expected
    assert plain.candidates[0].finish_reason == types.FinishReason.STOP
    assert [c.text for c in streamed[:1]] == ["Checking. "]
    streamed_calls = [(c.id, c.name, c.args) for chunk in streamed for c in chunk.function_calls or []]
    assert streamed_calls == expected
    assert [len(chunk.function_calls or []) for chunk in streamed] == [0, 2, 0]
    assert streamed[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert final.text == "Paris 18C, Oslo 9C"
    first, _, third = (r.body for r in world.openai.received)
    assert first["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    assert first["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert third["messages"][1:] == [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1_0",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_1_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1_0", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_1_1", "content": '{"temp":9}'},
    ]


async def test_mock_agent_plain_and_streamed(world: World) -> None:
    async with world.sidecar() as url:
        answer = await ask(url, "on-mock", "hi", "v1beta")
        chunks = await ask_stream(url, "on-mock", "hi")
    assert answer.text == "Hello from the mock provider"
    assert answer.sdk_http_response.headers["x-astra-provider"] == "mock"
    assert text_of(chunks) == "Hello from the mock provider"
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.candidates_token_count == 5


# --- fallback -------------------------------------------------------------------------------------


async def test_unavailable_gemini_falls_back_to_openai_plain(world: World) -> None:
    world.gemini.enqueue(JsonReply(google_error(503, "UNAVAILABLE", "The model is overloaded."), status=503))
    world.openai.script = [Step(body=completion("from the fallback", "gpt-4o-mini"))]
    async with world.sidecar() as url:
        answer = await ask(url, "rescued", "hi")
    assert answer.text == "from the fallback"
    headers = answer.sdk_http_response.headers
    assert (headers["x-astra-provider"], headers["x-astra-attempts"]) == ("openai", "2")
    assert len(world.gemini.requests) == 1
    assert world.openai.received[0].body["messages"] == [{"role": "user", "content": "hi"}]


async def test_unavailable_gemini_falls_back_to_openai_streamed(world: World) -> None:
    world.gemini.enqueue(JsonReply(google_error(503, "UNAVAILABLE", "The model is overloaded."), status=503))
    world.openai.script = [Step("sse", chunks=text_chunks(["from ", "the ", "fallback"], "gpt-4o-mini"))]
    async with world.sidecar() as url:
        chunks = await ask_stream(url, "rescued", "hi")
    assert text_of(chunks) == "from the fallback"
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert world.gemini.requests[0].method == "streamGenerateContent"
    assert world.openai.received[0].body["stream"] is True
