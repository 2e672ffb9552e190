"""The built-in `mock` provider: a transport that answers locally in OpenAI wire format.

It needs no key and no network, so the quickstart demo works anywhere, and it injects faults
declaratively for drills (see `astra_sidecar.compiler.table.MockBehavior`): a status code for a seeded share of
requests (with an optional Retry-After), latency before the answer, a delay between stream
chunks, and streams cut after N chunks. The answer goes through the same adapter, retry, breaker
and fallback machinery as a real provider's.

With `toolCalls`, the answer is those tool calls (finish reason `tool_calls`), after the `reply`
text when one is set (no echo): whole in a plain answer; streamed as OpenAI does, each call's
id and name first, then its arguments in three fragments.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from astra_sidecar.compiler.table import Cluster, MockBehavior, MockToolCall
from astra_sidecar.sidecar.clock import Clock
from astra_sidecar.sidecar.protocols.base import UpstreamRequest, Usage
from astra_sidecar.sidecar.protocols.openai.wire import ChunkWriter, completion_id, now_s, tool_call
from astra_sidecar.sidecar.upstream import AttemptTimeouts, UpstreamResponse

_DEFAULT = MockBehavior()


def reply_for(request: Mapping[str, Any], behavior: MockBehavior) -> str:
    if behavior.reply is not None:
        return behavior.reply
    for message in reversed(request.get("messages") or ()):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            text = content if isinstance(content, str) else _text_of_parts(content)
            return f"You said: {text}"
    return "Hello from the astra mock provider."


def _text_of_parts(content: Any) -> str:
    if not isinstance(content, list):
        return ""
    return " ".join(
        str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text"
    )


def _estimate_tokens(request: Mapping[str, Any]) -> int:
    return max(1, len(orjson.dumps(request.get("messages") or [])) // 4)


def _call_ids(calls: tuple[MockToolCall, ...]) -> list[str]:
    stem = completion_id().removeprefix("chatcmpl-")[:16]
    return [f"call_{stem}_{index}" for index in range(len(calls))]


def _argument_pieces(arguments: str, pieces: int = 3) -> list[str]:
    size = max(1, -(-len(arguments) // pieces))
    return [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]


def _tool_call_deltas(calls: tuple[MockToolCall, ...]) -> list[dict[str, Any]]:
    """The streamed form of the calls: id, type and name first, then the arguments in pieces."""
    deltas: list[dict[str, Any]] = []
    for index, (call, call_id) in enumerate(zip(calls, _call_ids(calls), strict=True)):
        head = {"index": index, "id": call_id, "type": "function"}
        deltas.append({"tool_calls": [{**head, "function": {"name": call.name, "arguments": ""}}]})
        deltas += [
            {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
            for piece in _argument_pieces(call.arguments)
        ]
    return deltas


def _completion_tokens(text: str | None, calls: tuple[MockToolCall, ...]) -> int:
    return len((text or "").split()) + sum(max(1, len(call.arguments) // 4) for call in calls)


class _MockResponse:
    def __init__(
        self,
        status: int,
        headers: dict[str, str],
        body: bytes = b"",
        chunks: list[bytes] | None = None,
        clock: Clock | None = None,
        chunk_delay_s: float = 0.0,
    ) -> None:
        self.status = status
        self.headers: Mapping[str, str] = CIMultiDictProxy(CIMultiDict(headers))
        self._body = body
        self._chunks = chunks or []
        self._clock = clock
        self._delay = chunk_delay_s

    async def read(self) -> bytes:
        return self._body

    def ended(self) -> bool:
        return not self._delay  # unpaced: every chunk is already here

    async def chunks(self) -> AsyncIterator[bytes]:
        for index, chunk in enumerate(self._chunks):
            if index and self._delay and self._clock is not None:
                await self._clock.sleep(self._delay)
            yield chunk


class MockTransport:
    """Answers for `mock` clusters; one seeded random source per cluster for fault decisions."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._rngs: dict[str, random.Random] = {}

    @contextlib.asynccontextmanager
    async def open(
        self, cluster: Cluster, request: UpstreamRequest, timeouts: AttemptTimeouts
    ) -> AsyncIterator[UpstreamResponse]:
        del timeouts
        behavior = cluster.mock or _DEFAULT
        body = orjson.loads(request.body)
        if behavior.latency_ms:
            await self._clock.sleep(behavior.latency_ms / 1000.0)
        if self._should_fail(cluster.key, behavior):
            yield self._failure(behavior)
            return
        text = behavior.reply if behavior.tool_calls else reply_for(body, behavior)
        if request.stream:
            yield self._stream(cluster, body, text, behavior)
        else:
            yield self._whole(cluster, body, text, behavior.tool_calls)

    def _should_fail(self, key: str, behavior: MockBehavior) -> bool:
        if behavior.status is None:
            return False
        rng = self._rngs.setdefault(key, random.Random(behavior.seed))
        return rng.random() < behavior.fail_rate

    def _failure(self, behavior: MockBehavior) -> _MockResponse:
        status = behavior.status or 500
        headers = {"Content-Type": "application/json"}
        if behavior.retry_after_ms is not None:
            headers["retry-after-ms"] = str(behavior.retry_after_ms)
        error = {"message": f"mock provider injected HTTP {status}", "type": "server_error", "code": None}
        return _MockResponse(status, headers, orjson.dumps({"error": error}))

    def _whole(
        self, cluster: Cluster, request: Mapping[str, Any], text: str | None, calls: tuple[MockToolCall, ...]
    ) -> _MockResponse:
        prompt = _estimate_tokens(request)
        completion = _completion_tokens(text, calls)
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        if calls:
            message["tool_calls"] = [
                tool_call(call_id, call.name, call.arguments)
                for call, call_id in zip(calls, _call_ids(calls), strict=True)
            ]
        body = {
            "id": completion_id(),
            "object": "chat.completion",
            "created": now_s(),
            "model": cluster.model_id,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if calls else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
        return _MockResponse(200, {"Content-Type": "application/json"}, orjson.dumps(body))

    def _stream(
        self, cluster: Cluster, request: Mapping[str, Any], text: str | None, behavior: MockBehavior
    ) -> _MockResponse:
        options = request.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        writer = ChunkWriter(model=cluster.model_id, include_usage=include_usage)
        words = text.split(" ") if text is not None else []
        calls = behavior.tool_calls
        payloads = [writer.chunk({"role": "assistant", "content": ""})]
        payloads += [writer.chunk({"content": (" " if i else "") + w}) for i, w in enumerate(words)]
        payloads += [writer.chunk(delta) for delta in _tool_call_deltas(calls)]
        payloads.append(writer.chunk({}, "tool_calls" if calls else "stop"))
        if include_usage:
            completion = _completion_tokens(text, calls) if calls else len(words)
            payloads.append(writer.usage_chunk(Usage(_estimate_tokens(request), completion)))
        frames = [b"data: " + p + b"\n\n" for p in payloads] + [b"data: [DONE]\n\n"]
        if behavior.cut_after_chunks is not None:
            frames = frames[: behavior.cut_after_chunks]
        return _MockResponse(
            200,
            {"Content-Type": "text/event-stream"},
            chunks=frames,
            clock=self._clock,
            chunk_delay_s=behavior.chunk_delay_ms / 1000.0,
        )

    async def retire_except(self, keep: set[str]) -> None:
        for key in [k for k in self._rngs if k not in keep]:
            del self._rngs[key]

    async def close(self) -> None:
        self._rngs.clear()
