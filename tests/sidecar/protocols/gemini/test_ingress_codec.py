"""The Gemini ingress codec's own parts: parsing a call (its key folded into the inbound headers),
what the size estimate reads, and the route table (other paths answered in Google's shape)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.protocols.codec import RequestSize, Route
from astra_sidecar.sidecar.protocols.gemini import ingress
from astra_sidecar.sidecar.protocols.gemini.embeddings_ingress import embed_content
from astra_sidecar.sidecar.protocols.gemini.ingress import CODEC, unknown_route
from astra_sidecar.sidecar.protocols.gemini.ingress_models import get_model, list_models
from astra_sidecar.sidecar.protocols.gemini.ingress_routes import GEMINI
from astra_sidecar.sidecar.protocols.lazy_ingress import resolve
from tests.sidecar.protocols.gemini.helpers import World

Json = dict[str, Any]
HI = [{"role": "user", "parts": [{"text": "hi"}]}]
MODELS = "/v1/gemini/{agent}/{version:v1beta|v1}/models"


def route(target: str = "gemini-2.5-flash:generateContent") -> dict[str, str]:
    return {"agent": "native", "version": "v1beta", "target": target}


def headers(**values: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(values))


# --- parse ----------------------------------------------------------------------------------------


def test_parse_reads_the_path_and_the_body() -> None:
    call = CODEC.parse({"contents": HI, "model": "ignored"}, route(), {}, headers())
    assert (call.agent_id, call.stream) == ("native", False)
    assert call.route == {
        "agent": "native",
        "model": "gemini-2.5-flash",
        "method": "generateContent",
        "version": "v1beta",
    }
    assert call.body == {"contents": HI}
    streamed = CODEC.parse({"contents": HI}, route("m:streamGenerateContent"), {"alt": "sse"}, headers())
    assert streamed.stream is True


def test_the_query_key_is_folded_into_the_inbound_headers() -> None:
    call = CODEC.parse({"contents": HI}, route(), {"key": "AIza-q"}, headers(Accept="*/*"))
    assert call.inbound["x-goog-api-key"] == "AIza-q"
    assert call.inbound["accept"] == "*/*"


def test_a_key_in_the_header_wins_over_the_query() -> None:
    sent = headers(**{"x-goog-api-key": "AIza-h"})
    call = CODEC.parse({"contents": HI}, route(), {"key": "AIza-q"}, sent)
    assert call.inbound is sent


def test_parse_without_headers_has_empty_inbound_headers() -> None:
    assert dict(CODEC.parse({"contents": HI}, route(), {}).inbound) == {}
    assert dict(CODEC.parse({"contents": HI}, route(), {"key": "k"}).inbound) == {"x-goog-api-key": "k"}


def test_json_array_streams_are_refused() -> None:
    with pytest.raises(ClientError) as caught:
        CODEC.parse({"contents": HI}, route("m:streamGenerateContent"), {}, headers())
    assert (caught.value.failure.status, caught.value.failure.param) == (400, "alt")


def test_other_methods_are_404() -> None:
    with pytest.raises(ClientError) as caught:
        CODEC.parse({"contents": HI}, route("m:countTokens"), {}, headers())
    assert (caught.value.failure.status, caught.value.failure.code) == (404, "method_not_found")


# --- size -----------------------------------------------------------------------------------------


def test_size_names_contents_system_instruction_tools_and_the_output_cap() -> None:
    tools = [{"functionDeclarations": [{"name": "get_weather"}]}]
    system = {"parts": [{"text": "Be brief."}]}
    body = {
        "contents": HI,
        "systemInstruction": system,
        "tools": tools,
        "generationConfig": {"maxOutputTokens": 64},
    }
    call = CODEC.parse(body, route(), {}, headers())
    assert CODEC.size(call) == RequestSize(conversation=HI, system=system, tools=(tools,), output_cap=64)


@pytest.mark.parametrize(
    "config", [None, {}, {"maxOutputTokens": 0}, {"maxOutputTokens": 64.0}, {"temperature": 1}]
)
def test_size_has_no_output_cap_unless_a_positive_integer_is_set(config: Json | None) -> None:
    call = CODEC.parse({"contents": HI, "generationConfig": config}, route(), {}, headers())
    assert CODEC.size(call) == RequestSize(conversation=HI, tools=(None,))


# --- routes ---------------------------------------------------------------------------------------


def test_routes_are_the_generate_post_the_model_gets_and_a_catch_all() -> None:
    package = "astra_sidecar.sidecar.protocols.gemini"
    deferred = [
        (f"{package}.embeddings_ingress", "embed_content"),
        (f"{package}.ingress", "count_tokens"),
        (f"{package}.ingress_models", "get_model"),
        (f"{package}.ingress_models", "list_models"),
    ]
    embed, count, get, listed = (GEMINI.handler(module, name) for module, name in deferred)
    assert GEMINI.routes() == CODEC.routes()
    assert CODEC.routes() == [
        Route("POST", MODELS + "/{model}:{method:embedContent|batchEmbedContents}", embed),
        Route("POST", MODELS + "/{model}:countTokens", count),
        Route("POST", MODELS + "/{target}"),
        Route("GET", MODELS + "/{model}", get),
        Route("GET", MODELS, listed),
        Route("*", r"/v1/gemini/{tail:[\s\S]*}", unknown_route),
    ]
    # The handlers the route table defers to, by module and name.
    assert [resolve(module, name) for module, name in deferred] == [
        embed_content,
        ingress.count_tokens,
        get_model,
        list_models,
    ]


@pytest.mark.parametrize(
    ("method", "path", "status", "rpc", "message"),
    [
        (
            "GET",
            "/v1/gemini/native/v1beta/nothing/here",
            404,
            "NOT_FOUND",
            "no such route: GET /v1/gemini/native/v1beta/nothing/here",
        ),
        (
            "POST",
            "/v1/gemini/native/v2/models/m:generateContent",
            404,
            "NOT_FOUND",
            "no such route: POST /v1/gemini/native/v2/models/m:generateContent",
        ),
        (
            "PUT",
            "/v1/gemini/native/v1beta/models",
            405,
            "INVALID_ARGUMENT",
            "method PUT is not allowed on /v1/gemini/native/v1beta/models (allowed: GET, HEAD)",
        ),
    ],
)
async def test_other_requests_are_answered_in_googles_shape(
    world: World, method: str, path: str, status: int, rpc: str, message: str
) -> None:
    async with (
        world.sidecar() as url,
        aiohttp.ClientSession() as http,
        http.request(method, url + path, json={"contents": HI}) as answer,
    ):
        body = await answer.json()
    assert answer.status == status
    code = "route_not_found" if status == 404 else "method_not_allowed"
    reason = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": code, "domain": "astra-sidecar"}
    assert body == {"error": {"code": status, "message": message, "status": rpc, "details": [reason]}}
    assert world.gemini.requests == []


def test_the_stream_content_type_is_server_sent_events() -> None:
    assert CODEC.stream_content_type == "text/event-stream"
    assert CODEC.name == CODEC.wire == "gemini"
