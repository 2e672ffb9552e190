"""The world of the hostile-input tests (tests/sidecar/hostile/): a sidecar with one agent per
ingress route, each on a cluster of its route's own format (the native path where there is one),
backed by a fake upstream that records what it received; the routes with their error shapes and
bad bodies; and ways to send what an HTTP client would not.

Routes: OpenAI (`/v1/chat/completions`, and the provider-style `/v1/openai/{agent}/…`), Anthropic
(`/v1/anthropic/{agent}/v1/messages`) and Gemini (`/v1/gemini/{agent}/v1beta/models/…`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI, Step, completion
from tests.sidecar.harness import Sidecar, compile_yaml, running_sidecar

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


@asynccontextmanager
async def hostile_world(tmp_path: Path) -> AsyncIterator[World]:
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


async def raw_exchange(world: World, request: bytes) -> bytes:
    host, port = world.sidecar.url.split("//", 1)[1].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    await writer.wait_closed()
    return answer


def http_request(path: str, header: bytes, body: bytes = b"{}") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: sidecar\r\nContent-Type: application/json\r\n".encode()
        + header
        + f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
