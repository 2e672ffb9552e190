"""A fake OpenAI-compatible upstream: a real aiohttp server, scripted per test.

Each incoming request takes the next `Step` from the script (the last step repeats when the
script runs out). Steps answer JSON, stream SSE (optionally cut mid-way or trickled), hang,
or reset the connection. Every request is recorded with its headers and parsed body.

For `POST /v1/responses` (OpenAI's Responses API, as its reference documents it:
https://platform.openai.com/docs/api-reference/responses/object and
https://platform.openai.com/docs/api-reference/responses-streaming), `response_text` and
`response_call` build whole Response objects, `response_events` their typed event stream, and a
`Step("events", chunks=…)` sends it (`event: <type>` lines, no `[DONE]`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class Step:
    kind: str = "json"  # json | sse | events | hang | reset | embeddings (answered from the request)
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


def _response_usage(usage: tuple[int, int]) -> dict[str, Any]:
    return {
        "input_tokens": usage[0],
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage[1],
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": sum(usage),
    }


def response_object(
    output: list[dict[str, Any]], model: str = "gpt-up", *, usage: tuple[int, int] = (12, 3), rid: str = "resp_up1"
) -> dict[str, Any]:
    return {
        "id": rid, "object": "response", "created_at": 1700000000, "status": "completed", "error": None,
        "incomplete_details": None, "instructions": None, "max_output_tokens": None, "model": model,
        "output": output, "parallel_tool_calls": True, "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None}, "store": False, "temperature": 1.0,
        "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": 1.0,
        "truncation": "disabled", "usage": _response_usage(usage), "metadata": {},
    }  # fmt: skip


def response_text(text: str, model: str = "gpt-up", **kwargs: Any) -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": []}
    item = {"id": "msg_up1", "type": "message", "status": "completed", "role": "assistant", "content": [part]}
    return response_object([item], model, **kwargs)


def response_call(
    call_id: str, name: str, arguments: str, *, namespace: str | None = None, **kwargs: Any
) -> dict[str, Any]:
    item: dict[str, Any] = {"id": "fc_up1", "type": "function_call", "status": "completed", "call_id": call_id}
    if namespace is not None:
        item["namespace"] = namespace
    item.update(name=name, arguments=arguments)
    return response_object([item], **kwargs)


def response_events(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The typed events OpenAI streams for `response`, numbered from 0."""
    started = {**response, "status": "in_progress", "output": [], "usage": None}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
    ]
    for index, item in enumerate(response["output"]):
        where = {"item_id": item["id"], "output_index": index}
        events.append({"type": "response.output_item.added", "output_index": index,
                       "item": {**item, "status": "in_progress", **({"content": []} if "content" in item else {})}})  # fmt: skip
        if item["type"] == "message":
            text = item["content"][0]["text"]
            empty = {"type": "output_text", "text": "", "annotations": []}
            events.append({"type": "response.content_part.added", **where, "content_index": 0, "part": empty})
            events.append({"type": "response.output_text.delta", **where, "content_index": 0, "delta": text})
            events.append({"type": "response.output_text.done", **where, "content_index": 0, "text": text})
            events.append({"type": "response.content_part.done", **where, "content_index": 0, "part": item["content"][0]})
        elif item["type"] == "function_call":
            events.append({"type": "response.function_call_arguments.delta", **where, "delta": item["arguments"]})
            events.append({"type": "response.function_call_arguments.done", **where, "arguments": item["arguments"]})
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    events.append({"type": "response.completed", "response": response})
    return [{**event, "sequence_number": n} for n, event in enumerate(events)]


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


EMBEDDING_SIZE = 1536  # text-embedding-3-small's default output size


def fake_embedding(text: str, size: int) -> list[float]:
    """A deterministic vector, exact in float32 (multiples of 1/8)."""
    return [(len(text) + i) / 8 for i in range(size)]


def embeddings_answer(body: Any) -> tuple[int, dict[str, Any]]:
    """(status, body) as https://platform.openai.com/docs/api-reference/embeddings/create answers:
    one `embedding` object per input, floats or base64 (little-endian float32) per
    `encoding_format`, and `usage`. Token arrays count one token per id; text one per word."""
    inputs = body.get("input") if isinstance(body, dict) else None
    if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
        inputs = [inputs]
    encoding = body.get("encoding_format", "float") if isinstance(body, dict) else None
    if not isinstance(inputs, list) or not inputs or encoding not in ("float", "base64"):
        return 400, error(400, "'input' or 'encoding_format' is invalid").body
    size = body.get("dimensions", EMBEDDING_SIZE)
    data, tokens = [], 0
    for index, item in enumerate(inputs):
        text = item if isinstance(item, str) else " ".join(map(str, item))
        tokens += len(text.split())
        vector = fake_embedding(text, size)
        value: Any = vector
        if encoding == "base64":
            value = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": value})
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return 200, {"object": "list", "data": data, "model": body.get("model"), "usage": usage}


class FakeOpenAI:
    def __init__(self, *steps: Step) -> None:
        self.script: list[Step] = list(steps) or [Step(body=completion())]
        self.received: list[Received] = []
        self.disconnects = 0
        self.release = asyncio.Event()
        self.server: TestServer | None = None
        #: When set, each request's step is chosen from its body instead of the script.
        self.responder: Callable[[Any], Step] | None = None

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
        step = self.responder(body) if self.responder is not None else self._next()
        if step.kind == "hang":
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.disconnects += 1
                raise
            return web.Response(status=500)
        if step.kind == "embeddings":
            status, answer = embeddings_answer(body)
            return web.json_response(answer, status=status)
        if step.kind == "reset":
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        if step.kind in ("sse", "events"):
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
                if step.kind == "events":
                    await response.write(f"event: {chunk['type']}\ndata: {json.dumps(chunk)}\n\n".encode())
                else:
                    await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            if step.kind == "sse":
                await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnects += 1
            raise
        return response
