"""A fake Anthropic Messages API: a real aiohttp app speaking the published wire format.

Written from Anthropic's documented format (docs.claude.com Messages / streaming / errors pages,
and the type definitions of the official SDK), not from the sidecar's code:

- `POST /v1/messages` needs `anthropic-version` and a key (`x-api-key` or `Authorization:
  Bearer`); the body is checked the way the real API checks it (model, max_tokens, user/assistant
  alternation starting with user, non-empty content, every `tool_use` answered by a `tool_result`
  in the next user turn, at most 4 `cache_control` breakpoints, temperature 0-1). A violation is a
  400 `invalid_request_error`, so an end-to-end test catches a bad translation.
- Plain answers are a `Message` object; with `"stream": true` the same message is sent as named
  SSE events (message_start, content_block_start/delta/stop with text_delta, input_json_delta in
  fragments (the first one empty, as the API sends it), thinking/signature deltas, message_delta
  with cumulative usage, message_stop) with `ping` events interleaved.
- Scripted per test: push `Reply`, `ErrorReply`, `StreamError` (an `event: error` after N events)
  or `StreamCut` (the connection dropped after N events and half of the next one) onto the queue;
  when the queue is empty the fake echoes the last user text. Every request is recorded.

Usage::

    fake = FakeAnthropic()
    fake.push(Reply(tool_message(ToolUse("toolu_1", "get_weather", {"city": "Paris"}))))
    server = TestServer(fake.app()); await server.start_server()
    ... fake.requests[0].body["messages"] ...
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Json = dict[str, Any]

DEFAULT_MODEL = "claude-test"
SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}


# --- building messages --------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolUse:
    id: str
    name: str
    input: Json


def usage(
    input_tokens: int = 10, output_tokens: int = 5, *, cache_creation: int = 0, cache_read: int = 0
) -> Json:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": cache_creation,
        "cache_read_input_tokens": cache_read,
    }


def message(
    content: list[Json],
    *,
    stop_reason: str = "end_turn",
    stop_sequence: str | None = None,
    usage_: Json | None = None,
    id: str = "msg_01FakeMessage",
    model: str = DEFAULT_MODEL,
) -> Json:
    return {
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage_ or usage(),
    }


def signed_thinking(thinking: str) -> Json:
    """A thinking block as the API returns it; the fake's signature is a digest of the text, so a
    block sent back altered (or not at all) is refused, as the real API refuses it."""
    digest = hashlib.sha256(thinking.encode()).hexdigest()[:32]
    return {"type": "thinking", "thinking": thinking, "signature": "EqQBCgIYAh" + digest}


def text_message(text: str, **kwargs: Any) -> Json:
    return message([{"type": "text", "text": text}], **kwargs)


def tool_message(*calls: ToolUse, text: str | None = None, **kwargs: Any) -> Json:
    blocks: list[Json] = [{"type": "text", "text": text}] if text else []
    blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.input} for c in calls]
    kwargs.setdefault("stop_reason", "tool_use")
    return message(blocks, **kwargs)


# --- the SSE encoder ----------------------------------------------------------------------------


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _block_events(index: int, block: Json, text_chunk: int, json_chunk: int) -> Iterator[Json]:
    kind = block["type"]
    if kind == "text":
        yield {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
        for piece in _pieces(block["text"], text_chunk):
            yield {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "text_delta", "text": piece},
            }
    elif kind == "tool_use":
        start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        yield {"type": "content_block_start", "index": index, "content_block": start}
        arguments = json.dumps(block["input"]) if block["input"] else ""
        for piece in ["", *(_pieces(arguments, json_chunk) if arguments else [])]:
            delta = {"type": "input_json_delta", "partial_json": piece}
            yield {"type": "content_block_delta", "index": index, "delta": delta}
    elif kind == "thinking":
        yield {
            "type": "content_block_start",
            "index": index,
            "content_block": {"type": "thinking", "thinking": ""},
        }
        for piece in _pieces(block["thinking"], text_chunk):
            delta = {"type": "thinking_delta", "thinking": piece}
            yield {"type": "content_block_delta", "index": index, "delta": delta}
        delta = {"type": "signature_delta", "signature": block.get("signature", "sig")}
        yield {"type": "content_block_delta", "index": index, "delta": delta}
    else:
        yield {"type": "content_block_start", "index": index, "content_block": block}
    yield {"type": "content_block_stop", "index": index}


def message_events(msg: Json, *, text_chunk: int = 4, json_chunk: int = 6, ping_every: int = 3) -> list[Json]:
    """The streamed form of a whole message: every event's `data` object, in order."""
    start_usage = dict(msg["usage"], output_tokens=1)
    start = dict(msg, content=[], stop_reason=None, stop_sequence=None, usage=start_usage)
    events: list[Json] = [{"type": "message_start", "message": start}, {"type": "ping"}]
    for index, block in enumerate(msg["content"]):
        for n, event in enumerate(_block_events(index, block, text_chunk, json_chunk), 1):
            events.append(event)
            if ping_every and n % ping_every == 0:
                events.append({"type": "ping"})
    delta = {"stop_reason": msg["stop_reason"], "stop_sequence": msg["stop_sequence"]}
    events.append(
        {"type": "message_delta", "delta": delta, "usage": {"output_tokens": msg["usage"]["output_tokens"]}}
    )
    events.append({"type": "message_stop"})
    return events


def error_event(error_type: str = "overloaded_error", error_message: str = "Overloaded") -> Json:
    return {"type": "error", "error": {"type": error_type, "message": error_message}}


def encode_event(data: Json, *, newline: str = "\n") -> bytes:
    """One named SSE event; the event name is the data's `type`, as Anthropic sends it."""
    body = json.dumps(data, separators=(",", ":"))
    return f"event: {data['type']}{newline}data: {body}{newline}{newline}".encode()


def encode_events(events: Iterable[Json], *, newline: str = "\n") -> bytes:
    return b"".join(encode_event(event, newline=newline) for event in events)


def sse_bytes(msg: Json, **options: Any) -> bytes:
    """The whole SSE body for a message (see `message_events` for the options)."""
    return encode_events(message_events(msg, **options))


def error_body(error_type: str, error_message: str) -> Json:
    return {
        "type": "error",
        "error": {"type": error_type, "message": error_message},
        "request_id": "req_fake",
    }


# --- scripts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A message, sent whole or streamed depending on the request's `stream`."""

    message: Json
    headers: Mapping[str, str] = field(default_factory=dict)
    text_chunk: int = 4
    json_chunk: int = 6
    ping_every: int = 3
    write_size: int | None = None  # stream: split the body into network writes of this size


@dataclass(frozen=True)
class ErrorReply:
    status: int
    error_type: str
    error_message: str = "fake upstream error"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamError:
    """Stream `message`, but send `event: error` after `after_events` events (HTTP 200).

    With `pause_s`, the error is written that long after the events (a separate network write),
    so a proxy has certainly forwarded the first events before the error arrives."""

    message: Json
    after_events: int
    error_type: str = "overloaded_error"
    error_message: str = "Overloaded"
    pause_s: float = 0.0


@dataclass(frozen=True)
class StreamCut:
    """Stream `message`, then drop the connection after `after_events` events and half the next."""

    message: Json
    after_events: int


Script = Reply | ErrorReply | StreamError | StreamCut


@dataclass(frozen=True)
class Recorded:
    path: str
    headers: Mapping[str, str]
    body: Any


# --- request validation (the rules the real API enforces) -----------------------------------------


def _content_blocks(msg: Json) -> list[Json]:
    content = msg.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content or [])


def _tool_pairing_error(messages: list[Json]) -> str | None:
    for i, msg in enumerate(messages):
        uses = {b["id"] for b in _content_blocks(msg) if b.get("type") == "tool_use"}
        following = _content_blocks(messages[i + 1]) if i + 1 < len(messages) else []
        results = {b.get("tool_use_id") for b in following if b.get("type") == "tool_result"}
        if not uses <= results:
            return "messages: `tool_use` ids were found without `tool_result` blocks immediately after"
    return None


def _count_cache_marks(value: Any) -> int:
    if isinstance(value, dict):
        return ("cache_control" in value) + sum(_count_cache_marks(v) for v in value.values())
    if isinstance(value, list):
        return sum(_count_cache_marks(v) for v in value)
    return 0


def _messages_error(messages: Any) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    for i, msg in enumerate(messages):
        if msg.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if i and messages[i - 1]["role"] == msg["role"]:
            return "messages: roles must alternate between 'user' and 'assistant'"
        final_assistant = i == len(messages) - 1 and msg["role"] == "assistant"
        if not _content_blocks(msg) and not final_assistant:
            return "messages: all messages must have non-empty content except for the optional final assistant message"
        if any(b.get("type") == "text" and not b.get("text") for b in _content_blocks(msg)):
            return f"messages.{i}: text content blocks must be non-empty"
    if messages[0]["role"] != "user":
        return "messages: first message must use the 'user' role"
    return _tool_pairing_error(messages)


def _thinking_error(body: Json) -> str | None:
    """Extended thinking's documented rules (docs.claude.com, build-with-claude/extended-thinking):
    budget ≥ 1024 and < max_tokens; no temperature/top_k; tool_choice auto or none; with tools, the
    last assistant turn before the final tool results starts with its (signed, unchanged) thinking."""
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or budget < 1024:
        return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
    if budget >= body["max_tokens"]:
        return "`max_tokens` must be greater than `thinking.budget_tokens`"
    if "temperature" in body or "top_k" in body:
        return "`temperature` and `top_k` may not be set while thinking is enabled"
    if (body.get("tool_choice") or {}).get("type") not in (None, "auto", "none"):
        return "Thinking may not be enabled when tool_choice forces tool use."
    return _thinking_turn_error(body.get("messages") or [])


def _thinking_turn_error(messages: list[Json]) -> str | None:
    last = messages[-1] if messages else {}
    if not any(b.get("type") == "tool_result" for b in _content_blocks(last)) or len(messages) < 2:
        return None
    blocks = _content_blocks(messages[-2])
    first = blocks[0] if blocks else {}
    if first.get("type") == "redacted_thinking":
        return None
    if first.get("type") != "thinking":
        return (
            f"messages.{len(messages) - 2}.content.0.type: Expected `thinking` or `redacted_thinking`, "
            f"but found `{first.get('type')}`. When `thinking` is enabled, a final `assistant` message "
            "must start with a thinking block."
        )
    if first != signed_thinking(str(first.get("thinking"))):
        return f"messages.{len(messages) - 2}.content.0: Invalid `signature` in `thinking` block"
    return None


def validate_request(headers: Mapping[str, str], body: Any) -> tuple[int, str, str] | None:
    """(status, error type, message) for a request the real API would refuse, else None."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if not lowered.get("x-api-key") and not lowered.get("authorization", "").startswith("Bearer "):
        return 401, "authentication_error", "x-api-key header is required"
    if not lowered.get("anthropic-version"):
        return 400, "invalid_request_error", "anthropic-version: header is required"
    if not isinstance(body, dict):
        return 400, "invalid_request_error", "body: expected a JSON object"
    if not isinstance(body.get("model"), str):
        return 400, "invalid_request_error", "model: Field required"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return 400, "invalid_request_error", "max_tokens: Field required"
    temperature = body.get("temperature")
    if temperature is not None and not 0 <= temperature <= 1:
        return 400, "invalid_request_error", "temperature: range: 0..1"
    if _count_cache_marks(body) > 4:
        return 400, "invalid_request_error", "A maximum of 4 blocks with cache_control may be provided."
    problem = _messages_error(body.get("messages")) or _thinking_error(body)
    return (400, "invalid_request_error", problem) if problem else None


# --- the app ------------------------------------------------------------------------------------


class FakeAnthropic:
    """Scriptable fake. `requests` records every request received (headers lower-cased)."""

    def __init__(self, *, validate: bool = True) -> None:
        self.validate = validate
        self.script: deque[Script] = deque()
        self.requests: list[Recorded] = []
        #: Answers chosen from the request when nothing is scripted (a client's own side calls
        #: make a fixed order fragile); None: echo the last user text.
        self.responder: Callable[[Any], Script] | None = None

    def push(self, *scripts: Script) -> None:
        self.script.extend(scripts)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        return app

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(Recorded(request.path, headers, body))
        problem = validate_request(headers, body) if self.validate else None
        if problem:
            return _error_response(ErrorReply(*problem))
        if self.script:
            script = self.script.popleft()
        else:
            script = self.responder(body) if self.responder is not None else Reply(_echo(body))
        if isinstance(script, ErrorReply):
            return _error_response(script)
        if isinstance(body, dict) and body.get("stream"):
            return await _stream(request, script)
        if isinstance(script, Reply):
            return web.json_response(script.message, headers={"request-id": "req_fake", **script.headers})
        return _error_response(ErrorReply(500, "api_error", "fake: a stream script for a plain request"))


def _echo(body: Any) -> Json:
    last = (body or {}).get("messages", [{}])[-1]
    texts = [b.get("text", "") for b in _content_blocks(last) if b.get("type") == "text"]
    return text_message("echo: " + " ".join(texts))


def _error_response(script: ErrorReply) -> web.Response:
    return web.json_response(
        error_body(script.error_type, script.error_message),
        status=script.status,
        headers={"request-id": "req_fake", **script.headers},
    )


async def _stream(request: web.Request, script: Script) -> web.StreamResponse:
    response = web.StreamResponse(headers={**SSE_HEADERS, "request-id": "req_fake"})
    await response.prepare(request)
    if isinstance(script, Reply):
        events = message_events(
            script.message,
            text_chunk=script.text_chunk,
            json_chunk=script.json_chunk,
            ping_every=script.ping_every,
        )
        data = encode_events(events)
        size = script.write_size or len(data)
        for i in range(0, len(data), size):
            await response.write(data[i : i + size])
    elif isinstance(script, StreamError):
        events = message_events(script.message)[: script.after_events]
        failure = encode_event(error_event(script.error_type, script.error_message))
        if script.pause_s:
            await response.write(encode_events(events))
            await asyncio.sleep(script.pause_s)
            await response.write(failure)
        else:
            await response.write(encode_events(events) + failure)
    elif isinstance(script, StreamCut):
        events = message_events(script.message)
        partial = encode_event(events[script.after_events])
        await response.write(encode_events(events[: script.after_events]) + partial[: len(partial) // 2])
        assert request.transport is not None
        request.transport.abort()
        return response
    await response.write_eof()
    return response
