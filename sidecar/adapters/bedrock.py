"""AWS Bedrock Runtime adapter: OpenAI Chat Completions ⇄ Converse / ConverseStream.

Wire format: botocore's `bedrock-runtime` service model (protocol rest-json), see
../shared/reference/providers.md §4. Quirks this module handles:

- URL: `POST {base}/model/{modelId}/converse` (or `/converse-stream`); the model id is
  percent-encoded (`:` → `%3A`, `/` → `%2F`) exactly as botocore's serializer does. The I/O layer
  must send that path unchanged (aiohttp: `yarl.URL(url, encoded=True)`; a plain string URL is
  re-normalised by yarl, `%3A` → `:`, and the signature no longer matches).
- SigV4 is done by botocore's own signer (`SigV4Auth`) with signing name `bedrock` (not
  `bedrock-runtime`); it encodes the already-encoded path again for the canonical request
  (`%3A` → `%253A`) and signs the SHA-256 of the exact body bytes. Bedrock API keys
  (`AuthMaterial.token`) are sent as `Authorization: Bearer` instead and take precedence, as in
  botocore.
- Region: `cluster.region`, else parsed from a `bedrock-runtime[-fips].{region}.amazonaws.com`
  base URL; `base_url` "" means the regional AWS endpoint (see `sidecar.auth.aws`).
- Messages: system/developer messages go to top-level `system` blocks; content blocks are a
  union (exactly one key each); image parts must be `data:` URLs (Bedrock cannot fetch http
  URLs → 400); tool messages become `toolResult` blocks in a user turn; consecutive messages of
  one role are merged (which also merges consecutive tool results into one user message);
  empty text blocks and messages left empty are dropped. Tool-call `arguments` (a JSON string)
  become a `toolUse.input` object: "" means `{}`, anything that is not a JSON object is a 400.
- `toolChoice` has no `none`: it is omitted, and so are the tools, unless the history holds
  tool blocks, in which case Bedrock requires `toolConfig` and the tools are kept (tools named in
  the history are stubbed when the request has none). `allowed_tools` narrows the tool list.
  `function.strict` is not forwarded (several Bedrock models reject it).
- Prompt caching: `cachePoint` after the system blocks / after the tools when the agent marks
  them cacheable.
- JSON mode: `response_format.json_schema` maps faithfully to `outputConfig.textFormat`
  (schema serialised as a **string**; newer models only — others answer 400). `json_object` has
  no faithful Converse equivalent and is not forwarded (OpenAI requires the prompt to ask for
  JSON anyway). `n` > 1 is rejected; `seed`, penalties, logprobs, `user`, `reasoning_effort`
  and `parallel_tool_calls` are not forwarded.
- Temperature is clamped to [0, 1]; max tokens = `max_completion_tokens` ?? `max_tokens` ?? the
  agent's `max_output_tokens`.
- Usage: `inputTokens` excludes the cache buckets, so prompt = input + cacheRead + cacheWrite,
  cached = cacheRead; totals are recomputed. Reasoning blocks are not surfaced.
- Streaming is the binary `application/vnd.amazon.eventstream` body, decoded by botocore's
  `EventStreamBuffer` (frames may straddle reads; CRCs are checked). Text blocks may arrive
  without `contentBlockStart`. `metadata` (usage) arrives after `messageStop`: the finish chunk
  is sent at `messageStop`, the usage chunk (only with `stream_options.include_usage`) at
  `metadata`. A tool block that streamed no input gets `"{}"` as its arguments, as the plain
  answer would. Exception frames (`:message-type: exception`) and error frames become
  `UpstreamStreamError`; chunks decoded in the same read are returned first and the error is
  raised on the next call. EOF before `messageStop` (or inside a frame) is a cut.
- Errors: the name comes from `x-amzn-ErrorType` (text after `:` dropped), else body
  `__type` (after `#`) or `code`; classification uses only the name, the status and structured
  fields (`originalStatusCode`), never message text.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from botocore.eventstream import EventStreamBuffer, ParserError

from compiler.table import Agent, Cluster
from sidecar.adapters import openai_shapes as shapes
from sidecar.adapters.base import (
    AuthMaterial,
    AwsCredentials,
    Body,
    Completion,
    Failure,
    UpstreamRequest,
    Usage,
)
from sidecar.errors import ClientError, UpstreamError, UpstreamNetworkError, UpstreamStreamError

Json = dict[str, Any]

SIGNING_NAME = "bedrock"
EVENT_STREAM_TYPE = "application/vnd.amazon.eventstream"

STOP_REASONS: Mapping[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "model_context_window_exceeded": "length",
    "malformed_model_output": "stop",
    "malformed_tool_use": "stop",
}

IMAGE_FORMATS: Mapping[str, str] = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}

_REGIONAL_HOST = re.compile(r"^bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")
_EMPTY_SCHEMA: Json = {"type": "object", "properties": {}}


# --- errors -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Kind:
    status: int
    error_type: str
    retryable: bool
    breaker_counts: bool
    code: str | None = None


#: Bedrock exception name → what the client sees (reference §4.5, §7.3). `None` code = the name.
ERROR_KINDS: Mapping[str, _Kind] = {
    "ValidationException": _Kind(400, "invalid_request_error", False, False),
    "AccessDeniedException": _Kind(403, "permission_error", False, False),
    "UnrecognizedClientException": _Kind(403, "permission_error", False, False),
    "InvalidSignatureException": _Kind(403, "permission_error", False, False),
    "ExpiredTokenException": _Kind(403, "permission_error", False, False),
    "ResourceNotFoundException": _Kind(404, "not_found_error", False, False),
    "ModelTimeoutException": _Kind(504, "timeout", False, True),
    "ThrottlingException": _Kind(429, "rate_limit_error", True, True),
    "ServiceQuotaExceededException": _Kind(429, "insufficient_quota", False, False, "insufficient_quota"),
    "ModelNotReadyException": _Kind(503, "server_error", True, True),
    "InternalServerException": _Kind(500, "server_error", True, True),
    "ServiceUnavailableException": _Kind(503, "server_error", True, True),
    "ModelErrorException": _Kind(502, "server_error", False, True),
    "ModelStreamErrorException": _Kind(502, "server_error", False, True),
}

#: Model-side exceptions carrying `originalStatusCode`: retryable when the model's own status is.
_ORIGINAL_STATUS_EXCEPTIONS = frozenset({"ModelErrorException", "ModelStreamErrorException"})


def error_name(headers: Mapping[str, str], body: Json) -> str | None:
    """The Bedrock exception name from `x-amzn-ErrorType` or the body (`__type` / `code`)."""
    for key, value in headers.items():
        if key.lower() == "x-amzn-errortype" and value:
            return value.split(":", 1)[0].strip() or None
    raw = body.get("__type") or body.get("code") or body.get("Code")
    if isinstance(raw, str) and raw:
        return raw.rsplit("#", 1)[-1].split(":", 1)[0] or None
    return None


def failure_for(name: str | None, status: int, body: Json, retry_after_s: float | None = None) -> Failure:
    """Classify a Bedrock error by exception name, falling back on the HTTP status."""
    message = body.get("message") or body.get("Message")
    if not isinstance(message, str) or not message:
        message = f"Bedrock returned {name or f'HTTP {status}'}"
    kind = ERROR_KINDS.get(name or "")
    if kind is None:
        transient = status in shapes.TRANSIENT_STATUSES
        out_status = shapes.client_status(status)
        kind = _Kind(out_status, shapes.openai_error_type(out_status), transient, transient)
    retryable = kind.retryable
    if name in _ORIGINAL_STATUS_EXCEPTIONS:
        original = body.get("originalStatusCode")
        retryable = isinstance(original, int) and (original == 429 or original >= 500)
    return Failure(
        status=kind.status,
        error_type=kind.error_type,
        message=message,
        code=kind.code or name,
        retryable=retryable,
        breaker_counts=kind.breaker_counts,
        retry_after_s=retry_after_s,
    )


def _json_object(raw: bytes) -> Json:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


# --- request: messages --------------------------------------------------------------------------


def _bad(message: str, code: str = "invalid_value", param: str = "messages") -> ClientError:
    return ClientError(400, message, code=code, param=param)


def _text_parts(content: Any, where: str) -> list[str]:
    """Text of a string or a list of text/refusal parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise _bad(f"{where}.content must be a string or a list of parts")
    texts: list[str] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(str(part.get("text", "")))
        elif kind == "refusal":
            texts.append(str(part.get("refusal", "")))
        else:
            raise _bad(f"{where}: content part type {kind!r} is not supported here", "unsupported_content")
    return texts


def _image_block(part: Json, where: str) -> Json:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url.startswith("data:"):
        raise _bad(
            f"{where}: Bedrock accepts images only as base64 data: URLs, not remote URLs",
            "unsupported_image_url",
        )
    header, sep, data = url[5:].partition(",")
    mime, _, encoding = header.partition(";")
    image_format = IMAGE_FORMATS.get(mime.strip().lower())
    if not sep or encoding.strip().lower() != "base64" or image_format is None:
        raise _bad(f"{where}: image must be a base64 data: URL of type png, jpeg, gif or webp")
    try:
        base64.b64decode(data, validate=True)
    except binascii.Error as exc:
        raise _bad(f"{where}: image data is not valid base64") from exc
    return {"image": {"format": image_format, "source": {"bytes": data}}}


def _user_blocks(content: Any, where: str) -> list[Json]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise _bad(f"{where}.content must be a string or a list of parts")
    blocks: list[Json] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            text = part.get("text")
            if isinstance(text, str) and text:
                blocks.append({"text": text})
        elif kind == "image_url":
            blocks.append(_image_block(part, where))
        else:
            raise _bad(
                f"{where}: content part type {kind!r} is not supported by Bedrock", "unsupported_content"
            )
    return blocks


def _tool_input(arguments: Any, where: str) -> Json:
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    try:
        value = orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise _bad(f"{where}: tool call arguments are not valid JSON") from exc
    if not isinstance(value, dict):
        raise _bad(f"{where}: tool call arguments must be a JSON object")
    return value


def _assistant_blocks(message: Json, where: str) -> list[Json]:
    blocks: list[Json] = [{"text": t} for t in _text_parts(message.get("content"), where) if t]
    for k, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") or {}
        blocks.append(
            {
                "toolUse": {
                    "toolUseId": call.get("id"),
                    "name": function.get("name"),
                    "input": _tool_input(function.get("arguments"), f"{where}.tool_calls[{k}]"),
                }
            }
        )
    return blocks


def _tool_result(message: Json, where: str) -> Json:
    tool_call_id = message.get("tool_call_id")
    if not isinstance(tool_call_id, str) or not tool_call_id:
        raise _bad(f"{where}: a tool message needs tool_call_id")
    texts = _text_parts(message.get("content"), where) or [""]
    return {"toolResult": {"toolUseId": tool_call_id, "content": [{"text": t} for t in texts]}}


def _append_turn(turns: list[Json], role: str, blocks: list[Json]) -> None:
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def convert_messages(messages: Any) -> tuple[list[Json], list[Json]]:
    """OpenAI messages → (Bedrock `system` blocks, Bedrock `messages`)."""
    if not isinstance(messages, list) or not messages:
        raise _bad("messages must be a non-empty list")
    system: list[Json] = []
    turns: list[Json] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = message.get("role") if isinstance(message, dict) else None
        if role in ("system", "developer"):
            system.extend({"text": t} for t in _text_parts(message.get("content"), where) if t)
        elif role == "user":
            _append_turn(turns, "user", _user_blocks(message.get("content"), where))
        elif role == "assistant":
            _append_turn(turns, "assistant", _assistant_blocks(message, where))
        elif role == "tool":
            _append_turn(turns, "user", [_tool_result(message, where)])
        else:
            raise _bad(f"{where}: role {role!r} is not supported by Bedrock")
    return system, turns


# --- request: tools, inference, output ----------------------------------------------------------


def _tool_spec(tool: Any, where: str) -> Json:
    if (
        not isinstance(tool, dict)
        or tool.get("type") != "function"
        or not isinstance(tool.get("function"), dict)
    ):
        raise _bad(f"{where}: only function tools are supported by Bedrock", "unsupported_tool", "tools")
    function = tool["function"]
    spec: Json = {
        "name": function.get("name"),
        "inputSchema": {"json": function.get("parameters") or _EMPTY_SCHEMA},
    }
    if function.get("description"):
        spec["description"] = function["description"]
    return {"toolSpec": spec}


def _history_tool_names(turns: list[Json]) -> list[str] | None:
    """Names used by toolUse blocks, or None when the history has no tool blocks at all."""
    names: list[str] = []
    seen_tool_block = False
    for turn in turns:
        for block in turn["content"]:
            if "toolUse" in block:
                seen_tool_block = True
                if block["toolUse"]["name"] not in names:
                    names.append(block["toolUse"]["name"])
            elif "toolResult" in block:
                seen_tool_block = True
    return names if seen_tool_block else None


def _tool_choice(choice: Any, names: list[str]) -> tuple[Json | None, list[str] | None]:
    """(Bedrock toolChoice, names the tool list is narrowed to)."""
    if choice is None or choice == "none":
        return None, None
    if choice == "auto":
        return {"auto": {}}, None
    if choice == "required":
        return {"any": {}}, None
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if name not in names:
            raise _bad(f"tool_choice names tool {name!r}, which is not in tools", param="tool_choice")
        return {"tool": {"name": name}}, None
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = choice.get("allowed_tools") or {}
        keep = [(t.get("function") or {}).get("name") for t in allowed.get("tools") or ()]
        modes: dict[str, Json] = {"auto": {"auto": {}}, "required": {"any": {}}}
        mode = modes.get(allowed.get("mode", "auto"))
        if mode is None:
            raise _bad("tool_choice.allowed_tools.mode must be auto or required", param="tool_choice")
        return mode, [n for n in names if n in keep]
    raise _bad(f"tool_choice {choice!r} is not supported by Bedrock", param="tool_choice")


def tool_config(body: Body, agent: Agent, turns: list[Json]) -> Json | None:
    tools = [_tool_spec(t, f"tools[{i}]") for i, t in enumerate(body.get("tools") or ())]
    names = [t["toolSpec"]["name"] for t in tools]
    choice, keep = _tool_choice(body.get("tool_choice"), names)
    if keep is not None:
        tools = [t for t in tools if t["toolSpec"]["name"] in keep]
    history = _history_tool_names(turns)
    if body.get("tool_choice") == "none" and history is None:
        return None
    if not tools:
        if history is None:
            return None
        tools = [
            {"toolSpec": {"name": n, "inputSchema": {"json": _EMPTY_SCHEMA}}} for n in history or ["tool"]
        ]
    elif agent.prompt_cache.tools:
        tools.append({"cachePoint": {"type": "default"}})
    config: Json = {"tools": tools}
    if choice is not None:
        config["toolChoice"] = choice
    return config


def inference_config(body: Body, agent: Agent) -> Json:
    config: Json = {}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or agent.max_output_tokens
    if max_tokens is not None:
        config["maxTokens"] = int(max_tokens)
    temperature = body.get("temperature")
    if temperature is not None:
        config["temperature"] = min(max(float(temperature), 0.0), 1.0)
    if body.get("top_p") is not None:
        config["topP"] = float(body["top_p"])
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else list(stop or ())
    if any(s for s in stops):
        config["stopSequences"] = [s for s in stops if s]
    return config


def output_config(response_format: Any) -> Json | None:
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema") or {}
    schema = spec.get("schema") or {"type": "object"}
    definition: Json = {"schema": orjson.dumps(schema).decode()}
    if spec.get("name"):
        definition["name"] = spec["name"]
    if spec.get("description"):
        definition["description"] = spec["description"]
    return {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": definition}}}


def converse_body(body: Body, agent: Agent) -> Json:
    """The Converse request body (without `modelId`, which is in the URL)."""
    n = body.get("n")
    if n is not None and n != 1:
        raise _bad("Bedrock supports only n=1", "unsupported_parameter", "n")
    system, turns = convert_messages(body.get("messages"))
    out: Json = {"messages": turns}
    if system:
        if agent.prompt_cache.system_prompt:
            system.append({"cachePoint": {"type": "default"}})
        out["system"] = system
    inference = inference_config(body, agent)
    if inference:
        out["inferenceConfig"] = inference
    tools = tool_config(body, agent, turns)
    if tools is not None:
        out["toolConfig"] = tools
    output = output_config(body.get("response_format"))
    if output is not None:
        out["outputConfig"] = output
    return out


# --- request: URL and signing -------------------------------------------------------------------


def cluster_region(cluster: Cluster) -> str | None:
    if cluster.region:
        return cluster.region
    match = _REGIONAL_HOST.match(urlsplit(cluster.base_url).hostname or "")
    return match.group(1) if match else None


def _no_region(cluster: Cluster) -> UpstreamError:
    message = "no AWS region configured for Bedrock (set region or AWS_REGION)"
    return UpstreamError(Failure(500, "server_error", message, code="bedrock_misconfigured"), cluster.key)


def operation_url(cluster: Cluster, stream: bool) -> str:
    base = cluster.base_url.rstrip("/")
    if not base:
        region = cluster_region(cluster)
        if region is None:
            raise _no_region(cluster)
        base = f"https://bedrock-runtime.{region}.amazonaws.com"
    operation = "converse-stream" if stream else "converse"
    return f"{base}/model/{quote(cluster.model_id, safe='')}/{operation}"


def sign_headers(
    url: str, headers: Mapping[str, str], body: bytes, credentials: AwsCredentials, region: str
) -> dict[str, str]:
    """`headers` plus `X-Amz-Date`, `X-Amz-Security-Token` and `Authorization`, by botocore."""
    request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
    token = credentials.token.reveal() if credentials.token is not None else None
    signer_credentials = ReadOnlyCredentials(credentials.access_key, credentials.secret_key.reveal(), token)
    SigV4Auth(signer_credentials, SIGNING_NAME, region).add_auth(request)
    return {name: str(value) for name, value in request.headers.items()}


# --- response -----------------------------------------------------------------------------------


def usage_from(raw: Any) -> Usage:
    def count(key: str) -> int:
        value = raw.get(key) if isinstance(raw, dict) else None
        return value if isinstance(value, int) else 0

    cache_read = count("cacheReadInputTokens")
    return Usage(
        prompt_tokens=count("inputTokens") + cache_read + count("cacheWriteInputTokens"),
        completion_tokens=count("outputTokens"),
        cached_tokens=cache_read,
    )


def finish_reason(stop_reason: Any) -> str:
    return STOP_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def _arguments(value: Any) -> str:
    return orjson.dumps(value if value is not None else {}).decode()


def response_message(content: Any) -> Json:
    texts: list[str] = []
    calls: list[Json] = []
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):
            use = block["toolUse"]
            calls.append(
                shapes.tool_call(
                    str(use.get("toolUseId")), str(use.get("name")), _arguments(use.get("input"))
                )
            )
    text = "".join(texts)
    return shapes.assistant_message(text if texts or not calls else None, calls or None)


def _model(cluster: Cluster, request: Body) -> str:
    model = request.get("model")
    return model if isinstance(model, str) and model else cluster.model_id


# --- streaming ----------------------------------------------------------------------------------


def _malformed(message: str, code: str = "bad_upstream_stream") -> Failure:
    return Failure(502, "server_error", message, code=code, retryable=True, breaker_counts=True)


def _frames(buffer: EventStreamBuffer) -> Iterator[tuple[int, Mapping[str, Any], bytes]]:
    """(frame length, headers, payload) of each complete frame (botocore's stubs mistype these)."""
    message: Any
    for message in buffer:
        yield message.prelude.total_length, message.headers, message.payload


@dataclass(slots=True)
class _ToolBlock:
    index: int
    arguments_sent: bool = False


class BedrockStreamTranslator:
    """ConverseStream event-stream bytes → OpenAI chunks. One instance per stream."""

    def __init__(self, model: str, include_usage: bool, cluster_key: str = "") -> None:
        self.usage: Usage | None = None
        self._cluster_key = cluster_key
        self._writer = shapes.ChunkWriter(model=model, include_usage=include_usage)
        self._buffer = EventStreamBuffer()
        self._fed = 0
        self._consumed = 0
        self._role_sent = False
        self._stopped = False
        self._usage_sent = False
        self._tools: dict[int, _ToolBlock] = {}
        self._pending_error: UpstreamStreamError | None = None

    def feed(self, data: bytes) -> list[bytes]:
        if self._pending_error is not None:
            raise self._pending_error
        self._fed += len(data)
        self._buffer.add_data(data)
        out: list[bytes] = []
        try:
            for length, headers, payload in self._decoded():
                self._consumed += length
                out.extend(self._on_frame(headers, payload))
        except UpstreamStreamError as exc:
            self._pending_error = exc  # chunks decoded before it go out first; the error next call
            if not out:
                raise
        return out

    def _decoded(self) -> Iterator[tuple[int, Mapping[str, Any], bytes]]:
        try:
            yield from _frames(self._buffer)
        except ParserError as exc:
            raise self._error(_malformed(f"malformed Bedrock event stream: {type(exc).__name__}")) from exc

    def finish(self) -> list[bytes]:
        if self._pending_error is not None:
            raise self._pending_error
        if not self._stopped or self._fed != self._consumed:
            raise self._error(_malformed("Bedrock stream ended before messageStop"))
        return []

    def _error(self, failure: Failure) -> UpstreamStreamError:
        return UpstreamStreamError(failure, self._cluster_key)

    # -- frames --

    def _on_frame(self, headers: Mapping[str, Any], raw: bytes) -> list[bytes]:
        kind = headers.get(":message-type")
        payload = _json_object(raw)
        if kind == "exception":
            name = str(headers.get(":exception-type") or "")
            name = name[:1].upper() + name[1:]
            raise self._error(failure_for(name or None, 502, payload))
        if kind == "error":
            code = str(headers.get(":error-code") or "") or None
            body = {"message": str(headers.get(":error-message") or "")}
            raise self._error(failure_for(code, 502, body))
        if kind != "event":
            return []
        handler = self._HANDLERS.get(str(headers.get(":event-type")))
        return handler(self, payload) if handler is not None else []

    def _role(self) -> list[bytes]:
        if self._role_sent:
            return []
        self._role_sent = True
        return [self._writer.chunk({"role": "assistant", "content": ""})]

    def _message_start(self, payload: Json) -> list[bytes]:
        return self._role()

    def _block_start(self, payload: Json) -> list[bytes]:
        use = (payload.get("start") or {}).get("toolUse")
        if not isinstance(use, dict):
            return []
        tool = _ToolBlock(len(self._tools))
        self._tools[payload.get("contentBlockIndex", -1)] = tool
        call = {"index": tool.index, "id": use.get("toolUseId"), "type": "function",
                "function": {"name": use.get("name"), "arguments": ""}}  # fmt: skip
        return [*self._role(), self._writer.chunk({"tool_calls": [call]})]

    def _block_delta(self, payload: Json) -> list[bytes]:
        delta = payload.get("delta") or {}
        text = delta.get("text")
        if isinstance(text, str):
            return [*self._role(), self._writer.chunk({"content": text})] if text else []
        use = delta.get("toolUse")
        if not isinstance(use, dict):
            return []  # reasoning, citations…: not surfaced
        tool = self._tools.get(payload.get("contentBlockIndex", -1))
        if tool is None:
            raise self._error(_malformed("Bedrock tool input delta without contentBlockStart"))
        fragment = use.get("input")
        if not isinstance(fragment, str) or not fragment:
            return []
        tool.arguments_sent = True
        return [self._arguments_chunk(tool, fragment)]

    def _arguments_chunk(self, tool: _ToolBlock, fragment: str) -> bytes:
        return self._writer.chunk(
            {"tool_calls": [{"index": tool.index, "function": {"arguments": fragment}}]}
        )

    def _block_stop(self, payload: Json) -> list[bytes]:
        tool = self._tools.get(payload.get("contentBlockIndex", -1))
        if tool is None or tool.arguments_sent:
            return []
        tool.arguments_sent = True
        return [self._arguments_chunk(tool, "{}")]

    def _message_stop(self, payload: Json) -> list[bytes]:
        if self._stopped:
            return []
        self._stopped = True
        out = [*self._role(), self._writer.chunk({}, finish_reason(payload.get("stopReason")))]
        return out + self._usage_chunk()

    def _metadata(self, payload: Json) -> list[bytes]:
        if "usage" in payload:
            self.usage = usage_from(payload["usage"])
        return self._usage_chunk() if self._stopped else []

    def _usage_chunk(self) -> list[bytes]:
        if self.usage is None or self._usage_sent or not self._writer.include_usage:
            return []
        self._usage_sent = True
        return [self._writer.usage_chunk(self.usage)]

    _HANDLERS: Mapping[str, Callable[[BedrockStreamTranslator, Json], list[bytes]]] = {
        "messageStart": _message_start,
        "contentBlockStart": _block_start,
        "contentBlockDelta": _block_delta,
        "contentBlockStop": _block_stop,
        "messageStop": _message_stop,
        "metadata": _metadata,
    }


# --- the adapter --------------------------------------------------------------------------------


class BedrockAdapter:
    """The `bedrock` wire format (Converse / ConverseStream)."""

    def build_request(
        self, cluster: Cluster, agent: Agent, body: Body, auth: AuthMaterial
    ) -> UpstreamRequest:
        stream = bool(body.get("stream"))
        payload = orjson.dumps(converse_body(body, agent))
        url = operation_url(cluster, stream)
        headers = {
            "Content-Type": "application/json",
            "Accept": EVENT_STREAM_TYPE if stream else "application/json",
        }
        headers.update(cluster.headers)
        if auth.token is not None:
            headers["Authorization"] = f"Bearer {auth.token.reveal()}"
        elif auth.aws is not None:
            region = cluster_region(cluster)
            if region is None:
                raise _no_region(cluster)
            headers = sign_headers(url, headers, payload, auth.aws, region)
        return UpstreamRequest(url=url, headers=headers, body=payload, stream=stream)

    def parse_response(self, cluster: Cluster, request: Body, raw: bytes) -> Completion:
        try:
            data = orjson.loads(raw)
            message = data["output"]["message"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise UpstreamNetworkError(
                _malformed("malformed Bedrock Converse response", "bad_upstream_response"), cluster.key
            ) from exc
        usage = usage_from(data["usage"]) if isinstance(data.get("usage"), dict) else None
        body = shapes.completion(
            id=shapes.completion_id(),
            model=_model(cluster, request),
            created=shapes.now_s(),
            message=response_message(message.get("content") if isinstance(message, dict) else None),
            finish_reason=finish_reason(data.get("stopReason")),
            usage=usage,
        )
        return Completion(body=body, usage=usage)

    def stream_translator(self, cluster: Cluster, request: Body) -> BedrockStreamTranslator:
        options = request.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return BedrockStreamTranslator(_model(cluster, request), include_usage, cluster.key)

    def classify_error(
        self, cluster: Cluster, status: int, headers: Mapping[str, str], raw: bytes
    ) -> Failure:
        body = _json_object(raw)
        lowered = {k.lower(): v for k, v in headers.items()}
        return failure_for(error_name(headers, body), status, body, shapes.retry_after_seconds(lowered))
