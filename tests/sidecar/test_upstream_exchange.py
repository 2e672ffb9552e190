"""One exchange with an upstream (`sidecar/upstream.py`), against a real aiohttp server: what the
sidecar sends, which timer bounds which answer, and the reads of plain and compressed bodies."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from astra_sidecar.compiler.table import Cluster
from astra_sidecar.sidecar.errors import UpstreamNetworkError, UpstreamTooLargeError
from astra_sidecar.sidecar.limits import Limits
from astra_sidecar.sidecar.protocols.base import UpstreamRequest
from astra_sidecar.sidecar.upstream import USER_AGENT, AttemptTimeouts, HttpTransport
from tests.builders import cluster

ANSWER = b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]}'
#: How long the slow routes keep silent: past `IDLE_S`, well within any attempt.
SILENCE_S = 0.3
IDLE_S = 0.1


async def _slow_answer(request: web.Request) -> web.Response:
    await asyncio.sleep(SILENCE_S)
    return web.Response(body=ANSWER, content_type="application/json")


async def _slow_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(b"data: {}\n\n")
    await asyncio.sleep(SILENCE_S)
    await response.write(b"data: [DONE]\n\n")
    return response


async def _headers(request: web.Request) -> web.Response:
    return web.json_response({"user-agent": request.headers.get("User-Agent")})


async def _gzipped(request: web.Request) -> web.Response:
    return web.Response(body=gzip.compress(ANSWER), headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})


async def _error(request: web.Request) -> web.Response:
    return web.Response(status=500, body=b"e" * 5000, content_type="text/plain")


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    app = web.Application()
    for path, handler in [("/answer", _slow_answer), ("/stream", _slow_stream), ("/headers", _headers),
                          ("/gzip", _gzipped), ("/error", _error)]:  # fmt: skip
        app.router.add_post(path, handler)
    server = TestServer(app)
    await server.start_server()
    try:
        yield str(server.make_url(""))
    finally:
        await server.close()


def _request(root: str, path: str, *, stream: bool = False) -> UpstreamRequest:
    return UpstreamRequest(url=root + path, headers={"Content-Type": "application/json"}, body=b"{}", stream=stream)


def _cluster(root: str) -> Cluster:
    return cluster("openai", "m", base_url=root)


TIMEOUTS = AttemptTimeouts(connect_s=1.0, idle_s=IDLE_S)


async def test_a_whole_answer_slower_than_stream_idle_is_read(upstream: str) -> None:
    transport = HttpTransport()
    try:
        async with transport.open(_cluster(upstream), _request(upstream, "/answer"), TIMEOUTS) as answer:
            assert await answer.read() == ANSWER
    finally:
        await transport.close()


async def test_a_stream_silent_past_stream_idle_fails_as_a_network_error(upstream: str) -> None:
    transport = HttpTransport()
    try:
        async with transport.open(_cluster(upstream), _request(upstream, "/stream", stream=True), TIMEOUTS) as answer:
            chunks = answer.chunks()
            assert await anext(chunks) == b"data: {}\n\n"
            assert not answer.ended()
            with pytest.raises(UpstreamNetworkError, match="timed out"):
                await anext(chunks)
    finally:
        await transport.close()


async def test_upstreams_see_the_sidecars_name_as_user_agent(upstream: str) -> None:
    transport = HttpTransport()
    try:
        async with transport.open(_cluster(upstream), _request(upstream, "/headers"), TIMEOUTS) as answer:
            assert await answer.read() == b'{"user-agent": "' + USER_AGENT.encode() + b'"}'
            assert answer.ended()
    finally:
        await transport.close()


async def test_plain_and_compressed_answers_read_the_same_and_the_limits_hold(upstream: str) -> None:
    transport = HttpTransport()
    small = AttemptTimeouts(connect_s=1.0, idle_s=1.0, limits=Limits(max_answer_bytes=40, max_error_body_bytes=100))
    try:
        async with transport.open(_cluster(upstream), _request(upstream, "/gzip"), TIMEOUTS) as answer:
            assert await answer.read() == ANSWER
        for path in ("/gzip", "/answer"):
            async with transport.open(_cluster(upstream), _request(upstream, path), small) as answer:
                with pytest.raises(UpstreamTooLargeError, match="larger than 40 bytes"):
                    await answer.read()
        async with transport.open(_cluster(upstream), _request(upstream, "/error"), small) as answer:
            assert await answer.read() == b"e" * 100  # an error body is cut, not refused
    finally:
        await transport.close()
