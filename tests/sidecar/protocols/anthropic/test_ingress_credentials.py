"""The Anthropic Messages ingress with `credentials: passthrough`: the caller's key reaches the
Anthropic cluster only, and never leaks (the `world` of `conftest.py`).
"""

from __future__ import annotations

import json
import logging

import aiohttp
import anthropic
import pytest

from tests.fakes.anthropic_upstream import (
    ErrorReply,
    Reply,
    text_message,
)
from tests.fakes.openai_upstream import Step, completion
from tests.sidecar.protocols.anthropic.helpers import (
    USER,
    World,
)

# --- credentials: passthrough, and a canary key that never leaks ---------------------------------

CANARY = "sk-ant-CANARY-7f3a9c1e5b"


async def test_passthrough_key_reaches_anthropic_only_and_never_leaks(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = world.client("claude-byok", api_key=CANARY)
    seen: list[str] = []

    world.anthropic.push(Reply(text_message("Hi.")))
    plain = await client.messages.with_raw_response.create(model="m", max_tokens=10, messages=USER)
    seen += [plain.http_response.text, str(dict(plain.headers))]

    world.anthropic.push(Reply(text_message("Streamed.")))
    async with client.messages.with_streaming_response.create(
        model="m", max_tokens=10, messages=USER, stream=True
    ) as streamed:
        seen += [(await streamed.read()).decode(), str(dict(streamed.headers))]

    world.anthropic.push(ErrorReply(400, "invalid_request_error", "max_tokens: too large"))
    with pytest.raises(anthropic.BadRequestError) as refused:
        await client.messages.create(model="m", max_tokens=10, messages=USER)
    seen += [refused.value.response.text, str(dict(refused.value.response.headers))]

    world.anthropic.push(*(ErrorReply(529, "overloaded_error", "Overloaded") for _ in range(2)))
    world.openai.script = [Step(body=completion("fallback", "gpt-fallback"))]
    fallback = await client.messages.with_raw_response.create(model="m", max_tokens=10, messages=USER)
    seen += [fallback.http_response.text, str(dict(fallback.headers))]
    assert fallback.headers["x-astra-provider"] == "openai"

    assert [r.headers["x-api-key"] for r in world.anthropic.requests] == [CANARY] * 5
    assert all("authorization" not in r.headers for r in world.anthropic.requests)
    [to_openai] = world.openai.received
    assert to_openai.headers["Authorization"] == "Bearer sk-openai-env"
    assert CANARY not in json.dumps([to_openai.headers, to_openai.body])
    async with aiohttp.ClientSession() as http, http.get(world.sidecar.url + "/metrics") as metrics:
        seen.append(await metrics.text())
    seen += [record.getMessage() for record in caplog.records] + [caplog.text]
    assert caplog.records, "the access log should have recorded the requests"
    assert not [text for text in seen if CANARY in text]


async def test_passthrough_without_a_key_is_401_authentication_error(world: World) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{world.sidecar.url}/v1/anthropic/claude-byok/v1/messages",
            json={"max_tokens": 5, "messages": USER},
        ) as response,
    ):
        assert response.status == 401
        body = await response.json()
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    assert world.anthropic.requests == []
