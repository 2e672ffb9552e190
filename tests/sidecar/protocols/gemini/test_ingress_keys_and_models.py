"""The Gemini ingress: the caller's key (header or `?key=`, passthrough, the sidecar's inbound
token) and the model routes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from google.genai import errors

from astra_sidecar.sidecar.app import create_app
from astra_sidecar.sidecar.clock import ManualClock
from tests.fakes.gemini_upstream import (
    JsonReply,
    SseReply,
    candidate,
    google_error,
    response,
    text_response,
    text_stream,
)
from tests.fakes.openai_upstream import Step, completion
from tests.sidecar.harness import compile_yaml, running_sidecar
from tests.sidecar.protocols.gemini.helpers import (
    ENV,
    GENAI_WARNINGS,
    HI,
    MODEL,
    OPENAI_KEY,
    World,
    agents_yaml,
    gemini_client,
    post,
)

pytestmark = GENAI_WARNINGS


CANARY = "AIza-CANARY-7f3c9e1d5b"


# --- credentials ----------------------------------------------------------------------------------


async def test_passthrough_key_from_the_header_reaches_gemini_only(world: World) -> None:
    world.gemini.api_key = CANARY
    world.gemini.enqueue(
        JsonReply(text_response("with your key")),
        JsonReply(google_error(503, "UNAVAILABLE", "overloaded"), status=503),
    )
    world.openai.script = [Step(body=completion("from the fallback", "gpt-4o-mini"))]
    async with world.sidecar() as url, gemini_client(url, "own-key", api_key=CANARY) as client:
        answer: Any = await client.aio.models.generate_content(model=MODEL, contents="hi")
        rescued = await client.aio.models.generate_content(model=MODEL, contents="hi")
    assert answer.text == "with your key" and rescued.text == "from the fallback"
    assert [r.headers["x-goog-api-key"] for r in world.gemini.requests] == [CANARY, CANARY]
    (fallback,) = world.openai.received
    assert fallback.headers["Authorization"] == f"Bearer {OPENAI_KEY}"
    assert CANARY not in str(fallback.headers) and CANARY not in str(fallback.body)


async def test_passthrough_key_from_the_query_reaches_gemini_only(world: World) -> None:
    world.gemini.api_key = CANARY
    world.gemini.enqueue(JsonReply(google_error(503, "UNAVAILABLE", "overloaded"), status=503))
    world.openai.script = [Step(body=completion("from the fallback", "gpt-4o-mini"))]
    path = f"/v1/gemini/own-key/v1beta/models/{MODEL}:generateContent"
    async with world.sidecar() as url:
        status, payload = await post(url, f"{path}?key={CANARY}", {"contents": HI})
        status2, payload2 = await post(url, f"{path}?key={CANARY}", {"contents": HI})
    assert (status, payload["candidates"][0]["content"]["parts"]) == (200, [{"text": "from the fallback"}])
    assert (status2, payload2["candidates"][0]["content"]["parts"]) == (200, [{"text": "echo: hi"}])
    assert [r.headers["x-goog-api-key"] for r in world.gemini.requests] == [CANARY, CANARY]
    assert all(r.query == {} for r in world.gemini.requests)
    assert CANARY not in str(world.openai.received[0].headers)


async def test_passthrough_without_a_key_is_401_unauthenticated(world: World) -> None:
    async with world.sidecar() as url:
        status, payload = await post(
            url, f"/v1/gemini/own-key/v1/models/{MODEL}:generateContent", {"contents": HI}
        )
    assert status == 401
    assert payload["error"]["status"] == "UNAUTHENTICATED"
    assert world.gemini.requests == [] and world.openai.received == []


async def test_canary_key_appears_in_no_log_metric_or_response(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.gemini.api_key = CANARY
    world.gemini.enqueue(
        SseReply(text_stream(["fi", "ne"])),
        SseReply([response([candidate([{"text": "cut"}], None)])]),
        JsonReply(google_error(400, "INVALID_ARGUMENT", "Invalid value at 'contents'"), status=400),
        JsonReply(google_error(503, "UNAVAILABLE", "overloaded"), status=503),
    )
    world.openai.script = [Step(status=500, body={"error": {"message": "down", "type": "server_error"}})]
    caplog.set_level(logging.DEBUG)
    table = compile_yaml(world.tmp_path, agents_yaml(world.gemini_url, world.openai.url))
    app = create_app(table, env=ENV, clock=ManualClock())
    server = TestServer(app)
    await server.start_server(access_log=None)  # as `astra serve` runs it
    url = str(server.make_url("")).rstrip("/")
    seen: list[str] = []

    async def call(path: str, headers: Mapping[str, str] | None = None, method: str = "POST") -> None:
        body = None if method == "GET" else {"contents": HI}
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, url + path, json=body, headers=headers) as answer,
        ):
            seen.append(f"{answer.status} {dict(answer.headers)!r} {await answer.read()!r}")

    stream = f"/v1/gemini/own-key/v1/models/{MODEL}:streamGenerateContent?alt=sse"
    generate = f"/v1/gemini/own-key/v1beta/models/{MODEL}:generateContent?key={CANARY}"
    try:
        await call(stream, {"x-goog-api-key": CANARY})
        await call(f"{stream}&key={CANARY}")
        await call(generate)
        await call(generate)
        await call("/metrics", method="GET")
    finally:
        await server.close()
    assert [line[:3] for line in seen] == ["200", "200", "400", "500", "200"]
    assert "gemini stream ended before a finishReason" in seen[1]
    assert [r.headers["x-goog-api-key"] for r in world.gemini.requests] == [CANARY] * 4
    assert caplog.records
    everything = caplog.text + "\n".join(seen) + "\n".join(r.getMessage() for r in caplog.records)
    assert CANARY not in everything


# --- models ---------------------------------------------------------------------------------------


async def test_models_get_and_list_describe_the_agent(world: World) -> None:
    async with world.sidecar() as url, gemini_client(url, "governed") as client:
        model = await client.aio.models.get(model=MODEL)
        listed = [m async for m in await client.aio.models.list()]
        with pytest.raises(errors.ClientError) as caught:
            async with gemini_client(url, "nobody") as other:
                await other.aio.models.get(model=MODEL)
    assert model.name == f"models/{MODEL}"
    assert model.display_name == "Weather bot"
    assert model.output_token_limit == 256
    assert model.supported_actions == ["generateContent", "streamGenerateContent"]
    assert [m.name for m in listed] == ["models/governed"]
    assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")


async def test_sidecar_token_is_accepted_as_the_sdk_key_or_query_key(tmp_path: Path) -> None:
    yaml = """
        version: 1
        settings: {inboundAuth: {tokenEnv: ASTRA_TOKEN}}
        agents:
          on-mock: {model: {provider: mock, modelId: canned, mock: {reply: "let in"}}}
        """
    path = f"/v1/gemini/on-mock/v1/models/{MODEL}:generateContent"
    async with running_sidecar(compile_yaml(tmp_path, yaml), env={"ASTRA_TOKEN": "tok-1"}) as sidecar:
        async with gemini_client(sidecar.url, "on-mock", api_key="tok-1") as client:
            answer: Any = await client.aio.models.generate_content(model=MODEL, contents="hi")
        by_query = await post(sidecar.url, path + "?key=tok-1", {"contents": HI})
        refused = await post(sidecar.url, path + "?key=wrong", {"contents": HI})
    assert answer.text == "let in"
    assert by_query[0] == 200 and by_query[1]["candidates"][0]["content"]["parts"] == [{"text": "let in"}]
    assert refused[0] == 401
