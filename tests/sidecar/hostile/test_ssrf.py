"""SSRF: nothing a client sends (body fields, headers, model names) can pick the upstream host,
path or credentials; the upstream is the configured one, always.
"""

from __future__ import annotations

import json

import openai
import pytest

from tests.sidecar.hostile.world import (
    GEMINI_MODEL,
    ROUTES,
    USER,
    World,
    post,
)

pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")


# --- SSRF: the upstream is the configured one, always -----------------------------------------------

SSRF_FIELDS = {
    "base_url": "http://evil.example/v1",
    "api_base": "http://evil.example/v1",
    "baseURL": "http://evil.example",
    "endpoint": "http://evil.example",
    "url": "http://evil.example/x",
    "api_key": "sk-evil",
    "headers": {"Host": "evil.example", "Authorization": "Bearer sk-evil"},
    "extra_headers": {"Host": "evil.example"},
}
EVIL_HEADERS = {
    "Host": "evil.example",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "http",
    "Forwarded": "host=evil.example",
    "X-Original-URL": "/evil",
    "X-Rewrite-URL": "/evil",
    "Authorization": "Bearer sk-evil",
    "x-api-key": "sk-evil",
    "x-goog-api-key": "sk-evil",
}


async def test_openai_route_body_and_headers_cannot_redirect_the_call(world: World) -> None:
    body = {"model": "oa", "messages": USER, **SSRF_FIELDS}
    status, _ = await post(world, "/v1/chat/completions", json.dumps(body).encode(), EVIL_HEADERS)
    assert status == 200
    [sent] = world.openai.received
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["Host"] == world.hosts["openai"]
    assert sent.headers["Authorization"] == "Bearer sk-sidecar-openai"
    assert sent.body["model"] == "gpt-configured"
    assert not {"X-Forwarded-Host", "Forwarded", "X-Original-URL", "x-api-key"} & set(sent.headers)


async def test_anthropic_route_body_and_headers_cannot_redirect_the_call(world: World) -> None:
    body = {**ROUTES[2].good, "model": "http://evil.example/v1/messages", **SSRF_FIELDS}
    status, _ = await post(world, "/v1/anthropic/cl/v1/messages", json.dumps(body).encode(), EVIL_HEADERS)
    [sent] = world.anthropic.requests
    assert sent.path == "/v1/messages"
    assert sent.headers["host"] == world.hosts["anthropic"]
    assert sent.headers["x-api-key"] == "sk-sidecar-ant" and "authorization" not in sent.headers
    assert sent.body["model"] == "claude-configured"
    assert not {"x-forwarded-host", "forwarded", "x-original-url"} & set(sent.headers)
    assert status in (200, 400)  # the fake API may refuse the unknown fields: either way, to the fake


async def test_gemini_route_body_path_and_headers_cannot_redirect_the_call(world: World) -> None:
    body = {**ROUTES[3].good, "model": "http://evil.example", **SSRF_FIELDS}
    path = "/v1/gemini/ge/v1beta/models/..%2F..%2Fevil.example%2Fx:generateContent"
    status, _ = await post(world, path, json.dumps(body).encode(), EVIL_HEADERS)
    assert status == 200
    [sent] = world.gemini.requests
    assert sent.path == f"/v1beta/models/{GEMINI_MODEL}:generateContent"
    assert sent.headers["Host"] == world.hosts["gemini"]
    assert sent.headers["x-goog-api-key"] == "g-sidecar"
    assert not {"X-Forwarded-Host", "Forwarded", "Authorization"} & set(sent.headers)


@pytest.mark.parametrize(
    "model", ["http://evil.example/v1", "../cl", "oa/../../x", "oa\r\nHost: evil", "oa#"]
)
async def test_model_names_that_look_like_urls_name_no_agent(world: World, model: str) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await world.sidecar.client().chat.completions.create(model=model, messages=USER)  # type: ignore[arg-type]
    assert caught.value.body["code"] == "model_not_found"  # type: ignore[index]
    assert world.upstream_requests() == 0
