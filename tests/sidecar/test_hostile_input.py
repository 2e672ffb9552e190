"""Hostile input on every route: a clear 4xx in the route's own error shape, never a 500 or a
traceback, and nothing a client sends can pick the upstream host, path or credentials.

Routes: OpenAI (`/v1/chat/completions`, and the provider-style `/v1/openai/{agent}/…`), Anthropic
(`/v1/anthropic/{agent}/v1/messages`) and Gemini (`/v1/gemini/{agent}/v1beta/models/…`). Each
agent is on a cluster of its route's own format (the native path where there is one), backed by
a fake upstream that records what it received.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from aiohttp.test_utils import TestServer
from google import genai
from google.genai import types

from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI, Step, completion, error
from tests.sidecar.harness import Sidecar, compile_yaml, running_sidecar

pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")

MAX_BODY = 4096
ENV = {
    "OPENAI_API_KEY": "sk-sidecar-openai",
    "ANTHROPIC_API_KEY": "sk-sidecar-ant",
    "GEMINI_API_KEY": "g-sidecar",
}
GEMINI_MODEL = "gemini-2.5-flash"


def astra_yml(openai_url: str, anthropic_url: str, gemini_url: str) -> str:
    return f"""
        version: 1
        settings: {{maxBodyBytes: {MAX_BODY}, retry: {{maxRetries: 0}}}}
        agents:
          oa: {{model: {{provider: openai, modelId: gpt-configured, endpoint: "{openai_url}"}}}}
          cl: {{model: {{provider: claude, modelId: claude-configured, endpoint: "{anthropic_url}"}}}}
          ge: {{model: {{provider: gemini, modelId: {GEMINI_MODEL}, endpoint: "{gemini_url}"}}}}
          ge-own:
            model: {{provider: gemini, modelId: gemini-2.5-pro, endpoint: "{gemini_url}", credentials: passthrough}}
        """


@dataclass
class World:
    sidecar: Sidecar
    openai: FakeOpenAI
    anthropic: FakeAnthropic
    gemini: FakeGemini
    hosts: dict[str, str]

    def upstream_requests(self) -> int:
        return len(self.openai.received) + len(self.anthropic.requests) + len(self.gemini.requests)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    openai_fake = await FakeOpenAI(Step(body=completion("ok", "gpt-configured"))).start()
    anthropic_fake, gemini_fake = FakeAnthropic(), FakeGemini()
    servers = [TestServer(anthropic_fake.app()), TestServer(gemini_fake.app())]
    for server in servers:
        await server.start_server()
    anthropic_url, gemini_url = (str(s.make_url("")).rstrip("/") for s in servers)
    hosts = {
        name: url.split("//", 1)[1]
        for name, url in (("openai", openai_fake.url), ("anthropic", anthropic_url), ("gemini", gemini_url))
    }
    try:
        table = compile_yaml(tmp_path, astra_yml(openai_fake.url + "/v1", anthropic_url, gemini_url))
        async with running_sidecar(table, env=ENV) as sidecar:
            yield World(sidecar, openai_fake, anthropic_fake, gemini_fake, hosts)
    finally:
        await openai_fake.close()
        for server in servers:
            await server.close()


# --- the routes and their error shapes --------------------------------------------------------------


def openai_shape(status: int, body: Any) -> None:
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


def anthropic_shape(status: int, body: Any) -> None:
    assert set(body) == {"type", "error"} and body["type"] == "error"
    assert set(body["error"]) == {"type", "message"} and body["error"]["message"]


def gemini_shape(status: int, body: Any) -> None:
    assert set(body) == {"error"} and body["error"]["code"] == status
    assert set(body["error"]) <= {"code", "message", "status", "details"} and body["error"]["status"]


@dataclass(frozen=True)
class Route:
    name: str
    path: str
    good: dict[str, Any]
    shape: Callable[[int, Any], None]
    bad: tuple[dict[str, Any], ...]

    def __str__(self) -> str:
        return self.name


USER = [{"role": "user", "content": "hi"}]
ROUTES = [
    Route(
        "openai",
        "/v1/chat/completions",
        {"model": "oa", "messages": USER},
        openai_shape,
        (
            {"model": "oa"},
            {"model": "oa", "messages": "hi"},
            {"model": "oa", "messages": [{"role": 5, "content": "hi"}]},
            {"model": "oa", "messages": USER, "temperature": "hot"},
            {"model": "oa", "messages": USER, "max_tokens": 1.5},
            {"model": "oa", "messages": USER, "tools": {"not": "a list"}},
            {"model": "oa", "messages": USER, "tools": [None]},
            {"model": "oa", "messages": USER, "tools": [{"type": "function"}]},
            {"model": "oa", "messages": USER, "tools": [{"type": "function", "function": {"name": 5}}]},
            {"model": ["oa"], "messages": USER},
        ),
    ),
    Route(
        "openai-path",
        "/v1/openai/oa/v1/chat/completions",
        {"model": "anything", "messages": USER},
        openai_shape,
        ({"messages": None}, {"messages": [[]]}, {"messages": USER, "stream": "yes"}),
    ),
    Route(
        "anthropic",
        "/v1/anthropic/cl/v1/messages",
        {"max_tokens": 10, "messages": USER},
        anthropic_shape,
        (
            {"max_tokens": 10},
            {"max_tokens": 10, "messages": "hi"},
            {"max_tokens": 10, "messages": [{"role": "user", "content": 5}]},
            {"max_tokens": "ten", "messages": USER},
            {"max_tokens": 10, "messages": USER, "tools": "x"},
            {"max_tokens": 10, "messages": USER, "system": {"text": 1}},
            {"max_tokens": 10, "messages": [{"role": "robot", "content": "hi"}]},
        ),
    ),
    Route(
        "gemini",
        f"/v1/gemini/ge/v1beta/models/{GEMINI_MODEL}:generateContent",
        {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        gemini_shape,
        (
            {},
            {"contents": "hi"},
            {"contents": [{"role": "user", "parts": "hi"}]},
            {"contents": [{"role": "user", "parts": [{"text": 5}]}]},
            {"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": "x"}},
            {"contents": [{"parts": [{"text": "hi"}]}], "tools": {"a": 1}},
        ),
    ),
]


async def post(
    world: World, path: str, data: bytes, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            world.sidecar.url + path,
            data=data,
            headers={"Content-Type": "application/json", **(headers or {})},
        ) as response,
    ):
        raw = await response.read()
    assert b"Traceback" not in raw and b'File "' not in raw
    return response.status, json.loads(raw)


def _bad_bodies() -> list[tuple[Route, bytes]]:
    cases: list[tuple[Route, bytes]] = []
    for route in ROUTES:
        cases += [
            (route, raw) for raw in (b"{not json", b"", b"[1, 2]", b'"text"', b"42", b"\xff\xfe{}", b"null")
        ]
        cases += [(route, json.dumps(body).encode()) for body in route.bad]
    return cases


@pytest.mark.parametrize(("route", "raw"), _bad_bodies(), ids=lambda v: str(v)[:40])
async def test_bad_bodies_get_a_400_in_the_routes_shape(world: World, route: Route, raw: bytes) -> None:
    status, body = await post(world, route.path, raw)
    assert status == 400, body
    route.shape(status, body)
    assert world.upstream_requests() == 0


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_the_good_body_is_answered(world: World, route: Route) -> None:
    status, _ = await post(world, route.path, json.dumps(route.good).encode())
    assert status == 200
    assert world.upstream_requests() == 1


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_deeply_nested_json_is_a_400_not_a_500(world: World, route: Route) -> None:
    """JSON nested past ~255 levels cannot be re-encoded (orjson): refused at the door."""
    nested = "[" * 300 + "]" * 300
    raw = json.dumps(route.good)[:-1].encode() + b', "metadata": ' + nested.encode() + b"}"
    status, body = await post(world, route.path, raw)
    assert status == 400
    route.shape(status, body)
    assert "nested more than 100 levels" in json.dumps(body)
    assert world.upstream_requests() == 0


@pytest.mark.parametrize("route", ROUTES, ids=str)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_bodies_over_max_body_bytes_are_413(world: World, route: Route, chunked: bool) -> None:
    good = dict(route.good)
    raw = json.dumps({**good, "padding": "x" * (MAX_BODY * 2)}).encode()

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 1000):
            yield raw[start : start + 1000]

    async with (
        aiohttp.ClientSession() as http,
        http.post(world.sidecar.url + route.path, data=pieces() if chunked else raw) as response,
    ):
        body = await response.json(content_type=None)
    assert response.status == 413
    route.shape(413, body)
    assert world.upstream_requests() == 0


# --- malformed HTTP: aiohttp's own 400, before any route ---------------------------------------------


async def raw_exchange(world: World, request: bytes) -> bytes:
    host, port = world.sidecar.url.split("//", 1)[1].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    await writer.wait_closed()
    return answer


def _request(path: str, header: bytes, body: bytes = b"{}") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: sidecar\r\nContent-Type: application/json\r\n".encode()
        + header
        + f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )


@pytest.mark.parametrize("route", ROUTES, ids=str)
@pytest.mark.parametrize(
    "header",
    [b"X-Injected: a\rb", b"X-Injected: a\nInjected-Too: b", b"X-Big: " + b"a" * 65536, b"X-Nul: a\x00b"],
    ids=["cr", "lf", "64kib", "nul"],
)
async def test_malformed_headers_are_a_400_from_the_http_parser(
    world: World, route: Route, header: bytes
) -> None:
    answer = await raw_exchange(world, _request(route.path, header, json.dumps(route.good).encode()))
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
    answer = await raw_exchange(world, _request(path, b"X-Test: traversal", json.dumps(body).encode()))
    head, _, payload = answer.partition(b"\r\n\r\n")
    status = int(head.split(b"\r\n")[0].split(b" ", 2)[1])
    assert status in (400, 404, 405), answer[:300]
    assert "error" in json.loads(payload)
    assert world.upstream_requests() == 0


@pytest.mark.parametrize(
    "model", ["http://evil.example/v1", "../cl", "oa/../../x", "oa\r\nHost: evil", "oa#"]
)
async def test_model_names_that_look_like_urls_name_no_agent(world: World, model: str) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await world.sidecar.client().chat.completions.create(model=model, messages=USER)  # type: ignore[arg-type]
    assert caught.value.body["code"] == "model_not_found"  # type: ignore[index]
    assert world.upstream_requests() == 0


# --- the official SDKs get the same 4xx as typed errors ---------------------------------------------


async def test_sdks_get_typed_errors_for_bad_input(world: World) -> None:
    with pytest.raises(openai.BadRequestError):
        await world.sidecar.client().chat.completions.create(model="oa", messages=[])
    client = anthropic.AsyncAnthropic(
        base_url=f"{world.sidecar.url}/v1/anthropic/cl", api_key="k", max_retries=0
    )
    with pytest.raises(anthropic.BadRequestError):
        await client.messages.create(model="m", max_tokens=10, messages=[])
    await client.close()
    gemini = genai.Client(
        api_key="k", http_options=types.HttpOptions(base_url=f"{world.sidecar.url}/v1/gemini/ge")
    )
    try:
        with pytest.raises(genai.errors.ClientError) as caught:
            await gemini.aio.models.generate_content(
                model="m", contents=[types.Content(role="user", parts=[])]
            )
    finally:
        await gemini.aio.aclose()
    assert caught.value.code == 400
    assert world.upstream_requests() == 0


# --- secrets ---------------------------------------------------------------------------------------

CANARY = "sk-CANARY-5e1f0c9a7d3b"
CALLER_CANARY = "sk-CALLER-CANARY-2b8d4f6a"


async def test_a_canary_key_appears_in_no_answer_log_or_metric(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The sidecar's key, echoed back by an upstream that refuses it, and the caller's key in its
    headers, reach no answer, header, log record or metric."""
    caplog.set_level(logging.DEBUG)
    upstream = await FakeOpenAI(
        error(401, f"Incorrect API key provided: {CANARY}.", code="invalid_api_key")
    ).start()
    seen: list[str] = []
    try:
        table = compile_yaml(
            tmp_path,
            f"agents:\n  oa: {{model: {{provider: openai, modelId: m, endpoint: '{upstream.url}'}}}}\n",
        )
        async with (
            running_sidecar(table, env={"OPENAI_API_KEY": CANARY}) as sidecar,
            aiohttp.ClientSession() as http,
        ):
            headers = {"Authorization": f"Bearer {CALLER_CANARY}", "x-api-key": CALLER_CANARY}
            for data in (json.dumps({"model": "oa", "messages": USER}).encode(), b"{bad", b"[" * 300):
                async with http.post(
                    sidecar.url + "/v1/chat/completions", data=data, headers=headers
                ) as response:
                    seen += [await response.text(), str(dict(response.headers))]
                    assert response.status in (400, 401)
            seen.append(sidecar.state.shared.metrics.render().decode())
    finally:
        await upstream.close()
    assert upstream.received[0].headers["Authorization"] == f"Bearer {CANARY}"
    assert "Incorrect API key provided: [redacted]." in seen[0]
    assert len([r for r in caplog.records if r.name == "astra.access"]) == 3
    seen += [record.getMessage() + repr(vars(record)) for record in caplog.records]
    assert [text for text in seen if CANARY in text or CALLER_CANARY in text] == []


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_content_encoding_bodies(world: World, route: Route) -> None:
    """A gzip body is read (and limited) after decompression; one that is not gzip is a 400."""
    good = json.dumps(route.good).encode()
    bomb = json.dumps({**route.good, "padding": " " * (64 * MAX_BODY)}).encode()
    answers = []
    for data in (gzip.compress(good), gzip.compress(bomb), good):
        answers.append(await post(world, route.path, data, {"Content-Encoding": "gzip"}))
    assert [status for status, _ in answers] == [200, 413, 400]
    for status, body in answers[1:]:
        route.shape(status, body)
    assert world.upstream_requests() == 1
