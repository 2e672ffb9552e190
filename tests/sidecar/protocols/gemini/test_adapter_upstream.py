"""The Gemini adapter against the fake upstream (real sockets on loopback)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from astra_sidecar.compiler.table import (
    Cluster,
    VertexTarget,
)
from astra_sidecar.sidecar.errors import UpstreamStreamError
from astra_sidecar.sidecar.protocols.base import AuthMaterial, Secret
from tests.fakes.gemini_upstream import (
    FakeGemini,
    JsonReply,
    SseReply,
    candidate,
    function_call_response,
    google_error,
    response,
    text_stream,
    usage_metadata,
)
from tests.sidecar.protocols.gemini.helpers import (
    ADAPTER,
    KEY,
    MODEL,
    Json,
    chat,
    make_agent,
    make_cluster,
    plain_calls,
    reassemble,
    tool,
    user,
)

# --- against the fake upstream (real sockets on loopback) ------------------------------------------


@pytest.fixture
async def fake_gemini(aiohttp_server: Any) -> tuple[FakeGemini, str]:
    fake = FakeGemini(api_key="g-key", bearer="g-key")
    server = await aiohttp_server(fake.app())
    return fake, str(server.make_url("")).rstrip("/")


async def send(cluster: Cluster, body: Json) -> tuple[int, bytes, list[bytes]]:
    """POST the adapter's request to the fake; plain → (status, body, []), stream → (status, b"", pieces)."""
    request = ADAPTER.build_request(cluster, make_agent(), body, KEY)
    async with (
        aiohttp.ClientSession() as session,
        session.post(request.url, data=request.body, headers=dict(request.headers)) as resp,
    ):
        if not request.stream or resp.status != 200:
            return resp.status, await resp.read(), []
        pieces = [piece async for piece in resp.content.iter_any()]
        return resp.status, b"", pieces


async def test_fake_round_trip_ai_studio_plain(fake_gemini: tuple[FakeGemini, str]) -> None:
    fake, url = fake_gemini
    cluster = make_cluster(base_url=url)
    fake.enqueue(
        JsonReply(function_call_response([("get_weather", {"city": "Oslo"})], usage=usage_metadata(5, 2)))
    )
    status, raw, _ = await send(cluster, chat([user("Weather in Oslo?")], tools=[tool("get_weather")]))
    assert status == 200
    parsed = ChatCompletion.model_validate_json(ADAPTER.parse_response(cluster, chat([]), raw).body)
    assert plain_calls(parsed)[0]["arguments"] == '{"city":"Oslo"}'
    recorded = fake.requests[0]
    assert (recorded.surface, recorded.model, recorded.method) == ("ai_studio", MODEL, "generateContent")
    assert recorded.body["contents"] == [{"role": "user", "parts": [{"text": "Weather in Oslo?"}]}]
    assert recorded.headers["x-goog-api-key"] == "g-key"


async def test_fake_round_trip_vertex_stream(fake_gemini: tuple[FakeGemini, str]) -> None:
    fake, url = fake_gemini
    cluster = make_cluster(vertex=VertexTarget("proj-1", "us-central1"), base_url=url)
    fake.enqueue(SseReply(text_stream(["Hel", "lo"], usage=usage_metadata(3, 2)), piece_size=7))
    request = chat([user("hi")], stream=True, stream_options={"include_usage": True})
    status, _, pieces = await send(cluster, request)
    assert status == 200
    translator = ADAPTER.stream_translator(cluster, request)
    payloads = [p for piece in pieces for p in translator.feed(piece)] + translator.finish()
    chunks = [ChatCompletionChunk.model_validate_json(p) for p in payloads]
    assert reassemble(chunks)["content"] == "Hello"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 5
    recorded = fake.requests[0]
    assert (recorded.surface, recorded.project, recorded.location) == ("vertex", "proj-1", "us-central1")
    assert recorded.query == {"alt": "sse"}
    assert recorded.headers["Authorization"] == "Bearer g-key"


async def test_fake_error_bodies_and_auth(fake_gemini: tuple[FakeGemini, str]) -> None:
    fake, url = fake_gemini
    cluster = make_cluster(base_url=url)
    fake.enqueue(JsonReply(google_error(429, "RESOURCE_EXHAUSTED", "quota", retry_delay="1.5s"), status=429))
    status, raw, _ = await send(cluster, chat([user("hi")]))
    failure = ADAPTER.classify_error(cluster, status, {}, raw)
    assert (failure.status, failure.retryable, failure.retry_after_s) == (429, True, 1.5)
    request = ADAPTER.build_request(
        cluster, make_agent(), chat([user("hi")]), AuthMaterial(token=Secret("bad"))
    )
    async with (
        aiohttp.ClientSession() as session,
        session.post(request.url, data=request.body, headers=dict(request.headers)) as resp,
    ):
        failure = ADAPTER.classify_error(cluster, resp.status, resp.headers, await resp.read())
    assert (failure.status, failure.code) == (401, "API_KEY_INVALID")


async def test_fake_echo_default_and_clean_eof_without_finish(fake_gemini: tuple[FakeGemini, str]) -> None:
    fake, url = fake_gemini
    cluster = make_cluster(base_url=url)
    _, raw, _ = await send(cluster, chat([user("ping")]))
    parsed = ChatCompletion.model_validate_json(ADAPTER.parse_response(cluster, chat([]), raw).body)
    assert parsed.choices[0].message.content == "echo: ping"
    fake.enqueue(SseReply([response([candidate([{"text": "par"}], None)])]))
    request = chat([user("hi")], stream=True)
    _, _, pieces = await send(cluster, request)
    translator = ADAPTER.stream_translator(cluster, request)
    assert [p for piece in pieces for p in translator.feed(piece)]
    with pytest.raises(UpstreamStreamError):
        translator.finish()


async def test_fake_abort_drops_the_connection(fake_gemini: tuple[FakeGemini, str]) -> None:
    fake, url = fake_gemini
    cluster = make_cluster(base_url=url)
    fake.enqueue(SseReply([response([candidate([{"text": "par"}], None)])], abort=True))
    with pytest.raises(aiohttp.ClientPayloadError):
        await send(cluster, chat([user("hi")], stream=True))
