"""Anthropic Messages API adapter (provider `claude`, wire `anthropic`).

`POST {base_url}/v1/messages` with `x-api-key` (or `Authorization: Bearer` when the cluster's
auth style is `bearer`), `anthropic-version: 2023-06-01`; the cluster's extra headers (e.g.
`anthropic-beta`) are added, lower-cased, and may override the version but never the auth header.

Quirks handled (reference: shared/reference/providers.md §2, §7):

Request
- `system`/`developer` messages, wherever they appear, are hoisted into top-level `system` text
  blocks. With `agent.prompt_cache.system_prompt`, the last block of the FIRST system message
  (the agent's own prompt, which the policy puts first) gets `cache_control: {"type":
  "ephemeral"}`: the cached prefix is tools + the agent's prompt, which is stable, while later
  client system messages may vary per request (a breakpoint on varying text would pay a cache
  write every time).
- Turns alternate user/assistant: consecutive same-role turns are merged, empty turns dropped,
  `tool_result` blocks are moved ahead of text inside a user turn, and a placeholder user turn
  (".") is inserted when the conversation would otherwise start with the assistant (or is empty).
  A final assistant turn is a prefill: its trailing whitespace is stripped (Anthropic rejects it).
- Consecutive `tool` messages become ONE user turn of `tool_result` blocks.
- Assistant `tool_calls` become `tool_use` blocks; `arguments` (a JSON string) is parsed into the
  `input` object. Invalid JSON, or JSON that is not an object, is the client's mistake → 400.
  An empty arguments string means `{}`.
- `max_tokens` is required: `max_completion_tokens ?? max_tokens`, else the agent's
  `max_output_tokens`, else 4096.
- `stop` (string or list) → `stop_sequences`; `user`/`safety_identifier` → `metadata.user_id`;
  `top_k` (an extension some clients send) passes through; `top_p` is dropped when `temperature`
  is also set (recent Claude models reject the pair); `n` > 1 → 400.
- Images: `data:` URLs → base64 source (`image/jpg` normalised to `image/jpeg`), http(s) → url
  source. Audio/file parts, custom tools and legacy `functions` → 400 (no Anthropic equivalent).
- Tools: `parameters` → `input_schema` (default `{"type": "object", "properties": {}}`),
  `strict: true` kept; with `agent.prompt_cache.tools` the last tool gets `cache_control`.
  `tool_choice`: auto → auto, none → none, required → any, named → tool, `allowed_tools` →
  the tool list filtered to the allowed names with auto/any; `parallel_tool_calls: false` →
  `disable_parallel_tool_use: true` (not on `none`, which has no such field).
- JSON mode. `json_schema` with a schema → native structured outputs,
  `output_config.format = {"type": "json_schema", "schema": ...}` (name/description/strict
  dropped: Anthropic always constrains). `json_object` (and `json_schema` without a schema) has no
  native schema-free equivalent, so it is emulated with a forced tool, `json_response`, whose
  input schema is any object: tool_choice `{"type": "tool"}` (or `{"type": "any"}` when client
  tools stay callable, so the model either calls a client tool or answers in JSON). Its input is
  returned as the message *content* (a JSON string), streamed `input_json_delta` fragments become
  content fragments, and a turn whose only call was `json_response` finishes with `stop`. The
  emulation is skipped when the client forces its own call (`required`, named, `allowed_tools`)
  or already has a tool called `json_response`.
- Dropped (no Anthropic equivalent): `seed`, penalties, `logprobs`/`top_logprobs`, `logit_bias`,
  `service_tier`, `store`, OpenAI `metadata`, `stream_options` (honoured locally),
  `reasoning_effort` (thinking is never enabled: its extra constraints on temperature, max_tokens
  and signature round-trips cannot be met by OpenAI clients), `prediction`, `modalities`, ...

Response
- Text blocks are concatenated into `content`; `tool_use` blocks become `tool_calls` with
  `arguments` = the JSON-serialised `input`; `thinking`/`redacted_thinking` blocks are dropped.
- `stop_reason`: end_turn/stop_sequence/pause_turn → stop, max_tokens and
  model_context_window_exceeded → length, tool_use → tool_calls, refusal → content_filter.
- Usage: Anthropic's `input_tokens` excludes cache reads/writes, so prompt_tokens = input +
  cache_creation + cache_read, cached_tokens = cache_read, completion = output_tokens.

Stream (named SSE events, decoded with `sidecar.sse.SseDecoder` at any byte boundary)
- message_start → first chunk (role); text_delta → content; tool_use start → tool-call header
  chunk (index = position among tool calls, not content blocks); input_json_delta → arguments
  fragments, forwarded unparsed (a tool that streamed no arguments gets `{}` at block stop, as in
  the non-streamed answer); thinking/signature/citations deltas and ping are ignored; unknown
  events are ignored; message_delta carries the stop reason and cumulative usage; message_stop →
  finish chunk, then the usage chunk when `stream_options.include_usage` is true.
- An `error` event raises `UpstreamStreamError` with the mapped Failure; EOF without
  message_stop (a cut) raises `UpstreamStreamError` (502, code `upstream_stream_cut`).

Errors
- Body `{"type": "error", "error": {"type": ..., "message": ...}}`; classified by HTTP status and
  the structured `error.type` (never the message text). 529 overloaded → 503; billing_error →
  429 `insufficient_quota` (not retryable); retryable: 429, 500, 502, 503, 504, 529; the breaker
  counts 429 and 5xx (provider-side); `retry-after-ms` / `retry-after` become `retry_after_s`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from compiler.table import Agent, Cluster
from sidecar.errors import (
    ClientError,
    UpstreamMalformedError,
    UpstreamStatusError,
    UpstreamStreamError,
    malformed_failure,
)
from sidecar.protocols.anthropic.wire import messages_url, request_headers
from sidecar.protocols.base import AuthMaterial, Body, Completion, Failure, UpstreamRequest, Usage
from sidecar.protocols.openai import wire as shapes
from sidecar.sse import SseDecoder, SseEvent

Json = dict[str, Any]

DEFAULT_MAX_TOKENS = 4096
JSON_TOOL_NAME = "json_response"
PLACEHOLDER_USER_TEXT = "."
EPHEMERAL: Json = {"type": "ephemeral"}

_JSON_TOOL: Json = {
    "name": JSON_TOOL_NAME,
    "description": "Give your complete answer to the user as one JSON object: the input of this tool.",
    "input_schema": {"type": "object"},
}

_IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

FINISH_REASONS: Mapping[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

#: The HTTP status Anthropic uses for each error type (used for `event: error` mid-stream).
ERROR_TYPE_STATUS: Mapping[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504, 529})


# --- request ------------------------------------------------------------------------------------


def _unsupported(what: str, *, code: str = "unsupported_parameter", param: str | None = None) -> ClientError:
    return ClientError(400, f"{what} is not supported by provider claude", code=code, param=param)


def _parts(content: Any) -> list[Json]:
    """The content parts of a message that is not a plain string: an array of objects, or a 400."""
    if content is None:
        return []
    if not isinstance(content, list) or not all(isinstance(part, dict) for part in content):
        raise ClientError(
            400,
            "message content must be a string or an array of objects",
            code="invalid_content",
            param="messages",
        )
    return content


def _text_of_parts(content: Any, role: str) -> list[Json]:
    """Text blocks of a system/developer message (string or text parts)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[Json] = []
    for part in _parts(content):
        if part.get("type") != "text":
            raise _unsupported(
                f"a {part.get('type')!r} part in a {role} message",
                code="unsupported_content",
                param="messages",
            )
        if part.get("text"):
            blocks.append({"type": "text", "text": part["text"]})
    return blocks


def _image_block(part: Json) -> Json:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise ClientError(400, "image_url part without a url", code="invalid_image_url", param="messages")
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    if not url.startswith("data:"):
        raise ClientError(
            400, "image_url must be an http(s) or data: URL", code="invalid_image_url", param="messages"
        )
    header, sep, data = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    media_type = "image/jpeg" if media_type == "image/jpg" else media_type
    if not sep or encoding != "base64":
        raise ClientError(
            400, "data: image URLs must be base64-encoded", code="invalid_image_url", param="messages"
        )
    if media_type not in _IMAGE_MEDIA_TYPES:
        raise _unsupported(f"image type {media_type!r}", code="unsupported_content", param="messages")
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _content_blocks(content: Any) -> list[Json]:
    """Blocks of user/assistant/tool content: text, refusal (as text) and image parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[Json] = []
    for part in _parts(content):
        kind = part.get("type")
        if kind == "text" or kind == "refusal":
            text = part.get(kind)
            if text:
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url":
            blocks.append(_image_block(part))
        else:
            raise _unsupported(f"content part type {kind!r}", code="unsupported_content", param="messages")
    return blocks


def _tool_input(arguments: Any) -> Json:
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    try:
        parsed = orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise ClientError(
            400,
            "assistant tool_calls[].function.arguments is not valid JSON",
            code="invalid_tool_arguments",
            param="messages",
        ) from exc
    if not isinstance(parsed, dict):
        raise ClientError(
            400,
            "assistant tool_calls[].function.arguments must be a JSON object",
            code="invalid_tool_arguments",
            param="messages",
        )
    return parsed


def _tool_use_block(call: Any) -> Json:
    function = (call.get("function") or {}) if isinstance(call, dict) else None
    if not isinstance(function, dict):
        raise ClientError(
            400,
            "assistant tool_calls[] must be objects with a function object",
            code="invalid_tool_call",
            param="messages",
        )
    if call.get("type", "function") != "function":
        raise _unsupported(f"tool call type {call.get('type')!r}", param="messages")
    return {
        "type": "tool_use",
        "id": call.get("id"),
        "name": function.get("name"),
        "input": _tool_input(function.get("arguments")),
    }


def _assistant_blocks(message: Json) -> list[Json]:
    blocks = _content_blocks(message.get("content"))
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise ClientError(
            400, "assistant tool_calls must be an array", code="invalid_tool_call", param="messages"
        )
    blocks.extend(_tool_use_block(call) for call in calls)
    return blocks


def _tool_result_block(message: Json) -> Json:
    tool_use_id = message.get("tool_call_id")
    if not tool_use_id:
        raise ClientError(
            400, "tool message without tool_call_id", code="missing_tool_call_id", param="messages"
        )
    block: Json = {"type": "tool_result", "tool_use_id": tool_use_id}
    content = message.get("content")
    if isinstance(content, str):
        if content:
            block["content"] = content
    else:
        parts = _content_blocks(content)
        if parts:
            block["content"] = parts
    return block


def _turn(message: Json) -> tuple[str, list[Json]]:
    role = message.get("role")
    if role == "user":
        return "user", _content_blocks(message.get("content"))
    if role == "assistant":
        return "assistant", _assistant_blocks(message)
    if role == "tool":
        return "user", [_tool_result_block(message)]
    raise _unsupported(f"message role {role!r}", code="unsupported_role", param="messages")


def _results_first(blocks: list[Json]) -> list[Json]:
    results = [b for b in blocks if b["type"] == "tool_result"]
    if not results or len(results) == len(blocks):
        return blocks
    return results + [b for b in blocks if b["type"] != "tool_result"]


def _strip_prefill(turns: list[Json]) -> None:
    last = turns[-1]
    if last["role"] != "assistant" or last["content"][-1]["type"] != "text":
        return
    text = last["content"][-1]["text"].rstrip()
    if text:
        last["content"][-1] = {**last["content"][-1], "text": text}
    else:
        last["content"].pop()
        if not last["content"]:
            turns.pop()


def _merge_turns(turns: Iterable[tuple[str, list[Json]]]) -> list[Json]:
    merged: list[Json] = []
    for role, blocks in turns:
        if not blocks:
            continue
        if merged and merged[-1]["role"] == role:
            merged[-1]["content"].extend(blocks)
        else:
            merged.append({"role": role, "content": list(blocks)})
    for turn in merged:
        if turn["role"] == "user":
            turn["content"] = _results_first(turn["content"])
    if merged:
        _strip_prefill(merged)
    if not merged or merged[0]["role"] != "user":
        merged.insert(0, {"role": "user", "content": [{"type": "text", "text": PLACEHOLDER_USER_TEXT}]})
    return merged


def _system_and_turns(messages: list[Json], agent: Agent) -> tuple[list[Json], list[Json]]:
    system: list[Json] = []
    turns: list[tuple[str, list[Json]]] = []
    first_end = 0
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_text_of_parts(message.get("content"), str(role)))
            first_end = first_end or len(system)
        else:
            turns.append(_turn(message))
    if first_end and agent.prompt_cache.system_prompt:
        system[first_end - 1] = {**system[first_end - 1], "cache_control": EPHEMERAL}
    return system, _merge_turns(turns)


def _client_tools(body: Json) -> list[Json]:
    tools = body.get("tools") or []
    for tool in tools:
        if tool.get("type", "function") != "function":
            raise _unsupported(f"tool type {tool.get('type')!r}", param="tools")
    return list(tools)


def _tool_def(tool: Json) -> Json:
    function = tool.get("function") or {}
    spec: Json = {"name": function.get("name")}
    if function.get("description"):
        spec["description"] = function["description"]
    spec["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    if function.get("strict") is True:
        spec["strict"] = True
    return spec


def _tool_names(tools: Iterable[Json]) -> set[str]:
    return {(tool.get("function") or {}).get("name", "") for tool in tools}


def json_tool_emulated(body: Json) -> bool:
    """Whether `response_format` json_object (or a schema-less json_schema) is emulated with the
    forced `json_response` tool for this request (see the module docstring)."""
    response_format = body.get("response_format")
    if not isinstance(response_format, dict):
        return False
    kind = response_format.get("type")
    schemaless = kind == "json_schema" and not (response_format.get("json_schema") or {}).get("schema")
    if kind != "json_object" and not schemaless:
        return False
    choice = body.get("tool_choice")
    if choice == "required" or isinstance(choice, dict):
        return False
    return JSON_TOOL_NAME not in _tool_names(body.get("tools") or ())


def _allowed_tools(tools: list[Json], choice: Json) -> tuple[list[Json], str]:
    allowed = choice.get("allowed_tools") or {}
    names = {(t.get("function") or {}).get("name") for t in allowed.get("tools") or ()}
    kept = [tool for tool in tools if (tool.get("function") or {}).get("name") in names]
    return kept, "required" if allowed.get("mode") == "required" else "auto"


def _choice_type(choice: Any) -> Json:
    if choice is None or choice == "auto":
        return {"type": "auto"}
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    raise _unsupported(f"tool_choice {choice!r}", param="tool_choice")


def _tools_and_choice(body: Json, agent: Agent) -> tuple[list[Json], Json | None]:
    tools = _client_tools(body)
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        tools, choice = _allowed_tools(tools, choice)
    specs = [_tool_def(tool) for tool in tools]
    tool_choice: Json
    if json_tool_emulated(body):
        callable_tools = bool(specs) and choice != "none"
        specs.append(dict(_JSON_TOOL))
        tool_choice = {"type": "any"} if callable_tools else {"type": "tool", "name": JSON_TOOL_NAME}
    elif specs:
        tool_choice = _choice_type(choice)
    else:
        return [], None
    if agent.prompt_cache.tools:
        specs[-1] = {**specs[-1], "cache_control": EPHEMERAL}
    if body.get("parallel_tool_calls") is False and tool_choice["type"] != "none":
        tool_choice["disable_parallel_tool_use"] = True
    return specs, tool_choice


def _max_tokens(body: Json, agent: Agent) -> int:
    for value in (body.get("max_completion_tokens"), body.get("max_tokens"), agent.max_output_tokens):
        if value is not None:
            return int(value)
    return DEFAULT_MAX_TOKENS


def _stop_sequences(stop: Any) -> list[str]:
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else [s for s in stop if s]


def _sampling(body: Json) -> Json:
    out: Json = {}
    if body.get("temperature") is not None:
        out["temperature"] = body["temperature"]
    elif body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    if body.get("top_k") is not None:
        out["top_k"] = body["top_k"]
    return out


def _check_unsupported(body: Json) -> None:
    if (body.get("n") or 1) > 1:
        raise ClientError(
            400, "provider claude returns one choice: n must be 1", code="unsupported_parameter", param="n"
        )
    if body.get("functions") or body.get("function_call"):
        raise _unsupported("legacy functions/function_call (use tools/tool_choice)", param="functions")


def _output_config(body: Json) -> Json | None:
    response_format = body.get("response_format")
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    schema = (response_format.get("json_schema") or {}).get("schema")
    return {"format": {"type": "json_schema", "schema": schema}} if schema else None


def messages_body(cluster: Cluster, agent: Agent, body: Json) -> Json:
    """The Anthropic Messages request for an OpenAI chat request (policy already applied)."""
    _check_unsupported(body)
    system, messages = _system_and_turns(body.get("messages") or [], agent)
    out: Json = {"model": cluster.model_id, "max_tokens": _max_tokens(body, agent)}
    if system:
        out["system"] = system
    out["messages"] = messages
    tools, tool_choice = _tools_and_choice(body, agent)
    if tools:
        out["tools"] = tools
        out["tool_choice"] = tool_choice
    out.update(_sampling(body))
    stop = _stop_sequences(body.get("stop"))
    if stop:
        out["stop_sequences"] = stop
    output_config = _output_config(body)
    if output_config:
        out["output_config"] = output_config
    user_id = body.get("safety_identifier") or body.get("user")
    if user_id:
        out["metadata"] = {"user_id": str(user_id)}
    if body.get("stream"):
        out["stream"] = True
    return out


# --- response -----------------------------------------------------------------------------------


def usage_from(raw: Mapping[str, Any]) -> Usage:
    """OpenAI usage from Anthropic's: its input_tokens excludes cache reads and writes."""
    cache_read = int(raw.get("cache_read_input_tokens") or 0)
    prompt = int(raw.get("input_tokens") or 0) + int(raw.get("cache_creation_input_tokens") or 0) + cache_read
    return Usage(
        prompt_tokens=prompt, completion_tokens=int(raw.get("output_tokens") or 0), cached_tokens=cache_read
    )


def finish_reason(stop_reason: str | None, client_tool_calls: int) -> str:
    reason = FINISH_REASONS.get(stop_reason or "", "stop")
    if reason == "tool_calls" and client_tool_calls == 0:
        return "stop"
    return reason


def _chat_id(message_id: Any) -> str:
    return f"chatcmpl-{message_id}" if message_id else shapes.completion_id()


def _message_fields(message: Json, json_tool: bool) -> tuple[str | None, list[Json]]:
    texts: list[str] = []
    calls: list[Json] = []
    for block in message.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use" and json_tool and block.get("name") == JSON_TOOL_NAME:
            texts.append(orjson.dumps(block.get("input") or {}).decode())
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(shapes.tool_call(block.get("id") or "", block.get("name") or "", arguments))
    text = "".join(texts)
    return (text if text or not calls else None), calls


def _malformed(cluster: Cluster, what: str) -> UpstreamMalformedError:
    return UpstreamMalformedError(what, cluster.key, "claude")


def _load_message(cluster: Cluster, raw: bytes) -> Json:
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _malformed(cluster, "body is not JSON") from exc
    if not isinstance(message, dict):
        raise _malformed(cluster, "body is not a JSON object")
    if message.get("type") == "error":
        error = message.get("error") or {}
        status = ERROR_TYPE_STATUS.get(str(error.get("type")), 500)
        raise UpstreamStatusError(classify(status, {}, message), cluster.key)
    if not isinstance(message.get("content"), list):
        raise _malformed(cluster, "no content list")
    return message


def parse_message(cluster: Cluster, request: Body, raw: bytes) -> Completion:
    message = _load_message(cluster, raw)
    content, calls = _message_fields(message, json_tool_emulated(request))
    usage = usage_from(message.get("usage") or {})
    body = shapes.completion(
        id=_chat_id(message.get("id")),
        model=message.get("model") or cluster.model_id,
        created=shapes.now_s(),
        message=shapes.assistant_message(content, calls),
        finish_reason=finish_reason(message.get("stop_reason"), len(calls)),
        usage=usage,
    )
    return Completion(body=body, usage=usage)


# --- errors -------------------------------------------------------------------------------------


def _error_fields(body: Any) -> tuple[str | None, str | None]:
    if not isinstance(body, dict):
        return None, None
    error = body.get("error")
    if not isinstance(error, dict):
        return None, None
    kind, message = error.get("type"), error.get("message")
    return (kind if isinstance(kind, str) else None), (message if isinstance(message, str) else None)


def classify(status: int, headers: Mapping[str, str], body: Any) -> Failure:
    """A Failure from an upstream status, its headers and its decoded body (any JSON or None)."""
    kind, message = _error_fields(body)
    if kind == "overloaded_error":
        status = 529
    message = message or f"provider claude answered HTTP {status}"
    lowered = {name.lower(): value for name, value in headers.items()}
    if kind == "billing_error":
        return Failure(429, "insufficient_quota", message, code="insufficient_quota")
    client = shapes.client_status(status)
    provider_side = status == 429 or status >= 500
    return Failure(
        status=client,
        error_type=shapes.openai_error_type(client),
        message=message,
        code=kind or f"upstream_http_{status}",
        retryable=status in RETRYABLE_STATUSES,
        breaker_counts=provider_side,
        retry_after_s=shapes.retry_after_seconds(lowered),
    )


def classify_raw(status: int, headers: Mapping[str, str], raw: bytes) -> Failure:
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
    return classify(status, headers, body)


# --- stream -------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Block:
    """State of one streamed content block: `tool` is the OpenAI tool-call index, or None."""

    kind: str
    tool: int | None = None
    streamed_args: bool = False
    start_input: Any = None


def _cut_failure() -> Failure:
    return Failure(
        status=502,
        error_type="server_error",
        message="provider claude ended the stream before message_stop",
        code="upstream_stream_cut",
        retryable=True,
        breaker_counts=True,
    )


class AnthropicStreamTranslator:
    """Anthropic named SSE events → OpenAI `chat.completion.chunk` payloads."""

    def __init__(self, cluster: Cluster, request: Body) -> None:
        self.usage: Usage | None = None
        self._cluster = cluster.key
        self._model: str = cluster.model_id
        options = request.get("stream_options") or {}
        self._include_usage = options.get("include_usage") is True
        self._json_tool = json_tool_emulated(request)
        self._decoder = SseDecoder()
        self._writer: shapes.ChunkWriter | None = None
        self._blocks: dict[int, _Block] = {}
        self._tool_calls = 0
        self._stop_reason: str | None = None
        self._raw_usage: Json = {}
        self._done = False
        self._handlers: dict[str, Callable[[Json], list[bytes]]] = {
            "message_start": self._message_start,
            "content_block_start": self._block_start,
            "content_block_delta": self._block_delta,
            "content_block_stop": self._block_stop,
            "message_delta": self._message_delta,
            "message_stop": self._message_stop,
            "error": self._error,
        }

    def feed(self, data: bytes) -> list[bytes]:
        return self._events(self._decoder.feed(data))

    def finish(self) -> list[bytes]:
        out = self._events(self._decoder.flush())
        if not self._done:
            raise UpstreamStreamError(_cut_failure(), self._cluster)
        return out

    def _events(self, events: list[SseEvent]) -> list[bytes]:
        out: list[bytes] = []
        for event in events:
            if self._done:
                break
            try:
                data = orjson.loads(event.data)
            except orjson.JSONDecodeError as exc:
                raise UpstreamStreamError(_malformed_stream("event data is not JSON"), self._cluster) from exc
            if not isinstance(data, dict):
                raise UpstreamStreamError(_malformed_stream("event data is not an object"), self._cluster)
            handler = self._handlers.get(event.event or str(data.get("type")))
            if handler is not None:
                out.extend(handler(data))
        return out

    def _chunk(self, delta: Json, finish: str | None = None) -> list[bytes]:
        out = self._start(None)
        assert self._writer is not None
        out.append(self._writer.chunk(delta, finish))
        return out

    def _start(self, message: Json | None) -> list[bytes]:
        if self._writer is not None:
            return []
        message = message or {}
        self._writer = shapes.ChunkWriter(
            model=message.get("model") or self._model,
            include_usage=self._include_usage,
            id=_chat_id(message.get("id")),
        )
        return [self._writer.chunk({"role": "assistant", "content": ""})]

    def _message_start(self, data: Json) -> list[bytes]:
        message = data.get("message") or {}
        self._update_usage(message.get("usage"))
        return self._start(message)

    def _block_start(self, data: Json) -> list[bytes]:
        block = data.get("content_block") or {}
        kind = block.get("type")
        index = int(data.get("index") or 0)
        if kind == "text":
            self._blocks[index] = _Block("text")
            return self._chunk({"content": block["text"]}) if block.get("text") else []
        if kind == "tool_use" and self._json_tool and block.get("name") == JSON_TOOL_NAME:
            self._blocks[index] = _Block("json", start_input=block.get("input"))
            return []
        if kind == "tool_use":
            state = _Block("tool", tool=self._tool_calls, start_input=block.get("input"))
            self._blocks[index] = state
            self._tool_calls += 1
            header = {
                "index": state.tool,
                "id": block.get("id") or "",
                "type": "function",
                "function": {"name": block.get("name") or "", "arguments": ""},
            }
            return self._chunk({"tool_calls": [header]})
        self._blocks[index] = _Block(str(kind))
        return []

    def _block_delta(self, data: Json) -> list[bytes]:
        state = self._blocks.get(int(data.get("index") or 0))
        delta = data.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return self._chunk({"content": delta["text"]})
        if kind != "input_json_delta" or state is None or not delta.get("partial_json"):
            return []
        state.streamed_args = True
        return self._arguments(state, delta["partial_json"])

    def _arguments(self, state: _Block, fragment: str) -> list[bytes]:
        if state.kind == "json":
            return self._chunk({"content": fragment})
        if state.kind == "tool":
            return self._chunk({"tool_calls": [{"index": state.tool, "function": {"arguments": fragment}}]})
        return []

    def _block_stop(self, data: Json) -> list[bytes]:
        state = self._blocks.get(int(data.get("index") or 0))
        if state is None or state.streamed_args or state.kind not in ("tool", "json"):
            return []
        state.streamed_args = True
        return self._arguments(state, orjson.dumps(state.start_input or {}).decode())

    def _message_delta(self, data: Json) -> list[bytes]:
        delta = data.get("delta") or {}
        if delta.get("stop_reason"):
            self._stop_reason = delta["stop_reason"]
        self._update_usage(data.get("usage"))
        return []

    def _message_stop(self, data: Json) -> list[bytes]:
        del data
        out = self._chunk({}, finish_reason(self._stop_reason, self._tool_calls))
        self._done = True
        self.usage = usage_from(self._raw_usage)
        if self._include_usage:
            assert self._writer is not None
            out.append(self._writer.usage_chunk(self.usage))
        return out

    def _error(self, data: Json) -> list[bytes]:
        kind, _ = _error_fields(data)
        status = ERROR_TYPE_STATUS.get(kind or "", 500)
        raise UpstreamStreamError(classify(status, {}, data), self._cluster)

    def _update_usage(self, raw: Any) -> None:
        if not isinstance(raw, dict):
            return
        self._raw_usage.update({key: value for key, value in raw.items() if isinstance(value, int)})
        self.usage = usage_from(self._raw_usage)


def _malformed_stream(what: str) -> Failure:
    return malformed_failure(f"stream {what}", "claude")


# --- the adapter --------------------------------------------------------------------------------


class AnthropicAdapter:
    """The `anthropic` wire format (see the module docstring for every quirk handled)."""

    def build_request(
        self, cluster: Cluster, agent: Agent, body: Body, auth: AuthMaterial
    ) -> UpstreamRequest:
        payload = messages_body(cluster, agent, body)
        return UpstreamRequest(
            url=messages_url(cluster),
            headers=request_headers(cluster, auth),
            body=orjson.dumps(payload),
            stream=bool(payload.get("stream")),
        )

    def parse_response(self, cluster: Cluster, request: Body, raw: bytes) -> Completion:
        return parse_message(cluster, request, raw)

    def stream_translator(self, cluster: Cluster, request: Body) -> AnthropicStreamTranslator:
        return AnthropicStreamTranslator(cluster, request)

    def classify_error(
        self, cluster: Cluster, status: int, headers: Mapping[str, str], raw: bytes
    ) -> Failure:
        del cluster
        return classify_raw(status, headers, raw)
