"""Builders for the OpenAI Chat Completions shapes every translating adapter emits.

The shapes follow the official spec (openai/openai-openapi `openapi.yaml`:
`CreateChatCompletionResponse`, `CreateChatCompletionStreamResponse`, `CompletionUsage`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from astra_sidecar.sidecar.protocols.base import Usage

Json = dict[str, Any]

#: Upstream statuses the sidecar treats as provider-side trouble (retry + breaker) by default.
TRANSIENT_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def now_s() -> int:
    return int(time.time())


def usage_json(usage: Usage, *, report_reasoning: bool = False) -> Json:
    """OpenAI `CompletionUsage`. `prompt_tokens_details.cache_write_tokens` and
    `completion_tokens_details.reasoning_tokens` appear only when non-zero, so adapters that never
    set them keep their exact output; `report_reasoning` shows the reasoning count even when it is
    0, for providers whose usage always carries one (Gemini's `thoughtsTokenCount`)."""
    prompt_details: Json = {"cached_tokens": usage.cached_tokens}
    if usage.cache_write_tokens:
        prompt_details["cache_write_tokens"] = usage.cache_write_tokens
    out: Json = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": prompt_details,
    }
    if usage.reasoning_tokens or report_reasoning:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


def completion(
    *,
    id: str,
    model: str,
    created: int,
    message: Json,
    finish_reason: str,
    usage: Usage | None,
) -> bytes:
    body: Json = {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
    }
    if usage is not None:
        body["usage"] = usage_json(usage)
    return orjson.dumps(body)


def assistant_message(content: str | None, tool_calls: list[Json] | None = None) -> Json:
    message: Json = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def tool_call(id: str, name: str, arguments: str) -> Json:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}


class ChunkWriter:
    """Serialises `chat.completion.chunk` payloads for one stream (shared id/model/created).

    With `include_usage`, every chunk carries `"usage": null` and `usage_chunk` emits the final
    usage-only chunk, as OpenAI does with `stream_options.include_usage`."""

    __slots__ = ("_base", "_content_head", "_content_tail", "_head", "_tail", "include_usage")

    def __init__(self, *, model: str, include_usage: bool, id: str | None = None, created: int | None = None):
        self.include_usage = include_usage
        self._base: Json = {
            "id": id or completion_id(),
            "object": "chat.completion.chunk",
            "created": created if created is not None else now_s(),
            "model": model,
        }
        # Every chunk of the stream shares these bytes: only the choice is serialised per chunk.
        self._head = orjson.dumps(self._base)[:-1] + b',"choices":[{"index":'
        self._tail = b'}],"usage":null}' if include_usage else b"}]}"
        self._content_head = self._head + b'0,"delta":{"content":'
        self._content_tail = b'},"logprobs":null,"finish_reason":null' + self._tail

    def chunk(self, delta: Json, finish_reason: str | None = None, index: int = 0) -> bytes:
        """One choice's delta; `index` is the choice index (`n` > 1 answers). The bytes are those
        of `orjson.dumps` of the whole chunk (id, object, created, model, choices[, usage])."""
        finish = b"null" if finish_reason is None else orjson.dumps(finish_reason)
        return b"".join(
            (self._head, b"%d" % index, b',"delta":', orjson.dumps(delta), b',"logprobs":null,"finish_reason":',
             finish, self._tail)
        )  # fmt: skip

    def content(self, text: str) -> bytes:
        """`chunk({"content": text})`, the usual chunk of a translated stream, with less to build."""
        return self._content_head + orjson.dumps(text) + self._content_tail

    def usage_chunk(self, usage: Usage, *, report_reasoning: bool = False) -> bytes:
        body = dict(self._base)
        body["choices"] = []
        body["usage"] = usage_json(usage, report_reasoning=report_reasoning)
        return orjson.dumps(body)


def openai_error_type(status: int) -> str:
    """The OpenAI error `type` for an HTTP status the sidecar returns."""
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 404:
        return "not_found_error"
    if status == 429:
        return "rate_limit_error"
    if status in (408, 504):
        return "timeout"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """`retry-after-ms` (milliseconds) or `retry-after` (seconds; HTTP dates are ignored)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw:
        try:
            return max(0.0, float(raw))
        except ValueError:
            return None
    return None


def client_status(upstream_status: int) -> int:
    """The status the client sees for an upstream error status (provider extras normalised)."""
    if upstream_status == 529:
        return 503
    if upstream_status == 422:
        return 400
    if upstream_status < 400 or upstream_status > 599:
        return 502
    return upstream_status
