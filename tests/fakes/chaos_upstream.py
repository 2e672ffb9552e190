"""A chaos OpenAI-compatible upstream: a real aiohttp server that fails in every way a provider
(or the network in front of it) does, at random but from a seed.

Each request draws one *fault kind* from a weighted mix, with a `random.Random(seed)` consulted
once per request in arrival order (so a run's mix of faults is reproducible; which request gets
which fault depends on arrival order under concurrency). Kinds:

==================  ================================================================================
``ok``              a well-formed answer: a `chat.completion`, or SSE chunks ending in ``[DONE]``
``rate_limit``      429 with ``Retry-After`` in seconds (``0`` to ``0.05``; one in ten says ``1``,
                    longer than the drill's ``maxRetryAfterMs``, which means "fall back now")
``rate_limit_ms``   429 with ``retry-after-ms`` (``0`` to ``50``)
``status_5xx``      ``status_500`` / ``status_502`` / ``status_503`` / ``status_504``: an OpenAI
                    error body with that status
``reset``           the connection is aborted before any byte of an answer
``silent``          the request is read, then nothing: the connection stays open until the client
                    gives up (or `silent_max_s` passes)
``trickle``         a slow answer: SSE chunks, or pieces of a JSON body, with pauses between them
                    (some pauses longer than a typical ``streamIdleMs``)
``cut``             the answer starts (headers, some chunks or part of the body) and the
                    connection is aborted mid-way
``malformed``       200 with a JSON body cut short, or an SSE stream with a chunk that is not JSON
``wrong_type``      200 ``text/html`` with an HTML page (both for plain and streamed requests)
==================  ================================================================================

`requests` counts every request the server saw (at arrival, before its body is read), and
`injected` counts the kinds drawn; `streamed` counts the requests that asked for a stream;
`disconnects` the answers the client did not wait for.
Nothing per-request is kept, so a long drill's memory stays flat.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

KINDS = (
    "ok",
    "rate_limit",
    "rate_limit_ms",
    "status_500",
    "status_502",
    "status_503",
    "status_504",
    "reset",
    "silent",
    "trickle",
    "cut",
    "malformed",
    "wrong_type",
)

#: Every fault, often: a provider having a very bad day (about half of all requests fail).
STORM: Mapping[str, float] = {
    "ok": 46,
    "rate_limit": 5,
    "rate_limit_ms": 5,
    "status_500": 4,
    "status_502": 4,
    "status_503": 4,
    "status_504": 3,
    "reset": 5,
    "silent": 4,
    "trickle": 6,
    "cut": 5,
    "malformed": 5,
    "wrong_type": 4,
}
#: A mostly healthy provider with the occasional fault.
FLAKY: Mapping[str, float] = {
    "ok": 85,
    "rate_limit_ms": 3,
    "status_503": 3,
    "reset": 3,
    "cut": 3,
    "trickle": 3,
}
HEALTHY: Mapping[str, float] = {"ok": 1}
#: Faults that answer fast (no silent connections, no trickles): for fuzzing, where time matters.
FAST_FAULTS: Mapping[str, float] = {k: w for k, w in STORM.items() if k not in ("silent", "trickle")}

_HTML = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


class ChaosUpstream:
    """Start with `await ChaosUpstream(seed=…).start()`; `url` is its OpenAI base URL (…/v1)."""

    def __init__(
        self,
        *,
        seed: int = 0,
        mix: Mapping[str, float] = STORM,
        name: str = "chaos",
        trickle_pause_s: tuple[float, float] = (0.01, 0.12),
        stall_s: float = 0.4,
        silent_max_s: float = 30.0,
    ) -> None:
        unknown = set(mix) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        self.name = name
        self._kinds = [k for k in KINDS if mix.get(k, 0) > 0]
        self._weights = [float(mix[k]) for k in self._kinds]
        self._rng = random.Random(seed)
        self._trickle = trickle_pause_s
        self._stall_s = stall_s
        self._silent_max_s = silent_max_s
        self.requests = 0
        self.streamed = 0
        self.injected: Counter[str] = Counter()
        self.disconnects = 0
        self.server: TestServer | None = None
        self._closing = asyncio.Event()

    @property
    def url(self) -> str:
        assert self.server is not None, "start() first"
        return str(self.server.make_url("/v1"))

    async def start(self) -> ChaosUpstream:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = TestServer(app)
        await self.server.start_server(access_log=None)
        return self

    async def close(self) -> None:
        self._closing.set()
        if self.server is not None:
            await self.server.close()

    def faults(self) -> dict[str, int]:
        """Injected kinds other than `ok`."""
        return {k: n for k, n in sorted(self.injected.items()) if k != "ok"}

    # --- one request --------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        kind = self._rng.choices(self._kinds, self._weights)[0]
        # Every random choice for this request is drawn now, before any await, so the sequence
        # of draws (and so the run) depends on the seed and the arrival order only.
        draw = random.Random(self._rng.getrandbits(64))
        self.injected[kind] += 1
        try:
            body: Any = orjson.loads(await request.read())
        except (orjson.JSONDecodeError, ConnectionError):
            body = None
        stream = isinstance(body, dict) and body.get("stream") is True
        self.streamed += stream
        model = str(body.get("model", "chaos-model")) if isinstance(body, dict) else "chaos-model"
        options = body.get("stream_options") if isinstance(body, dict) else None
        usage = isinstance(options, dict) and options.get("include_usage") is True
        answer = _Answer(model, stream, usage)
        if kind.startswith("status_"):
            return _json_response(int(kind[7:]), _error(int(kind[7:]), f"chaos injected HTTP {kind[7:]}"))
        respond = getattr(self, "_fault_" + kind)
        try:
            response: web.StreamResponse = await respond(request, draw, answer)
        except ConnectionResetError:  # the client went away first (e.g. its attempt timed out)
            self.disconnects += 1
            _abort(request)
            return web.Response(status=500)
        return response

    async def _fault_ok(
        self, request: web.Request, draw: random.Random, answer: _Answer
    ) -> web.StreamResponse:
        if answer.stream:
            return await self._sse(request, answer.frames(), pauses=[0.0] * len(answer.frames()))
        return _json_response(200, answer.completion())

    async def _fault_rate_limit(
        self, request: web.Request, draw: random.Random, answer: _Answer
    ) -> web.StreamResponse:
        hint = "1" if draw.random() < 0.1 else f"{draw.uniform(0, 0.05):.3f}"
        return _json_response(429, _error(429, "rate limited by chaos"), {"Retry-After": hint})

    async def _fault_rate_limit_ms(
        self, request: web.Request, draw: random.Random, answer: _Answer
    ) -> web.StreamResponse:
        hint = str(draw.randint(0, 50))
        return _json_response(429, _error(429, "rate limited by chaos"), {"retry-after-ms": hint})

    async def _fault_reset(
        self, request: web.Request, draw: random.Random, answer: _Answer
    ) -> web.StreamResponse:
        _abort(request)
        return web.Response(status=500)

    async def _fault_silent(
        self, request: web.Request, draw: random.Random, answer: _Answer
    ) -> web.StreamResponse:
        # The handler is cancelled when the client closes the connection (handler_cancellation).
        try:
            async with asyncio.timeout(self._silent_max_s):
                await self._closing.wait()
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            self.disconnects += 1
            raise
        _abort(request)
        return web.Response(status=500)

    async def _fault_trickle(
        self, request: web.Request, draw: random.Random, answer: _Answer
    ) -> web.StreamResponse:
        low, high = self._trickle
        if answer.stream:
            frames = answer.frames(words=draw.randint(4, 16))
            pauses = [0.0] + [draw.uniform(low, high) for _ in frames[1:]]
            if draw.random() < 0.25:
                pauses[draw.randrange(1, len(pauses))] = self._stall_s
            return await self._sse(request, frames, pauses)
        body = orjson.dumps(answer.completion())
        pieces = draw.randint(3, 8)
        size = -(-len(body) // pieces)
        parts = [body[i : i + size] for i in range(0, len(body), size)]
        pauses = [0.0] + [draw.uniform(low, high) for _ in parts[1:]]
        return await self._pieces(request, 200, "application/json", parts, pauses)

    async def _fault_cut(
        self, request: web.Request, draw: random.Random, answer: _Answer
    ) -> web.StreamResponse:
        if answer.stream:
            frames = answer.frames()
            keep = draw.randrange(0, len(frames))  # at least [DONE] is never sent
            partial = frames[keep][: draw.randrange(0, len(frames[keep]))]
            return await self._sse(request, [*frames[:keep], partial], [0.0] * (keep + 1), cut=True)
        body = orjson.dumps(answer.completion())
        part = body[: draw.randrange(0, len(body))]
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.content_length = len(body)
        await response.prepare(request)
        if part:
            await response.write(part)
        _abort(request)
        return response

    async def _fault_malformed(
        self, request: web.Request, draw: random.Random, answer: _Answer
    ) -> web.StreamResponse:
        if answer.stream:
            frames = answer.frames()
            at = draw.randrange(0, len(frames) - 1)
            frames.insert(at, b'data: {"id": "chatcmpl-chaos", "choices": [{"delta": \n\n')
            return await self._sse(request, frames, [0.0] * len(frames))
        body = orjson.dumps(answer.completion())
        return web.Response(status=200, body=body[: len(body) // 2], content_type="application/json")

    async def _fault_wrong_type(
        self, request: web.Request, draw: random.Random, answer: _Answer
    ) -> web.StreamResponse:
        return web.Response(status=200, body=_HTML, content_type="text/html")

    # --- writing ------------------------------------------------------------------------------

    async def _sse(
        self, request: web.Request, frames: list[bytes], pauses: list[float], *, cut: bool = False
    ) -> web.StreamResponse:
        return await self._pieces(request, 200, "text/event-stream", frames, pauses, cut=cut)

    async def _pieces(
        self,
        request: web.Request,
        status: int,
        content_type: str,
        parts: list[bytes],
        pauses: list[float],
        *,
        cut: bool = False,
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=status, headers={"Content-Type": content_type})
        await response.prepare(request)
        for part, pause in zip(parts, pauses, strict=True):
            if pause:
                await asyncio.sleep(pause)
            if part:
                await response.write(part)
        if cut:
            _abort(request)
            return response
        await response.write_eof()
        return response


class _Answer:
    """The well-formed answer to one request, as a whole completion or as SSE frames."""

    __slots__ = ("model", "stream", "usage")

    def __init__(self, model: str, stream: bool, usage: bool) -> None:
        self.model = model
        self.stream = stream
        self.usage = usage

    def completion(self) -> dict[str, Any]:
        return {
            "id": "chatcmpl-chaos",
            "object": "chat.completion",
            "created": 1700000000,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "chaos says hello", "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
        }

    def frames(self, words: int = 3) -> list[bytes]:
        base = {"id": "chatcmpl-chaos", "object": "chat.completion.chunk", "created": 1700000000}
        base["model"] = self.model
        deltas: list[tuple[dict[str, Any], str | None]] = [({"role": "assistant", "content": ""}, None)]
        deltas += [({"content": f"w{i} "}, None) for i in range(words)]
        deltas.append(({}, "stop"))
        chunks: list[dict[str, Any]] = [
            {**base, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": f}]}
            for d, f in deltas
        ]
        if self.usage:
            usage = {"prompt_tokens": 7, "completion_tokens": words, "total_tokens": 7 + words}
            chunks.append({**base, "choices": [], "usage": usage})
        return [b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]


def _error(status: int, message: str) -> dict[str, Any]:
    error_type = "rate_limit_error" if status == 429 else "server_error"
    return {"error": {"message": message, "type": error_type, "param": None, "code": None}}


def _json_response(
    status: int, payload: dict[str, Any], headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(payload), content_type="application/json", headers=headers
    )


def _abort(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()
