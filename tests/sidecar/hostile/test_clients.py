"""Hostile clients on a sidecar served as `astra serve` serves it (tests.sidecar.hostile.served):
a client that stops reading a stream is cut after `clientStallMs` and its upstream let go, with
the bytes read from the upstream bounded meanwhile (backpressure); a slow reader is not cut;
slow-header, slow-body and idle kept-alive connections are closed after their bounds, and many
idle connections do not keep a healthy agent from being answered."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from astra_sidecar.sidecar.serving.relay import MAX_QUEUED
from tests.processes import eventually
from tests.sidecar.harness import compile_yaml
from tests.sidecar.hostile.served import Served, chat_request, closed_by_peer, connect, served
from tests.sidecar.hostile.upstreams import HostileUpstream

STALL_MS = 600
HEADER_MS = 400
BODY_MS = 400
KIB = 1024
# Routes to the same agent: OpenAI's relays the upstream's bytes (native), Anthropic's translates.
ROUTES = {"native": "/v1/chat/completions", "translated": "/v1/anthropic/endless/v1/messages"}


def _yml(upstream: HostileUpstream) -> str:
    return f"""
version: 1
settings:
  limits: {{clientStallMs: {STALL_MS}, clientHeaderTimeoutMs: {HEADER_MS}, clientBodyTimeoutMs: {BODY_MS}}}
agents:
  endless: {{model: {{provider: vllm, modelId: m, endpoint: "{upstream.url("endless-stream")}"}}}}
  healthy: {{model: {{provider: mock, modelId: echo}}}}
"""


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[Served, HostileUpstream]]:
    upstream = await HostileUpstream().start()
    try:
        async with served(compile_yaml(tmp_path, _yml(upstream))) as sidecar:
            yield sidecar, upstream
    finally:
        await upstream.close()


def _stream_body(route: str) -> bytes:
    body: dict[str, object] = {
        "model": "endless",
        "messages": [{"role": "user", "content": "go"}],
        "stream": True,
    }
    if route == "translated":
        body["max_tokens"] = 100
    return json.dumps(body).encode()


async def _healthy(sidecar: Served) -> int:
    body = {"model": "healthy", "messages": [{"role": "user", "content": "hi"}]}
    async with (
        aiohttp.ClientSession() as http,
        http.post(sidecar.url + "/v1/chat/completions", json=body) as r,
    ):
        await r.read()
        return r.status


def _queued_for_clients(sidecar: Served) -> list[int]:
    """What the sidecar's own transports hold for each client connection (process memory)."""
    server = sidecar.runner.server
    assert server is not None
    return [c.transport.get_write_buffer_size() for c in server.connections if c.transport is not None]


async def _plateau(upstream: HostileUpstream, kind: str) -> int:
    """Waits until the upstream's bytes stop growing (its writes wait on the sidecar), then returns them."""
    last = -1
    while upstream.sent[kind] != last:
        last = upstream.sent[kind]
        await asyncio.sleep(0.1)
    return last


@pytest.mark.parametrize("route", list(ROUTES))
async def test_a_client_that_stops_reading_is_cut_and_its_upstream_released(
    world: tuple[Served, HostileUpstream], route: str
) -> None:
    sidecar, upstream = world
    sock = await connect(sidecar.port, rcvbuf=4 * KIB)
    try:
        await asyncio.get_running_loop().sock_sendall(sock, chat_request(ROUTES[route], _stream_body(route)))
        assert await eventually(lambda: upstream.sent["endless-stream"] > 0)
        held = await _plateau(upstream, "endless-stream")
        # Backpressure: the endless upstream is no longer read; what the sidecar's process holds
        # for the client is its transport buffer (high-water mark plus one aiohttp write).
        assert held < 16 * 1024 * KIB
        assert max(_queued_for_clients(sidecar)) <= MAX_QUEUED
        assert await eventually(lambda: upstream.cut["endless-stream"] == 1, timeout=STALL_MS * 3 / 1000)
        assert upstream.sent["endless-stream"] < held + 1024 * KIB
        assert await closed_by_peer(sock, timeout=2)
    finally:
        sock.close()
    assert await eventually(
        lambda: any(r.get("error_code") == "client_stalled" for r in sidecar.access.records())
    )
    (line,) = [r for r in sidecar.access.records() if r.get("agent") == "endless"]
    assert line["status"] == 200 and line["stream"] is True and line["error_code"] == "client_stalled"
    assert sidecar.metric("astra_client_stalls_total", {"agent": "endless"}) == 1
    assert await _healthy(sidecar) == 200


async def test_a_slow_reader_that_keeps_taking_bytes_is_not_cut(
    world: tuple[Served, HostileUpstream],
) -> None:
    sidecar, upstream = world
    sock = await connect(sidecar.port, rcvbuf=4 * KIB)
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_sendall(sock, chat_request(ROUTES["native"], _stream_body("native")))
        read, started = 0, time.monotonic()
        # 16 KiB every 100 ms (160 KiB/s) for three stall periods: slow, never stalled.
        while time.monotonic() - started < 3 * STALL_MS / 1000:
            read += len(await loop.sock_recv(sock, 16 * KIB))
            await asyncio.sleep(0.1)
        assert read > 0 and upstream.cut["endless-stream"] == 0, sidecar.access.lines
        assert not any(r.get("error_code") for r in sidecar.access.records())
    finally:
        sock.close()
    assert await eventually(lambda: upstream.cut["endless-stream"] == 1)
    assert [r["error_code"] for r in sidecar.access.records()] == ["client_disconnected"]


async def test_a_slow_header_client_is_closed_after_the_header_timeout(
    world: tuple[Served, HostileUpstream],
) -> None:
    sidecar, _ = world
    sock = await connect(sidecar.port)
    loop = asyncio.get_running_loop()
    request = chat_request(ROUTES["native"], b"{}")
    started = time.monotonic()
    try:
        for byte in request[:-4]:  # the head, one byte at a time, never finished
            await loop.sock_sendall(sock, bytes([byte]))
            if await closed_by_peer(sock, timeout=0.02):
                break
        assert await closed_by_peer(sock, timeout=2)
    finally:
        sock.close()
    assert time.monotonic() - started >= HEADER_MS / 1000
    assert sidecar.access.lines == []  # no request ever reached a handler
    assert await _healthy(sidecar) == 200


async def test_an_idle_kept_alive_connection_is_closed_after_the_header_timeout(
    world: tuple[Served, HostileUpstream],
) -> None:
    sidecar, _ = world
    sock = await connect(sidecar.port)
    try:
        body = json.dumps({"model": "healthy", "messages": [{"role": "user", "content": "hi"}]}).encode()
        await asyncio.get_running_loop().sock_sendall(sock, chat_request("/v1/chat/completions", body))
        assert await closed_by_peer(sock, timeout=HEADER_MS / 1000 + 2)
    finally:
        sock.close()
    assert [r["status"] for r in sidecar.access.records()] == [200]


async def test_a_slow_body_is_a_408_in_the_routes_shape(world: tuple[Served, HostileUpstream]) -> None:
    sidecar, _ = world
    sock = await connect(sidecar.port)
    loop = asyncio.get_running_loop()
    body = json.dumps({"model": "healthy", "messages": [{"role": "user", "content": "hi"}]}).encode()
    answer = b""
    try:
        await loop.sock_sendall(sock, chat_request("/v1/chat/completions", body)[: -len(body)] + body[:5])
        async with asyncio.timeout(BODY_MS / 1000 + 3):
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                try:
                    await loop.sock_sendall(sock, b" ")  # a byte now and then, never the whole body
                except OSError:
                    break
                try:
                    answer += await asyncio.wait_for(loop.sock_recv(sock, 65536), 0.1)
                except TimeoutError:
                    continue
    finally:
        sock.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:200]
    error = json.loads(payload)["error"]
    assert error["code"] == "request_timeout" and set(error) == {"message", "type", "param", "code"}
    assert [r["error_code"] for r in sidecar.access.records()] == ["request_timeout"]


async def test_many_idle_connections_do_not_stop_a_healthy_agent(
    world: tuple[Served, HostileUpstream],
) -> None:
    sidecar, _ = world
    idle: list[socket.socket] = []
    try:
        for _ in range(500):
            idle.append(await connect(sidecar.port))
        # Opening them takes about as long as the header timeout: the first may be gone already.
        assert sidecar.open_connections() >= 250
        assert await _healthy(sidecar) == 200
        # All closed by the sidecar once the header timeout has passed.
        assert await eventually(lambda: sidecar.open_connections() == 0, timeout=HEADER_MS / 1000 + 3)
    finally:
        for sock in idle:
            sock.close()


async def test_a_stalled_stream_holds_a_bounded_upstream_read_buffer(
    world: tuple[Served, HostileUpstream],
) -> None:
    """What five streams whose clients read nothing hold (tracemalloc, the fake upstream's side
    included): about 1.0 MiB each with `READ_BUFSIZE`, 1.8 MiB with aiohttp's own 256 KiB."""
    sidecar, upstream = world
    streams = 5
    tracemalloc.start()
    socks: list[socket.socket] = []
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(streams):
            sock = await connect(sidecar.port, rcvbuf=4 * KIB)
            socks.append(sock)
            body = chat_request(ROUTES["native"], _stream_body("native"))
            await asyncio.get_running_loop().sock_sendall(sock, body)
        assert await eventually(lambda: upstream.sent["endless-stream"] > 0)
        await _plateau(upstream, "endless-stream")
        held = (tracemalloc.get_traced_memory()[0] - before) / streams
    finally:
        tracemalloc.stop()
        for sock in socks:
            sock.close()
    assert held < 1400 * KIB, f"{held / KIB:.0f} KiB per stalled stream"
