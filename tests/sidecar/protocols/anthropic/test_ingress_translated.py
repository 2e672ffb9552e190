"""The Anthropic Messages ingress on agents of other providers, translated both ways, and a
claude agent's fallback to OpenAI within one request (the `world` of `conftest.py`).
"""

from __future__ import annotations

from typing import Any

from anthropic.types import MessageParam

from tests.fakes.anthropic_upstream import (
    ErrorReply,
)
from tests.fakes.openai_upstream import Step, completion, text_chunks
from tests.sidecar.protocols.anthropic.helpers import (
    DELETE,
    USER,
    WEATHER,
    World,
    openai_usage,
    sse,
    usage_chunk,
)


def tool_call_chunks() -> list[dict[str, Any]]:
    base = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-test",
    }

    def delta(d: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": d, "finish_reason": finish}]}

    def call(index: int, arguments: str, id: str | None = None, name: str | None = None) -> dict[str, Any]:
        fragment: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
        if id:
            fragment.update(id=id, type="function")
            fragment["function"]["name"] = name
        return delta({"tool_calls": [fragment]})

    return [
        delta({"role": "assistant", "content": ""}),
        delta({"content": "Checking."}),
        call(0, "", id="call_1", name="get_weather"),
        call(0, '{"city":'),
        call(0, '"Paris"}'),
        call(1, '{"city":"Rome"}', id="call_2", name="get_weather"),
        delta({}, "tool_calls"),
        usage_chunk(30, 12),
    ]


# --- cross format: the Anthropic SDK → an agent on another provider, translated both ways --------


async def test_openai_agent_plain_answer(world: World) -> None:
    body = completion("Hello!", "gpt-test")
    body["usage"] = openai_usage(40, 7, cached=30)
    world.openai.script = [Step(body=body)]
    raw = await world.client("gpt-agent").messages.with_raw_response.create(
        model="claude-sonnet",
        max_tokens=100,
        system=[{"type": "text", "text": "Client system."}],
        messages=[*USER, {"role": "assistant", "content": "Let me"}, {"role": "user", "content": "go on"}],
        stop_sequences=["END"],
        metadata={"user_id": "u-1"},
        extra_body={"temperature": 0.2},
    )
    answer = await raw.parse()
    assert answer.id.startswith("msg_") and len(answer.id) == 28
    assert answer.model_dump(exclude_none=True, exclude={"id"}) == {
        "type": "message",
        "role": "assistant",
        "model": "gpt-test",
        "content": [{"type": "text", "text": "Hello!"}],
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": 10,
            "output_tokens": 7,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 30,
        },
    }
    assert raw.headers["x-astra-provider"] == "openai"
    [sent] = world.openai.received
    assert sent.body == {
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": "You are brief."},
            {"role": "system", "content": [{"type": "text", "text": "Client system."}]},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "Let me"},
            {"role": "user", "content": "go on"},
        ],
        "max_tokens": 100,
        "temperature": 0.2,
        "stop": ["END"],
        "user": "u-1",
    }
    assert sent.headers["Authorization"] == "Bearer sk-openai-env"


async def test_openai_agent_stream_in_anthropic_events(world: World) -> None:
    world.openai.script = [sse([*text_chunks(["It is ", "sunny."]), usage_chunk(25, 4, cached=5)])]
    stream = await world.client("gpt-agent").messages.create(
        model="m", max_tokens=50, messages=USER, stream=True
    )
    events: list[dict[str, Any]] = [event.to_dict() async for event in stream]
    start = events[0]
    assert start["type"] == "message_start" and start["message"]["id"].startswith("msg_")
    assert events[1:] == [
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "It is "}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "sunny."}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {
                "input_tokens": 20,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 5,
                "output_tokens": 4,
            },
        },
        {"type": "message_stop"},
    ]
    assert start["message"] | {"id": "x"} == {
        "id": "x",
        "type": "message",
        "role": "assistant",
        "model": "gpt-test",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 0,
        },
    }
    sent = world.openai.received[0].body
    assert (sent["stream"], sent["stream_options"]) == (True, {"include_usage": True})


async def test_openai_agent_stream_with_the_sdk_stream_helper(world: World) -> None:
    world.openai.script = [sse([*text_chunks(["Hel", "lo ", "there"]), usage_chunk(12, 3)])]
    async with world.client("gpt-agent").messages.stream(model="m", max_tokens=50, messages=USER) as stream:
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert texts == ["Hel", "lo ", "there"]
    assert final.to_dict()["content"] == [{"type": "text", "text": "Hello there"}]
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (12, 3)


async def test_openai_agent_tool_calls_plain(world: World) -> None:
    body = completion("", "gpt-test")
    body["choices"][0]["message"] = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            },
            {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
        ],
    }
    body["choices"][0]["finish_reason"] = "tool_calls"
    world.openai.script = [Step(body=body)]
    answer = await world.client("gpt-agent").messages.create(
        model="m",
        max_tokens=50,
        messages=USER,
        tools=[WEATHER],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
    )
    assert answer.stop_reason == "tool_use"
    assert [block.to_dict() for block in answer.content] == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {}},
    ]
    sent = world.openai.received[0].body
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": WEATHER["input_schema"],
            },
        }
    ]
    assert (sent["tool_choice"], sent["parallel_tool_calls"]) == ("required", False)


async def test_openai_agent_tool_calls_streamed(world: World) -> None:
    world.openai.script = [sse(tool_call_chunks())]
    client = world.client("gpt-agent")
    stream = await client.messages.create(
        model="m", max_tokens=50, messages=USER, tools=[WEATHER], stream=True
    )
    events: list[dict[str, Any]] = [event.to_dict() async for event in stream]
    assert [(e["type"], e.get("index")) for e in events] == [
        ("message_start", None),
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("content_block_start", 2),
        ("content_block_delta", 2),
        ("content_block_stop", 2),
        ("message_delta", None),
        ("message_stop", None),
    ]
    assert events[4]["content_block"] == {
        "type": "tool_use",
        "id": "call_1",
        "name": "get_weather",
        "input": {},
    }
    assert [e["delta"] for e in events[5:7]] == [
        {"type": "input_json_delta", "partial_json": '{"city":'},
        {"type": "input_json_delta", "partial_json": '"Paris"}'},
    ]
    assert events[-2]["delta"]["stop_reason"] == "tool_use"

    world.openai.script = [sse(tool_call_chunks())]
    async with client.messages.stream(model="m", max_tokens=50, messages=USER, tools=[WEATHER]) as helper:
        final = await helper.get_final_message()
    assert final.to_dict()["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}},
    ]
    assert (final.stop_reason, final.usage.input_tokens, final.usage.output_tokens) == ("tool_use", 30, 12)


async def test_openai_agent_tool_results_become_tool_messages_in_order(world: World) -> None:
    history: list[MessageParam] = [
        *USER,
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "call_2",
                    "content": [
                        {"type": "text", "text": "24C"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
                        },
                    ],
                    "is_error": False,
                },
                {"type": "text", "text": "Summarise."},
            ],
        },
    ]
    await world.client("gpt-agent").messages.create(
        model="m", max_tokens=50, messages=history, tools=[WEATHER]
    )
    assert world.openai.received[0].body["messages"][1:] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "24C"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                {"type": "text", "text": "Summarise."},
            ],
        },
    ]


async def test_mock_agent_plain_streamed_and_with_tools(world: World) -> None:
    client = world.client("demo")
    plain = await client.messages.create(model="m", max_tokens=50, messages=USER, tools=[WEATHER])
    assert plain.to_dict()["content"] == [{"type": "text", "text": "Hello from the demo agent."}]
    assert plain.stop_reason == "end_turn" and plain.model == "astra-demo"
    async with client.messages.stream(model="m", max_tokens=50, messages=USER) as stream:
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(texts) == "Hello from the demo agent."
    assert final.to_dict()["content"] == plain.to_dict()["content"]
    assert final.usage.output_tokens == 5


# --- a same-format agent whose primary fails: fallback to OpenAI within one request --------------


async def test_fallback_from_claude_to_openai_plain(world: World) -> None:
    world.anthropic.push(*(ErrorReply(529, "overloaded_error", "Overloaded") for _ in range(2)))
    world.openai.script = [Step(body=completion("from the fallback", "gpt-fallback"))]
    raw = await world.client("claude-governed").messages.with_raw_response.create(
        model="m", max_tokens=2000, system="Client system.", messages=USER, tools=[WEATHER, DELETE]
    )
    answer = await raw.parse()
    assert answer.to_dict()["content"] == [{"type": "text", "text": "from the fallback"}]
    assert answer.model == "gpt-fallback"
    assert (raw.headers["x-astra-provider"], raw.headers["x-astra-attempts"]) == ("openai", "3")
    assert raw.headers["x-astra-tools-removed"] == "delete_account"
    assert len(world.anthropic.requests) == 2
    [sent] = world.openai.received
    assert sent.body["model"] == "gpt-fallback"
    assert sent.body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "system", "content": "Client system."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    assert (sent.body["max_tokens"], sent.body["temperature"]) == (512, 0.4)
    assert [t["function"]["name"] for t in sent.body["tools"]] == ["get_weather"]


async def test_fallback_from_claude_to_openai_streamed(world: World) -> None:
    world.anthropic.push(*(ErrorReply(529, "overloaded_error", "Overloaded") for _ in range(2)))
    world.openai.script = [sse([*text_chunks(["from ", "openai"], model="gpt-fallback"), usage_chunk(9, 2)])]
    async with world.client("claude-native").messages.stream(
        model="m", max_tokens=50, messages=USER
    ) as stream:
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(texts) == "from openai"
    assert (final.stop_reason, final.usage.input_tokens, final.usage.output_tokens) == ("end_turn", 9, 2)
    assert stream.response.headers["x-astra-provider"] == "openai"
    assert len(world.anthropic.requests) == 2 and len(world.openai.received) == 1
