"""Routes the sidecar does not serve answer in the caller's API shape, naming the method and path:
404 for an unknown path, 405 (with `Allow`) for a known path with another method — under `/v1/`
(OpenAI's shape), `/v1/anthropic/…` (Anthropic's) and `/v1/gemini/…` (Google's). Every request,
served by the flow, by a route's own handler or by no route, writes exactly one access line with
its method, path (never the query), agent and error code."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.sidecar.protocols.anthropic.helpers import World

OPENAI_404 = {"error": {"message": "no such route: POST /v1/files", "type": "not_found_error", "param": None,
                        "code": "route_not_found"}}  # fmt: skip


async def _call(world: World, method: str, path: str, **kwargs: Any) -> tuple[int, Any, str | None]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, world.sidecar.url + path, **kwargs) as response,
    ):
        body = await response.json(content_type=None) if method != "HEAD" else None
        return response.status, body, response.headers.get("Allow")


async def test_openai_shape_under_v1(world: World) -> None:
    assert await _call(world, "POST", "/v1/files?key=k", json={}) == (404, OPENAI_404, None)
    status, body, allow = await _call(world, "GET", "/v1/chat/completions")
    assert (status, allow) == (405, "POST")
    assert body["error"] == {
        "message": "method GET is not allowed on /v1/chat/completions (allowed: POST)",
        "type": "invalid_request_error",
        "param": None,
        "code": "method_not_allowed",
    }


async def test_anthropic_shape_under_its_prefix(world: World) -> None:
    status, body, _ = await _call(world, "GET", "/v1/anthropic/claude-native/v1/files")
    assert (status, body) == (404, {"type": "error", "error": {
        "type": "not_found_error", "message": "no such route: GET /v1/anthropic/claude-native/v1/files"}})  # fmt: skip
    status, body, allow = await _call(world, "GET", "/v1/anthropic/claude-native/v1/messages")
    assert (status, allow) == (405, "POST")
    assert body == {"type": "error", "error": {"type": "invalid_request_error",
        "message": "method GET is not allowed on /v1/anthropic/claude-native/v1/messages (allowed: POST)"}}  # fmt: skip
    status, body, _ = await _call(world, "DELETE", "/v1/anthropic/claude-native")
    assert (status, body["error"]["type"]) == (404, "not_found_error")


async def test_google_shape_under_the_gemini_prefix(world: World) -> None:
    status, body, _ = await _call(world, "GET", "/v1/gemini/demo/v1beta/files")
    assert status == 404
    assert (body["error"]["status"], body["error"]["message"]) == (
        "NOT_FOUND", "no such route: GET /v1/gemini/demo/v1beta/files",
    )  # fmt: skip


async def test_every_request_writes_one_access_line(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="astra.access")
    calls = [
        ("POST", "/v1/files?key=secret-k"),
        ("GET", "/v1/chat/completions"),
        ("GET", "/v1/anthropic/claude-native/v1/models"),
        ("HEAD", "/v1/anthropic/claude-native"),
        ("HEAD", "/v1/anthropic/nobody"),
        ("GET", "/v1/anthropic/claude-native/v1/files"),
        ("GET", "/v1/gemini/demo/v1beta/models"),
    ]
    for method, path in calls:
        await _call(world, method, path)
    async with aiohttp.ClientSession() as session:
        refused = {"model": "m", "messages": []}
        async with session.post(
            world.sidecar.url + "/v1/anthropic/demo/v1/messages", json=refused
        ) as response:
            assert response.status == 400
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "astra.access"]
    assert [(line["method"], line["path"], line.get("agent"), line["status"], line.get("error_code"))
            for line in lines] == [
        ("POST", "/v1/files", None, 404, "route_not_found"),
        ("GET", "/v1/chat/completions", None, 405, "method_not_allowed"),
        ("GET", "/v1/anthropic/claude-native/v1/models", "claude-native", 200, None),
        ("HEAD", "/v1/anthropic/claude-native", "claude-native", 200, None),
        ("HEAD", "/v1/anthropic/nobody", "nobody", 404, "model_not_found"),
        ("GET", "/v1/anthropic/claude-native/v1/files", None, 404, "route_not_found"),
        ("GET", "/v1/gemini/demo/v1beta/models", "demo", 200, None),
        ("POST", "/v1/anthropic/demo/v1/messages", "demo", 400, "invalid_request"),
    ]  # fmt: skip
    assert "secret-k" not in caplog.text
