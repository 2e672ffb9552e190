"""Malformed HTTP and paths: aiohttp's own 400 before any route, keys with CR/LF refused, and path
traversal reaching no upstream.
"""

from __future__ import annotations

import json

import pytest

from tests.sidecar.hostile.world import (
    ROUTES,
    USER,
    Route,
    World,
    gemini_shape,
    http_request,
    post,
    raw_exchange,
)

pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")


# --- malformed HTTP: aiohttp's own 400, before any route ---------------------------------------------


@pytest.mark.parametrize("route", ROUTES, ids=str)
@pytest.mark.parametrize(
    "header",
    [b"X-Injected: a\rb", b"X-Injected: a\nInjected-Too: b", b"X-Big: " + b"a" * 65536, b"X-Nul: a\x00b"],
    ids=["cr", "lf", "64kib", "nul"],
)
async def test_malformed_headers_are_a_400_from_the_http_parser(
    world: World, route: Route, header: bytes
) -> None:
    answer = await raw_exchange(world, http_request(route.path, header, json.dumps(route.good).encode()))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split(b" ", 2)[1] == b"400", answer[:200]
    assert b"Traceback" not in answer and b'File "' not in answer
    assert len(body) < 1024
    assert world.upstream_requests() == 0
    # The sidecar is unharmed.
    status, _ = await post(world, route.path, json.dumps(route.good).encode())
    assert status == 200


async def test_a_passthrough_key_with_cr_lf_from_the_query_is_refused(world: World) -> None:
    path = "/v1/gemini/ge-own/v1beta/models/m:generateContent?key=abc%0D%0AX-Injected:%20yes"
    status, body = await post(world, path, json.dumps(ROUTES[3].good).encode())
    assert status == 401
    gemini_shape(status, body)
    assert body["error"]["message"] == "the API key contains characters that are not allowed in a key"
    assert world.gemini.requests == []


@pytest.mark.parametrize(
    "path",
    [
        "/v1/anthropic/..%2F..%2Fx/v1/messages",
        "/v1/anthropic/cl/..%2F..%2Fv1%2Fchat%2Fcompletions",
        "/v1/anthropic/../../v1/chat/completions",
        "/v1/openai/..%2Fcl/v1/chat/completions",
        "/v1/gemini/..%2Fge/v1beta/models/m:generateContent",
        "/v1/gemini/ge/v1beta/models/m:generateContent/..%2F..%2Fx",
        "/v1/chat/completions/..%2F..%2Fadmin",
        "//evil.example/v1/chat/completions",
    ],
)
async def test_path_traversal_reaches_no_upstream(world: World, path: str) -> None:
    """Sent as written (an HTTP client would resolve the dot segments before sending)."""
    body = {"model": "oa", "max_tokens": 10, "messages": USER, "contents": ROUTES[3].good["contents"]}
    answer = await raw_exchange(world, http_request(path, b"X-Test: traversal", json.dumps(body).encode()))
    head, _, payload = answer.partition(b"\r\n\r\n")
    status = int(head.split(b"\r\n")[0].split(b" ", 2)[1])
    assert status in (400, 404, 405), answer[:300]
    assert "error" in json.loads(payload)
    assert world.upstream_requests() == 0
