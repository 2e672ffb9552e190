"""A sidecar served the way `astra serve` serves it (the server settings of
`astra_sidecar.sidecar.server.server_settings`: header timeout, handler cancellation, lingering),
on a loopback port, with its access lines kept; and raw-socket clients that misbehave."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from astra_sidecar.compiler.table import RoutingTable
from astra_sidecar.sidecar.app import create_app
from astra_sidecar.sidecar.app_keys import STATE
from astra_sidecar.sidecar.server import server_settings

#: Linux TCP states (include/net/tcp_states.h): reset or closed, and FIN received.
_TCP_CLOSE, _TCP_CLOSE_WAIT = 7, 8


@dataclass
class ListSink:
    """Access lines as they are written (each one line of bytes)."""

    lines: list[bytes] = field(default_factory=list)

    def write(self, line: bytes) -> None:
        self.lines.append(line)

    def flush(self) -> None:
        return None

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


@dataclass
class Served:
    app: web.Application
    runner: web.AppRunner
    port: int
    access: ListSink

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open_connections(self) -> int:
        server = self.runner.server
        return len(server.connections) if server is not None else 0

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        value = self.app[STATE].shared.metrics.registry.get_sample_value(name, dict(labels or {}))
        return value or 0.0


@asynccontextmanager
async def served(table: RoutingTable, env: Mapping[str, str] | None = None) -> AsyncIterator[Served]:
    access = ListSink()
    app = create_app(table, env=dict(env or {}), access_sink=access)
    runner = web.AppRunner(app, **server_settings(table))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(runner.addresses[0][1])
    try:
        yield Served(app, runner, port, access)
    finally:
        await runner.cleanup()


async def connect(port: int, *, rcvbuf: int | None = None) -> socket.socket:
    """A non-blocking loopback socket to `port`; `rcvbuf` shrinks its receive buffer first (set
    before connecting, so the TCP window the peer sees is small from the start)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """True when the peer closes (or resets) `sock` within `timeout`; what arrives is dropped."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            while True:
                if not await loop.sock_recv(sock, 65536):
                    return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def peer_closed(sock: socket.socket) -> bool:
    """True once the peer closed or reset the connection, asked without reading from it (a read
    would take bytes, which is what a stalled client must not do): the socket's TCP state."""
    state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
    return state in (_TCP_CLOSE, _TCP_CLOSE_WAIT)


async def cut_without_reading(sock: socket.socket, timeout: float) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while not peer_closed(sock):
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def chat_request(path: str, body: bytes, *, extra: bytes = b"") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: sidecar\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n".encode()
        + extra
        + b"\r\n"
        + body
    )
