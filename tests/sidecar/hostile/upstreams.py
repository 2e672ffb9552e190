"""A hostile OpenAI-compatible upstream: a real aiohttp server on loopback whose answers break the
rules in one way per path prefix (`/{kind}/v1/chat/completions`), for the hostile tests and
drills (tests/drills/hostile_upstream.py).

What a good answer looks like is OpenAI's documented wire format (a `chat.completion` object, or
`data: {chat.completion.chunk}` events ending with `data: [DONE]`,
https://platform.openai.com/docs/api-reference/chat-streaming). The hostile kinds:

| kind | answer |
|---|---|
| good | a small `chat.completion`, or a short stream |
| endless-stream | a stream of content chunks that never ends |
| endless-json | `application/json`, chunked, a body that never ends |
| huge-json | `Content-Length: 2 GiB`, sent until the reader goes away |
| gzip-bomb | `Content-Encoding: gzip` JSON that inflates to 256 MiB of zeros |
| gzip-bomb-stream | `text/event-stream`, gzip: one event, then a comment inflating to 256 MiB |
| sse-line | `text/event-stream`: one event, then a 100 MB line without a newline |
| headers | 200 with 10,000 headers |
| comments | `text/event-stream`: one event, then `: keep-alive` comments without end |
| redirect | 302 to the cloud metadata address |
| brotli | `Content-Encoding: br`, which the sidecar never asks for |

Everything written is counted (`sent`), and so is every reader that went away (`cut`).
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from collections import Counter
from typing import Any

from aiohttp import web

MIB = 1024 * 1024
KINDS = (
    "good", "endless-stream", "endless-json", "huge-json", "gzip-bomb", "gzip-bomb-stream",
    "sse-line", "headers", "comments", "redirect", "brotli",
)  # fmt: skip
METADATA_URL = "http://169.254.169.254/latest/meta-data/"
_PIECE = 64 * 1024


def completion(model: str, text: str = "ok") -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-hostile",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    ).encode()


def chunk_event(model: str, text: str, finish: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-hostile",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def _gzip_of(prefix: bytes, filler: bytes, size: int) -> bytes:
    """gzip of `prefix` and then `size` bytes of `filler`, built in 1 MiB steps."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [packer.compress(prefix)]
    block = filler * (MIB // len(filler))
    for _ in range(size // MIB):
        parts.append(packer.compress(block))
    parts.append(packer.flush())
    return b"".join(parts)


class HostileUpstream:
    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self.cut: Counter[str] = Counter()
        self._bomb = b""
        self._stream_bomb = b""
        self._runner: web.AppRunner | None = None
        self.port = 0

    def url(self, kind: str) -> str:
        return f"http://127.0.0.1:{self.port}/{kind}/v1"

    async def start(self) -> HostileUpstream:
        # Built off the loop: compressing 256 MiB takes about a second.
        self._bomb = await asyncio.to_thread(_gzip_of, b"", b"\0", 256 * MIB)
        first = chunk_event("m", "hi")
        self._stream_bomb = await asyncio.to_thread(_gzip_of, first + b": ", b"a", 256 * MIB)
        app = web.Application(client_max_size=64 * MIB)  # the sidecar may send 8 MiB bodies
        app.router.add_post("/{kind}/v1/chat/completions", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        kind = request.match_info["kind"]
        body: dict[str, Any] = await request.json()
        self.requests[kind] += 1
        model = str(body.get("model", "m"))
        if kind == "redirect":
            return web.Response(status=302, headers={"Location": METADATA_URL}, text="moved")
        if kind == "headers":
            return _many_headers(completion(model))
        if kind == "brotli":
            return web.Response(
                body=b"\x1b\x00\x00", headers={"Content-Encoding": "br", "Content-Type": "application/json"}
            )
        streaming = bool(body.get("stream"))
        response = web.StreamResponse()
        try:
            response = await self._open(request, kind, streaming)
            await self._write_body(response, kind, model, streaming)
        except asyncio.CancelledError:
            self.cut[kind] += 1
            raise
        except ConnectionError:  # the reader went away: what this server is here to see
            self.cut[kind] += 1
        return response

    async def _open(self, request: web.Request, kind: str, streaming: bool) -> web.StreamResponse:
        stream = kind in ("endless-stream", "sse-line", "comments", "gzip-bomb-stream") or (
            kind == "good" and streaming
        )
        headers = {"Content-Type": "text/event-stream" if stream else "application/json"}
        if kind.startswith("gzip"):
            headers["Content-Encoding"] = "gzip"
        response = web.StreamResponse(headers=headers)
        if kind == "huge-json":
            response.content_length = 2 * 1024 * MIB
        await response.prepare(request)
        return response

    async def _send(self, response: web.StreamResponse, kind: str, data: bytes) -> None:
        await response.write(data)
        self.sent[kind] += len(data)

    async def _write_body(self, response: web.StreamResponse, kind: str, model: str, streaming: bool) -> None:
        if kind == "good" and streaming:
            events = chunk_event(model, "ok") + chunk_event(model, "", "stop") + b"data: [DONE]\n\n"
            await self._send(response, kind, events)
        elif kind == "good":
            await self._send(response, kind, completion(model))
        elif kind in ("endless-stream", "comments"):
            await self._send(response, kind, chunk_event(model, "hi"))
            piece = chunk_event(model, "x" * 1000) if kind == "endless-stream" else b": keep-alive\n\n"
            while True:
                await self._send(response, kind, piece * (4096 // len(piece) + 1))
        elif kind in ("endless-json", "huge-json"):
            await self._send(response, kind, b'{"id": "' + b"x" * _PIECE)
            while True:
                await self._send(response, kind, b"x" * _PIECE)
        elif kind == "sse-line":
            await self._send(response, kind, chunk_event(model, "hi") + b"data: ")
            for _ in range(100 * MIB // _PIECE):
                await self._send(response, kind, b"x" * _PIECE)
        elif kind in ("gzip-bomb", "gzip-bomb-stream"):
            bomb = self._bomb if kind == "gzip-bomb" else self._stream_bomb
            for start in range(0, len(bomb), _PIECE):
                await self._send(response, kind, bomb[start : start + _PIECE])
        await response.write_eof()


def _many_headers(body: bytes) -> web.Response:
    response = web.Response(body=body, content_type="application/json")
    for index in range(10_000):
        response.headers.add(f"x-filler-{index}", "v")
    return response
