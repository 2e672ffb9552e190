"""The Anthropic Messages ingress's errors, in Anthropic's shape (the `world` of `conftest.py`)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import anthropic
import pytest

from astra_sidecar.sidecar.protocols.anthropic.ingress import CODEC
from astra_sidecar.sidecar.protocols.base import Failure
from tests.fakes.anthropic_upstream import (
    ErrorReply,
    Reply,
    text_message,
)
from tests.fakes.openai_upstream import Step, text_chunks
from tests.sidecar.protocols.anthropic.helpers import (
    USER,
    World,
)

# --- errors in Anthropic's shape ------------------------------------------------------------------


async def test_upstream_400_comes_back_in_anthropic_shape_without_retry_or_fallback(world: World) -> None:
    world.anthropic.push(
        ErrorReply(400, "invalid_request_error", "messages.0: text content blocks must be non-empty")
    )
    with pytest.raises(anthropic.BadRequestError) as caught:
        await world.client("claude-native").messages.create(model="m", max_tokens=10, messages=USER)
    assert caught.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "messages.0: text content blocks must be non-empty",
        },
    }
    assert len(world.anthropic.requests) == 1 and world.openai.received == []


async def test_unknown_agent_is_404_not_found_error(world: World) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        await world.client("nope").messages.create(model="m", max_tokens=10, messages=USER)
    assert caught.value.body == {
        "type": "error",
        "error": {
            "type": "not_found_error",
            "message": "The model 'nope' does not exist: it names no agent of this sidecar",
        },
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"max_tokens": 10, "messages": []}, "messages: must be a non-empty array"),
        (
            {"messages": [{"role": "tool", "content": "x"}]},
            "messages.0.role: must be 'user' or 'assistant'",
        ),
        (
            {"messages": [{"role": "user", "content": 5}]},
            "messages.0.content: must be a string or an array of content blocks",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages.0.content.0.text: must be a string",
        ),
        ({"messages": USER, "max_tokens": "ten"}, "max_tokens: must be an integer of at least 1"),
        ({"messages": USER, "stream": "yes"}, "stream: must be a boolean"),
        ({"messages": USER, "system": 3}, "system: must be a string or an array of text blocks"),
        ({"messages": USER, "tools": [{"name": "f"}]}, "tools.0.input_schema: must be an object"),
        (
            {"messages": USER, "tool_choice": {"type": "maybe"}},
            "tool_choice: must be an object of type auto, any, tool or none",
        ),
        ({"messages": USER, "model": 7}, "model: must be a string"),
    ],
)
async def test_bad_bodies_are_400_naming_the_field(world: World, body: dict[str, Any], message: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        await world.client("claude-native").post("/v1/messages", body=body, cast_to=object)
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": message},
    }
    assert world.anthropic.requests == []


async def test_plain_http_without_sdk_headers(world: World) -> None:
    world.anthropic.push(Reply(text_message("Hi.")))
    base = f"{world.sidecar.url}/v1/anthropic/claude-native"
    async with aiohttp.ClientSession() as http:
        async with http.post(base + "/messages", data=b"{not json") as bad:
            assert (bad.status, (await bad.json())["error"]["type"]) == (400, "invalid_request_error")
        async with http.post(base + "/messages", json={"messages": USER}) as good:
            assert good.status == 200
            assert (await good.json())["content"] == [{"type": "text", "text": "Hi."}]
        async with http.post(base + "/v1/messages/count_tokens", json={"messages": USER}) as missing:
            assert missing.status == 404
            assert (await missing.json())["error"]["type"] == "not_found_error"
    [sent] = world.anthropic.requests
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.body["max_tokens"] == 512


async def test_mid_stream_cut_translated_ends_with_an_error_event(world: World) -> None:
    world.openai.script = [Step(kind="sse", chunks=text_chunks(["one ", "two ", "three"]), cut_after=3)]
    stream = await world.client("gpt-agent").messages.create(
        model="m", max_tokens=50, messages=USER, stream=True
    )
    types: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        async for event in stream:
            types.append(event.type)
    assert types == ["message_start", "content_block_start", "content_block_delta", "content_block_delta"]
    assert caught.value.body["error"]["type"] == "api_error"  # type: ignore[index]


def test_error_types_by_status() -> None:
    expected = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        422: "invalid_request_error",
        429: "rate_limit_error",
        500: "api_error",
        502: "api_error",
        503: "overloaded_error",
        504: "timeout_error",
        529: "overloaded_error",
    }
    for status, kind in expected.items():
        body = json.loads(CODEC.error_body(Failure(status, "x", "boom")))
        assert body == {"type": "error", "error": {"type": kind, "message": "boom"}}
    assert CODEC.stream_error(Failure(503, "x", "busy")) == (
        b'\nevent: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"busy"}}\n\n'
    )


async def test_models_list_in_anthropic_shape(world: World) -> None:
    page = await world.client("claude-native").models.list()
    assert [(m.id, m.type, m.display_name) for m in page.data] == [
        ("claude-native", "model", "claude-native")
    ]
    with pytest.raises(anthropic.NotFoundError):
        await world.client("nope").models.list()
