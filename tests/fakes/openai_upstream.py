"""A fake OpenAI-compatible upstream: a real aiohttp server, scripted per test.

Each incoming request takes the next `Step` from the script (the last step repeats when the
script runs out). Steps answer JSON, stream SSE (optionally cut mid-way or trickled), hang,
or reset the connection. Every request is recorded with its headers and parsed body.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class Step:
    kind: str = "json"  # json | sse | hang | reset
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[dict[str, Any]] = field(default_factory=list)
    cut_after: int | None = None  # sse: stop after this many chunks, no [DONE], connection closed
    chunk_delay_s: float = 0.0
    raw: bytes | None = None


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


def completion(
    text: str = "Hello!", model: str = "gpt-test", *, usage: tuple[int, int] = (5, 2)
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
    }


def text_chunks(words: Iterable[str], model: str = "gpt-test", finish: str = "stop") -> list[dict[str, Any]]:
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000, "model": model}
    out = [
        {
            **base,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
        }
    ]
    out += [
        {**base, "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]} for w in words
    ]
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    return out


def error(status: int, message: str = "upstream trouble", code: str | None = None, **headers: str) -> Step:
    body = {
        "error": {
            "message": message,
            "type": "server_error" if status >= 500 else "invalid_request_error",
            "param": None,
            "code": code,
        }
    }
    return Step(
        "json", status=status, body=body, headers={k.replace("_", "-"): v for k, v in headers.items()}
    )


class FakeOpenAI:
    def __init__(self, *steps: Step) -> None:
        self.script: list[Step] = list(steps) or [Step(body=completion())]
        self.received: list[Received] = []
        self.disconnects = 0
        self.release = asyncio.Event()
        self.server: TestServer | None = None

    def then(self, *steps: Step) -> FakeOpenAI:
        self.script.extend(steps)
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    async def start(self) -> FakeOpenAI:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = TestServer(app)
        await self.server.start_server()
        return self

    async def close(self) -> None:
        self.release.set()
        if self.server is not None:
            await self.server.close()

    def _next(self) -> Step:
        index = len(self.received) - 1
        return self.script[min(index, len(self.script) - 1)]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        self.received.append(Received(request.path, dict(request.headers), body))
        step = self._next()
        if step.kind == "hang":
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.disconnects += 1
                raise
            return web.Response(status=500)
        if step.kind == "reset":
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        if step.kind == "sse":
            return await self._sse(request, step)
        payload = step.raw if step.raw is not None else json.dumps(step.body).encode()
        return web.Response(
            status=step.status, body=payload, content_type="application/json", headers=step.headers
        )

    async def _sse(self, request: web.Request, step: Step) -> web.StreamResponse:
        response = web.StreamResponse(
            status=step.status, headers={"Content-Type": "text/event-stream", **step.headers}
        )
        await response.prepare(request)
        try:
            for index, chunk in enumerate(step.chunks):
                if step.cut_after is not None and index >= step.cut_after:
                    assert request.transport is not None
                    request.transport.abort()
                    return response
                if index and step.chunk_delay_s:
                    await asyncio.sleep(step.chunk_delay_s)
                await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnects += 1
            raise
        return response
