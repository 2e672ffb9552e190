"""Google Gemini: AI Studio (Gemini Developer API) and Vertex AI, plain and streamed.

Both surfaces speak the same JSON (`GenerateContentRequest` / `GenerateContentResponse`); they
differ only in URL and auth:

- AI Studio: ``{base_url}/v1beta/models/{model}:generateContent`` (``:streamGenerateContent?alt=sse``
  when streaming), header ``x-goog-api-key``.
- Vertex AI (``cluster.vertex`` set): ``https://{location}-aiplatform.googleapis.com/v1/projects/
  {project}/locations/{location}/publishers/google/models/{model}:…`` (``global`` →
  ``aiplatform.googleapis.com``, ``us``/``eu`` → ``aiplatform.{loc}.rep.googleapis.com``), header
  ``Authorization: Bearer <OAuth token>``. A cluster base URL other than the AI Studio default
  replaces the host (proxies, private endpoints, tests).

Quirks handled (see ../shared/reference/providers.md §3):

- Roles are only ``user``/``model``; system and developer messages are hoisted into
  ``systemInstruction``; consecutive same-role turns are merged (a model turn's text and its
  function calls become one turn), except that a turn of function responses is never merged
  with a plain user turn.
- Tool calls: OpenAI ``arguments`` is a JSON string, Gemini ``args`` an object (invalid JSON or a
  non-object in the history → 400). ``functionResponse`` needs the function *name*: it is looked
  up from the earlier assistant ``tool_calls`` by ``tool_call_id`` (unknown id → 400). The
  response is always wrapped as ``{"output": "<tool message text>"}``. Consecutive tool messages
  become one user turn, so N calls are answered by N ``functionResponse`` parts.
- Tool-call ids: AI Studio usually gives none, and Gemini 3 attaches a ``thoughtSignature`` that
  must come back on the same part. Both are carried statelessly inside the OpenAI id: a plain id
  is ``call_<24 hex>``; one that carries Gemini's own id and/or the signature is
  ``call_gx<24 hex><base64url(JSON [id, signature])>`` (only ``[A-Za-z0-9_-]``, so other
  providers accept it after a fallback). The 24 hex are derived from ``responseId`` + candidate
  + position, so the streamed and plain answers of one response get the same ids. Foreign ids
  (other providers, clients) are not sent to Gemini. Signatures on text parts are not kept.
- Function parameter schemas are cleaned into Gemini's OpenAPI-3.0 ``Schema`` subset (sent as
  ``parameters``) rather than sent as ``parametersJsonSchema``: ``parameters`` is accepted by
  every model on both surfaces and API versions (``v1`` on Vertex included), while the JSON
  Schema field is newer and not everywhere. Cleanup inlines local ``$ref``s (recursion → a bare
  object), merges ``allOf``, turns ``oneOf`` into ``anyOf``, ``type: [T, "null"]`` and
  ``anyOf``-with-null into ``nullable``, ``const`` into a one-value ``enum``, keeps only string
  enums and the ``format``s Gemini knows, drops every other keyword (``additionalProperties``,
  ``$schema``, ``exclusiveMinimum``…), filters ``required`` to declared properties, upper-cases
  types, and omits ``parameters`` for an argument-less function. JSON mode uses
  ``responseMimeType`` + ``responseJsonSchema`` (full JSON Schema: structured output must keep
  ``additionalProperties``/ordering semantics).
- ``tool_choice``: auto → AUTO, none → NONE, required → ANY, a named function → ANY +
  ``allowedFunctionNames``, ``allowed_tools`` → the declarations are filtered to the allowed
  ones (mode AUTO or ANY).
- Images: ``data:`` URLs → ``inlineData``; any other URL → ``fileData`` with the mime type
  guessed from the URL's file extension (default ``image/jpeg``; adapters never download).
  ``input_audio`` and ``file`` (``file_data``) parts → ``inlineData``; ``file_id`` → 400.
- ``finishReason`` is ``STOP`` even for function calls → ``tool_calls``; MAX_TOKENS → ``length``;
  SAFETY/RECITATION/BLOCKLIST/… → ``content_filter``; ``promptFeedback.blockReason`` without
  candidates → ``content_filter`` with empty content. ``thought`` parts are not shown.
- Usage: ``prompt_tokens = promptTokenCount + toolUsePromptTokenCount`` (cached tokens are
  already inside), ``cached_tokens = cachedContentTokenCount``, ``completion_tokens =
  candidatesTokenCount + thoughtsTokenCount`` (thoughts are outside candidates), and
  ``completion_tokens_details.reasoning_tokens = thoughtsTokenCount``.
- Streams: ``data:`` chunks with text deltas and whole ``functionCall`` parts, ``usageMetadata``
  possibly repeated (the last wins), no terminator. At EOF the finish chunk(s) and, with
  ``stream_options.include_usage``, the usage chunk are emitted; EOF without any
  ``finishReason`` (or block) is a cut. An error object inside the stream → in-stream error.
- ``n`` → ``candidateCount``; each candidate becomes a choice with its own index.
- Errors: Google RPC status bodies ``{"error": {code, message, status, details}}``, sometimes in
  a one-element array. RESOURCE_EXHAUSTED / UNAVAILABLE / INTERNAL / DEADLINE_EXCEEDED are
  retryable and count against the breaker, except a RESOURCE_EXHAUSTED whose ``QuotaFailure``
  names a per-day quota (``quotaId`` contains ``PerDay``: waiting does not help → 429
  ``insufficient_quota``, not retried, counts against the breaker so the fallback takes over).
  ``RetryInfo.retryDelay`` (``"38.6s"``) → retry-after. ``ErrorInfo.reason`` ``API_KEY_INVALID``
  (sent as 400) → 401. Everything is decided from status fields, never from message text.

Not mapped: ``logprobs``, ``logit_bias``, ``user``, ``parallel_tool_calls`` (Gemini has no switch),
``reasoning_effort`` (model-specific thinking budgets/levels), custom tools (→ 400).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote_to_bytes, urlsplit

import orjson

from compiler.table import Agent, Cluster, VertexTarget
from sidecar.adapters.base import AuthMaterial, Body, Completion, Failure, UpstreamRequest, Usage
from sidecar.adapters.openai_shapes import (
    TRANSIENT_STATUSES,
    assistant_message,
    client_status,
    completion_id,
    now_s,
    openai_error_type,
    retry_after_seconds,
    tool_call,
    usage_json,
)
from sidecar.errors import (
    ClientError,
    UpstreamNetworkError,
    UpstreamStatusError,
    UpstreamStreamError,
    network_failure,
)
from sidecar.sse import SseDecoder

Json = dict[str, Any]

AI_STUDIO_BASE_URL = "https://generativelanguage.googleapis.com"

# --- URLs and headers ------------------------------------------------------------------------


def vertex_host(location: str) -> str:
    if location == "global":
        return "https://aiplatform.googleapis.com"
    if location in ("us", "eu"):
        return f"https://aiplatform.{location}.rep.googleapis.com"
    return f"https://{location}-aiplatform.googleapis.com"


def _model_path(model_id: str) -> str:
    bare = model_id.removeprefix("models/")
    return quote(bare, safe="-._~@")


def endpoint_url(cluster: Cluster, *, stream: bool) -> str:
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    model = _model_path(cluster.model_id)
    base = cluster.base_url.rstrip("/")
    vertex: VertexTarget | None = cluster.vertex
    if vertex is None:
        return f"{base}/v1beta/models/{model}:{method}"
    host = vertex_host(vertex.location) if base == AI_STUDIO_BASE_URL else base
    project, location = quote(vertex.project, safe=""), quote(vertex.location, safe="")
    return f"{host}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:{method}"


def auth_headers(cluster: Cluster, auth: AuthMaterial) -> dict[str, str]:
    if auth.token is None:
        return {}
    if cluster.vertex is not None:
        return {"Authorization": "Bearer " + auth.token.reveal()}
    return {"x-goog-api-key": auth.token.reveal()}


# --- tool-call ids ---------------------------------------------------------------------------

_CARRIER = "call_gx"
_NONCE_LEN = 24


def call_nonce(response_id: str | None, candidate: int, position: int) -> str:
    """24 hex chars, stable for one (responseId, candidate, position); random without an id."""
    if not response_id:
        return uuid.uuid4().hex[:_NONCE_LEN]
    seed = f"{response_id}/{candidate}/{position}".encode()
    return hashlib.blake2b(seed, digest_size=_NONCE_LEN // 2).hexdigest()


def encode_call_id(nonce: str, gemini_id: str | None, signature: str | None) -> str:
    if gemini_id is None and signature is None:
        return "call_" + nonce
    payload = base64.urlsafe_b64encode(orjson.dumps([gemini_id, signature])).rstrip(b"=")
    return _CARRIER + nonce + payload.decode("ascii")


def decode_call_id(call_id: str) -> tuple[str | None, str | None]:
    """(Gemini's own call id, thoughtSignature) carried in one of our ids; (None, None) otherwise."""
    if not call_id.startswith(_CARRIER) or len(call_id) <= len(_CARRIER) + _NONCE_LEN:
        return None, None
    payload = call_id[len(_CARRIER) + _NONCE_LEN :]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        data = orjson.loads(raw)
    except (binascii.Error, ValueError):
        return None, None
    if not (isinstance(data, list) and len(data) == 2):
        return None, None
    gemini_id, signature = data
    if not all(v is None or isinstance(v, str) for v in data):
        return None, None
    return gemini_id, signature


# --- schema cleanup --------------------------------------------------------------------------

_PLAIN_SCHEMA_KEYS = tuple(
    [
        "title",
        "description",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "default",
        "minimum",
        "maximum",
        "propertyOrdering",
    ]
)
_FORMATS = {
    "STRING": frozenset({"enum", "date-time"}),
    "NUMBER": frozenset({"float", "double"}),
    "INTEGER": frozenset({"int32", "int64"}),
}
_REF_PREFIXES = ("#/$defs/", "#/definitions/")


def clean_parameters(schema: Any) -> Json | None:
    """A function's JSON Schema parameters as Gemini's `Schema` subset; None when it takes none."""
    if not isinstance(schema, dict):
        return None
    defs = {**_as_dict(schema.get("definitions")), **_as_dict(schema.get("$defs"))}
    cleaned = clean_schema(schema, defs)
    cleaned.setdefault("type", "OBJECT")
    if cleaned["type"] == "OBJECT" and not cleaned.get("properties"):
        return None
    return cleaned


def clean_schema(node: Any, defs: Mapping[str, Any], stack: tuple[str, ...] = ()) -> Json:
    if not isinstance(node, dict):
        return {}
    ref = node.get("$ref")
    if isinstance(ref, str):
        return _clean_ref(ref, node, defs, stack)
    if isinstance(node.get("allOf"), list):
        node = _merge_all_of(node)
    out: Json = {key: node[key] for key in _PLAIN_SCHEMA_KEYS if key in node}
    nullable = node.get("nullable") is True
    nullable |= _clean_type(node.get("type"), out)
    nullable |= _clean_any_of(node, out, defs, stack)
    _clean_enum(node, out)
    _clean_object(node, out, defs, stack)
    items = node.get("items")
    if isinstance(items, dict):
        out["items"] = clean_schema(items, defs, stack)
        out.setdefault("type", "ARRAY")
    fmt = node.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS.get(out.get("type", ""), ()):
        out["format"] = fmt
    if nullable:
        out["nullable"] = True
    return out


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _clean_ref(ref: str, node: Json, defs: Mapping[str, Any], stack: tuple[str, ...]) -> Json:
    name = next((ref[len(p) :] for p in _REF_PREFIXES if ref.startswith(p)), None)
    if name is None or name in stack or not isinstance(defs.get(name), dict):
        out: Json = {"type": "OBJECT"}
        if isinstance(node.get("description"), str):
            out["description"] = node["description"]
        return out
    siblings = {k: v for k, v in node.items() if k != "$ref"}
    return clean_schema({**defs[name], **siblings}, defs, (*stack, name))


def _merge_all_of(node: Json) -> Json:
    merged: Json = {k: v for k, v in node.items() if k != "allOf"}
    for part in node["allOf"]:
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if key == "properties" and isinstance(value, dict):
                merged["properties"] = {**_as_dict(merged.get("properties")), **value}
            elif key == "required" and isinstance(value, list):
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return merged


def _clean_type(raw: Any, out: Json) -> bool:
    """Set `out["type"]`; True when the JSON Schema type admits null."""
    types = raw if isinstance(raw, list) else [raw] if isinstance(raw, str) else []
    named = [t for t in types if isinstance(t, str) and t != "null"]
    if len(named) == 1:
        out["type"] = named[0].upper()
    elif len(named) > 1:
        out["anyOf"] = [{"type": t.upper()} for t in named]
    return "null" in types


def _is_null_schema(node: Any) -> bool:
    return isinstance(node, dict) and node.get("type") == "null"


def _clean_any_of(node: Json, out: Json, defs: Mapping[str, Any], stack: tuple[str, ...]) -> bool:
    branches = node.get("anyOf", node.get("oneOf"))
    if not isinstance(branches, list):
        return False
    kept = [b for b in branches if not _is_null_schema(b)]
    if len(kept) == 1 and "type" not in out:
        single = clean_schema(kept[0], defs, stack)
        for key, value in single.items():
            out.setdefault(key, value)
    elif kept:
        out["anyOf"] = [clean_schema(b, defs, stack) for b in kept]
    return len(kept) < len(branches)


def _clean_enum(node: Json, out: Json) -> None:
    values = [node["const"]] if "const" in node else node.get("enum")
    if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
        out["enum"] = values
        out.setdefault("type", "STRING")
        if out["type"] == "STRING":
            out["format"] = "enum"


def _clean_object(node: Json, out: Json, defs: Mapping[str, Any], stack: tuple[str, ...]) -> None:
    properties = node.get("properties")
    if not isinstance(properties, dict):
        return
    out["properties"] = {name: clean_schema(sub, defs, stack) for name, sub in properties.items()}
    out.setdefault("type", "OBJECT")
    required = node.get("required")
    if isinstance(required, list):
        kept = [r for r in dict.fromkeys(required) if isinstance(r, str) and r in properties]
        if kept:
            out["required"] = kept


# --- request translation ---------------------------------------------------------------------

_MIME_BY_EXTENSION = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "heic": "image/heic",
    "heif": "image/heif",
    "pdf": "application/pdf",
    "txt": "text/plain",
    "mp3": "audio/mp3",
    "wav": "audio/wav",
    "ogg": "audio/ogg",
    "flac": "audio/flac",
    "mp4": "video/mp4",
    "mov": "video/mov",
    "webm": "video/webm",
}


def guess_mime(url: str, default: str = "image/jpeg") -> str:
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return _MIME_BY_EXTENSION.get(ext, default)


def _bad_request(where: str, message: str, code: str = "invalid_request") -> ClientError:
    return ClientError(400, f"{where}: {message}", code=code, param=where)


def _data_url_part(url: str, where: str) -> Json:
    header, sep, payload = url[len("data:") :].partition(",")
    if not sep:
        raise _bad_request(where, "malformed data URL")
    params = header.split(";")
    mime = params[0] or "text/plain"
    if "base64" not in params[1:]:
        payload = base64.b64encode(unquote_to_bytes(payload)).decode("ascii")
    return {"inlineData": {"mimeType": mime, "data": payload}}


def media_part(url: str, where: str, default_mime: str = "image/jpeg") -> Json:
    if url.startswith("data:"):
        return _data_url_part(url, where)
    return {"fileData": {"mimeType": guess_mime(url, default_mime), "fileUri": url}}


def _file_part(file: Any, where: str) -> Json:
    data = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data, str):
        raise _bad_request(
            where, "only inline `file_data` files can be sent to Gemini", "unsupported_content"
        )
    if data.startswith("data:"):
        return _data_url_part(data, where)
    filename = str(file.get("filename") or "")
    return {"inlineData": {"mimeType": guess_mime(filename, "application/pdf"), "data": data}}


def _content_part(part: Any, where: str) -> Json | None:
    if not isinstance(part, dict):
        raise _bad_request(where, "content parts must be objects")
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        return {"text": text} if isinstance(text, str) and text else None
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str):
            raise _bad_request(where, "image_url.url must be a string")
        return media_part(url, where)
    if kind == "input_audio":
        audio = _as_dict(part.get("input_audio"))
        return {
            "inlineData": {"mimeType": f"audio/{audio.get('format', 'wav')}", "data": audio.get("data", "")}
        }
    if kind == "file":
        return _file_part(part.get("file"), where)
    if kind == "refusal":
        return None
    raise _bad_request(where, f"content part type {kind!r} is not supported by Gemini", "unsupported_content")


def content_parts(content: Any, where: str) -> list[Json]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise _bad_request(where, "content must be a string or a list of parts")
    parts = (_content_part(p, f"{where}[{i}]") for i, p in enumerate(content))
    return [p for p in parts if p is not None]


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _arguments_object(raw: Any, where: str) -> Json:
    if isinstance(raw, dict):
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    try:
        parsed = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise _bad_request(where, "function arguments are not valid JSON") from exc
    if not isinstance(parsed, dict):
        raise _bad_request(where, "function arguments must be a JSON object")
    return parsed


def _function_call_part(call: Any, where: str, names: dict[str, str]) -> Json:
    function = _as_dict(call.get("function")) if isinstance(call, dict) else {}
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise _bad_request(where, "tool call without a function name")
    call_id = call.get("id")
    gemini_id, signature = decode_call_id(call_id) if isinstance(call_id, str) else (None, None)
    if isinstance(call_id, str):
        names[call_id] = name
    fc: Json = {"name": name, "args": _arguments_object(function.get("arguments"), where)}
    if gemini_id is not None:
        fc["id"] = gemini_id
    part: Json = {"functionCall": fc}
    if signature is not None:
        part["thoughtSignature"] = signature
    return part


def _function_response_part(message: Json, where: str, names: Mapping[str, str]) -> Json:
    call_id = message.get("tool_call_id")
    name = names.get(call_id) if isinstance(call_id, str) else None
    if name is None:
        raise _bad_request(where, f"tool_call_id {call_id!r} matches no earlier assistant tool call")
    response: Json = {"name": name, "response": {"output": text_of(message.get("content"))}}
    gemini_id, _ = decode_call_id(call_id) if isinstance(call_id, str) else (None, None)
    if gemini_id is not None:
        response["id"] = gemini_id
    return {"functionResponse": response}


@dataclass(slots=True)
class _Conversation:
    system: list[Json] = field(default_factory=list)
    contents: list[Json] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)

    def add(self, role: str, parts: list[Json]) -> None:
        if not parts:
            return
        last = self.contents[-1] if self.contents else None
        if last is not None and last["role"] == role and _is_tool_turn(last) == _is_tool_turn_parts(parts):
            last["parts"].extend(parts)
        else:
            self.contents.append({"role": role, "parts": parts})


def _is_tool_turn_parts(parts: Iterable[Json]) -> bool:
    return any("functionResponse" in p for p in parts)


def _is_tool_turn(turn: Json) -> bool:
    return _is_tool_turn_parts(turn["parts"])


def translate_messages(messages: Any) -> _Conversation:
    if not isinstance(messages, list):
        raise _bad_request("messages", "must be a list")
    conv = _Conversation()
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _bad_request(where, "must be an object")
        role = message.get("role")
        if role in ("system", "developer"):
            conv.system.extend(content_parts(text_of(message.get("content")), where))
        elif role == "user":
            conv.add("user", content_parts(message.get("content"), f"{where}.content"))
        elif role == "assistant":
            parts = content_parts(message.get("content"), f"{where}.content")
            calls = message.get("tool_calls") or []
            parts += [
                _function_call_part(c, f"{where}.tool_calls[{j}]", conv.names) for j, c in enumerate(calls)
            ]
            conv.add("model", parts)
        elif role == "tool":
            conv.add("user", [_function_response_part(message, where, conv.names)])
        else:
            raise _bad_request(where, f"role {role!r} is not supported")
    return conv


_GENERATION_KEYS = (
    ("temperature", "temperature"),
    ("top_p", "topP"),
    ("seed", "seed"),
    ("presence_penalty", "presencePenalty"),
    ("frequency_penalty", "frequencyPenalty"),
)


def generation_config(body: Body, agent: Agent) -> Json:
    config: Json = {}
    max_tokens = next(
        (v for v in (body.get("max_completion_tokens"), body.get("max_tokens")) if v is not None),
        agent.max_output_tokens,
    )
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    for openai_key, gemini_key in _GENERATION_KEYS:
        if body.get(openai_key) is not None:
            config[gemini_key] = body[openai_key]
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    n = body.get("n")
    if isinstance(n, int) and n > 1:
        config["candidateCount"] = n
    config.update(_response_format(body.get("response_format")))
    return config


def _response_format(fmt: Any) -> Json:
    fmt = _as_dict(fmt)
    if fmt.get("type") == "json_object":
        return {"responseMimeType": "application/json"}
    if fmt.get("type") != "json_schema":
        return {}
    out: Json = {"responseMimeType": "application/json"}
    schema = _as_dict(fmt.get("json_schema")).get("schema")
    if isinstance(schema, dict):
        out["responseJsonSchema"] = schema
    return out


def _declaration(tool: Any, where: str) -> Json:
    if not isinstance(tool, dict) or tool.get("type", "function") != "function":
        raise _bad_request(where, "only function tools can be sent to Gemini", "unsupported_tool")
    function = _as_dict(tool.get("function"))
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise _bad_request(where, "function tool without a name")
    declaration: Json = {"name": name}
    if isinstance(function.get("description"), str):
        declaration["description"] = function["description"]
    parameters = clean_parameters(function.get("parameters"))
    if parameters is not None:
        declaration["parameters"] = parameters
    return declaration


def _named_choice(choice: Any) -> str | None:
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = _as_dict(choice.get("function")).get("name")
        return name if isinstance(name, str) else None
    return None


def tools_and_config(body: Body) -> Json:
    tools = body.get("tools")
    if not tools:
        return {}
    declarations = [_declaration(t, f"tools[{i}]") for i, t in enumerate(tools)]
    choice = body.get("tool_choice")
    mode, allowed = "AUTO", None
    if choice == "none":
        mode = "NONE"
    elif choice == "required":
        mode = "ANY"
    elif (name := _named_choice(choice)) is not None:
        mode, allowed = "ANY", [name]
    elif isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        spec = _as_dict(choice.get("allowed_tools"))
        keep = {_named_choice(t) for t in spec.get("tools") or ()}
        declarations = [d for d in declarations if d["name"] in keep]
        mode = "ANY" if spec.get("mode") == "required" else "AUTO"
    calling: Json = {"mode": mode}
    if allowed is not None:
        calling["allowedFunctionNames"] = allowed
    return {
        "tools": [{"functionDeclarations": declarations}],
        "toolConfig": {"functionCallingConfig": calling},
    }


def translate_request(body: Body, agent: Agent) -> Json:
    conv = translate_messages(body.get("messages"))
    request: Json = {"contents": conv.contents}
    if conv.system:
        request["systemInstruction"] = {"parts": conv.system}
    config = generation_config(body, agent)
    if config:
        request["generationConfig"] = config
    request.update(tools_and_config(body))
    return request


# --- response translation --------------------------------------------------------------------

_FILTER_REASONS = frozenset(
    [
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "LANGUAGE",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    ]
)


def finish_reason(reason: Any, has_calls: bool) -> str:
    if reason in _FILTER_REASONS:
        return "content_filter"
    if reason == "MAX_TOKENS":
        return "length"
    return "tool_calls" if has_calls else "stop"


@dataclass(frozen=True, slots=True)
class GeminiUsage:
    usage: Usage
    reasoning_tokens: int

    def payload(self) -> Json:
        out = usage_json(self.usage)
        out["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return out


def usage_from_metadata(meta: Any) -> GeminiUsage | None:
    if not isinstance(meta, dict):
        return None

    def count(key: str) -> int:
        value = meta.get(key)
        return value if isinstance(value, int) else 0

    thoughts = count("thoughtsTokenCount")
    usage = Usage(
        prompt_tokens=count("promptTokenCount") + count("toolUsePromptTokenCount"),
        completion_tokens=count("candidatesTokenCount") + thoughts,
        cached_tokens=count("cachedContentTokenCount"),
    )
    return GeminiUsage(usage, thoughts)


def _parts(candidate: Json) -> list[Json]:
    parts = _as_dict(candidate.get("content")).get("parts")
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def visible_text(part: Json) -> str | None:
    text = part.get("text")
    return text if isinstance(text, str) and text and not part.get("thought") else None


def openai_tool_call(part: Json, response_id: str | None, candidate: int, position: int) -> Json | None:
    fc = part.get("functionCall")
    if not isinstance(fc, dict):
        return None
    gemini_id = fc.get("id") if isinstance(fc.get("id"), str) and fc.get("id") else None
    signature = part.get("thoughtSignature")
    signature = signature if isinstance(signature, str) and signature else None
    call_id = encode_call_id(call_nonce(response_id, candidate, position), gemini_id, signature)
    args = fc.get("args") if isinstance(fc.get("args"), dict) else {}
    return tool_call(call_id, str(fc.get("name", "")), orjson.dumps(args).decode())


def _choice(candidate: Json, position: int, response_id: str | None) -> Json:
    index = candidate.get("index", position)
    index = index if isinstance(index, int) else position
    texts: list[str] = []
    calls: list[Json] = []
    for part in _parts(candidate):
        text = visible_text(part)
        if text is not None:
            texts.append(text)
        call = openai_tool_call(part, response_id, index, len(calls))
        if call is not None:
            calls.append(call)
    content = "".join(texts) if texts or not calls else None
    return {
        "index": index,
        "message": assistant_message(content, calls or None),
        "logprobs": None,
        "finish_reason": finish_reason(candidate.get("finishReason"), bool(calls)),
    }


def _empty_choice(data: Json) -> Json:
    blocked = bool(_as_dict(data.get("promptFeedback")).get("blockReason"))
    return {
        "index": 0,
        "message": assistant_message(""),
        "logprobs": None,
        "finish_reason": "content_filter" if blocked else "stop",
    }


def _response_id(data: Json) -> str | None:
    value = data.get("responseId")
    return value if isinstance(value, str) and value else None


def completion_body(data: Json, model: str) -> tuple[bytes, Usage | None]:
    response_id = _response_id(data)
    candidates = [c for c in data.get("candidates") or () if isinstance(c, dict)]
    choices = [_choice(c, i, response_id) for i, c in enumerate(candidates)] or [_empty_choice(data)]
    choices.sort(key=lambda c: int(c["index"]))
    body: Json = {
        "id": "chatcmpl-" + response_id if response_id else completion_id(),
        "object": "chat.completion",
        "created": now_s(),
        "model": model,
        "choices": choices,
    }
    usage = usage_from_metadata(data.get("usageMetadata"))
    if usage is not None:
        body["usage"] = usage.payload()
    return orjson.dumps(body), usage.usage if usage else None


# --- errors ----------------------------------------------------------------------------------

_RETRYABLE_RPC = frozenset({"RESOURCE_EXHAUSTED", "UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED"})
_RPC_HTTP = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INTERNAL": 500,
    "DATA_LOSS": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
_TYPE_PREFIX = "type.googleapis.com/google.rpc."
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?)s\s*$")


def google_error(data: Any) -> Json | None:
    """The `error` object of a Google RPC status body (bare or in a one-element array)."""
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else None


def _details(error: Json, kind: str) -> list[Json]:
    details = error.get("details")
    if not isinstance(details, list):
        return []
    return [d for d in details if isinstance(d, dict) and d.get("@type") == _TYPE_PREFIX + kind]


def parse_duration(value: Any) -> float | None:
    """A protobuf Duration in JSON (`"38.6s"`) or as `{seconds, nanos}`."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        return float(match.group(1)) if match else None
    if isinstance(value, dict):
        seconds, nanos = value.get("seconds", 0), value.get("nanos", 0)
        try:
            return float(seconds) + float(nanos) / 1e9
        except (TypeError, ValueError):
            return None
    return None


def _retry_delay(error: Json) -> float | None:
    for info in _details(error, "RetryInfo"):
        delay = parse_duration(info.get("retryDelay"))
        if delay is not None:
            return delay
    return None


def _daily_quota(error: Json) -> bool:
    for failure in _details(error, "QuotaFailure"):
        for violation in failure.get("violations") or ():
            quota_id = violation.get("quotaId") if isinstance(violation, dict) else None
            if isinstance(quota_id, str) and "PerDay" in quota_id:
                return True
    return False


def _error_reason(error: Json) -> str | None:
    for info in _details(error, "ErrorInfo"):
        reason = info.get("reason")
        if isinstance(reason, str):
            return reason
    return None


def _upstream_status(http_status: int, error: Json, rpc: str | None) -> int:
    if http_status >= 400:
        return http_status
    code = error.get("code")
    if isinstance(code, int) and 400 <= code <= 599:
        return code
    return _RPC_HTTP.get(rpc or "", 502)


def failure_from_error(http_status: int, error: Json, headers: Mapping[str, str]) -> Failure:
    rpc = error.get("status") if isinstance(error.get("status"), str) else None
    status = _upstream_status(http_status, error, rpc)
    out_status = client_status(status)
    message = error.get("message")
    message = message if isinstance(message, str) and message else f"gemini returned HTTP {status}"
    retry_after = _retry_delay(error)
    if retry_after is None:
        retry_after = retry_after_seconds(headers)
    if rpc == "RESOURCE_EXHAUSTED" and _daily_quota(error):
        return Failure(
            status=429,
            error_type="insufficient_quota",
            message=message,
            code="insufficient_quota",
            retryable=False,
            breaker_counts=True,
            retry_after_s=retry_after,
        )
    if _error_reason(error) == "API_KEY_INVALID":
        out_status, rpc = 401, "API_KEY_INVALID"
    transient = rpc in _RETRYABLE_RPC if rpc is not None else status in TRANSIENT_STATUSES
    return Failure(
        status=out_status,
        error_type=openai_error_type(out_status),
        message=message,
        code=rpc if rpc is not None else str(status),
        retryable=transient,
        breaker_counts=transient,
        retry_after_s=retry_after,
    )


def classify(http_status: int, headers: Mapping[str, str], raw: bytes) -> Failure:
    try:
        error = google_error(orjson.loads(raw))
    except orjson.JSONDecodeError:
        error = None
    if error is not None:
        return failure_from_error(http_status, error, headers)
    out_status = client_status(http_status)
    transient = http_status in TRANSIENT_STATUSES
    return Failure(
        status=out_status,
        error_type=openai_error_type(out_status),
        message=f"gemini returned HTTP {http_status}",
        code=str(http_status),
        retryable=transient,
        breaker_counts=transient,
        retry_after_s=retry_after_seconds(headers),
    )


# --- streaming -------------------------------------------------------------------------------


class _Chunks:
    """`chat.completion.chunk` payloads for one stream, for any choice index."""

    __slots__ = ("_base", "_include_usage")

    def __init__(self, model: str, include_usage: bool) -> None:
        self._include_usage = include_usage
        self._base: Json = {
            "id": completion_id(),
            "object": "chat.completion.chunk",
            "created": now_s(),
            "model": model,
        }

    def delta(self, index: int, delta: Json, finish: str | None = None) -> bytes:
        body = dict(self._base)
        body["choices"] = [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]
        if self._include_usage:
            body["usage"] = None
        return orjson.dumps(body)

    def usage(self, usage: GeminiUsage) -> bytes:
        body = dict(self._base)
        body["choices"] = []
        body["usage"] = usage.payload()
        return orjson.dumps(body)


@dataclass(slots=True)
class _CandidateState:
    calls: int = 0
    finish: str | None = None


class GeminiStreamTranslator:
    """SSE `GenerateContentResponse` chunks in, OpenAI chunks out; closes the stream at EOF."""

    __slots__ = (
        "_blocked",
        "_candidates",
        "_chunks",
        "_cluster_key",
        "_decoder",
        "_gemini_usage",
        "_include_usage",
        "usage",
    )

    def __init__(self, model: str, include_usage: bool, cluster_key: str = "") -> None:
        self._cluster_key = cluster_key
        self._decoder = SseDecoder()
        self._chunks = _Chunks(model, include_usage)
        self._include_usage = include_usage
        self._candidates: dict[int, _CandidateState] = {}
        self._blocked = False
        self._gemini_usage: GeminiUsage | None = None
        self.usage: Usage | None = None

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        for event in self._decoder.feed(data):
            out.extend(self._on_event(event.data))
        return out

    def finish(self) -> list[bytes]:
        out: list[bytes] = []
        for event in self._decoder.flush():
            out.extend(self._on_event(event.data))
        if self._cut():
            raise UpstreamStreamError(
                network_failure("gemini stream ended before a finishReason"), self._cluster_key
            )
        if not self._candidates:  # the prompt was blocked: an empty, filtered answer
            out.append(self._chunks.delta(0, {"role": "assistant", "content": ""}))
            out.append(self._chunks.delta(0, {}, "content_filter"))
        for index, state in sorted(self._candidates.items()):
            out.append(self._chunks.delta(index, {}, finish_reason(state.finish, state.calls > 0)))
        if self._gemini_usage is not None:
            self.usage = self._gemini_usage.usage
            if self._include_usage:
                out.append(self._chunks.usage(self._gemini_usage))
        return out

    def _cut(self) -> bool:
        if not self._candidates:
            return not self._blocked
        return any(state.finish is None for state in self._candidates.values())

    def _on_event(self, payload: bytes) -> list[bytes]:
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise UpstreamStreamError(
                network_failure("gemini sent a malformed stream chunk"), self._cluster_key
            ) from exc
        error = google_error(data)
        if error is not None:
            raise UpstreamStreamError(failure_from_error(200, error, {}), self._cluster_key)
        if not isinstance(data, dict):
            return []
        if _as_dict(data.get("promptFeedback")).get("blockReason"):
            self._blocked = True
        usage = usage_from_metadata(data.get("usageMetadata"))
        if usage is not None:
            self._gemini_usage = usage
        out: list[bytes] = []
        response_id = _response_id(data)
        for position, candidate in enumerate(data.get("candidates") or ()):
            if isinstance(candidate, dict):
                out.extend(self._on_candidate(candidate, position, response_id))
        return out

    def _on_candidate(self, candidate: Json, position: int, response_id: str | None) -> list[bytes]:
        index = candidate.get("index", position)
        index = index if isinstance(index, int) else position
        out: list[bytes] = []
        state = self._candidates.get(index)
        if state is None:
            state = self._candidates[index] = _CandidateState()
            out.append(self._chunks.delta(index, {"role": "assistant", "content": ""}))
        for part in _parts(candidate):
            text = visible_text(part)
            if text is not None:
                out.append(self._chunks.delta(index, {"content": text}))
            call = openai_tool_call(part, response_id, index, state.calls)
            if call is not None:
                out.append(self._chunks.delta(index, {"tool_calls": [{"index": state.calls, **call}]}))
                state.calls += 1
        reason = candidate.get("finishReason")
        if isinstance(reason, str) and reason:
            state.finish = reason
        return out


# --- the adapter -----------------------------------------------------------------------------


def _include_usage(request: Body) -> bool:
    options = request.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _model_name(cluster: Cluster, request: Body) -> str:
    model = request.get("model")
    return model if isinstance(model, str) and model else cluster.model_id


class GeminiAdapter:
    def build_request(
        self, cluster: Cluster, agent: Agent, body: Body, auth: AuthMaterial
    ) -> UpstreamRequest:
        stream = bool(body.get("stream"))
        headers = {"Content-Type": "application/json", **cluster.headers, **auth_headers(cluster, auth)}
        if stream:
            headers["Accept"] = "text/event-stream"
        return UpstreamRequest(
            url=endpoint_url(cluster, stream=stream),
            headers=headers,
            body=orjson.dumps(translate_request(body, agent)),
            stream=stream,
        )

    def parse_response(self, cluster: Cluster, request: Body, raw: bytes) -> Completion:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamNetworkError(
                network_failure("gemini returned a malformed JSON answer"), cluster.key
            ) from exc
        error = google_error(data)
        if error is not None:
            raise UpstreamStatusError(failure_from_error(200, error, {}), cluster.key)
        if isinstance(data, list) and len(data) == 1:
            data = data[0]
        if not isinstance(data, dict):
            raise UpstreamNetworkError(network_failure("gemini returned an unexpected answer"), cluster.key)
        body, usage = completion_body(data, _model_name(cluster, request))
        return Completion(body=body, usage=usage)

    def stream_translator(self, cluster: Cluster, request: Body) -> GeminiStreamTranslator:
        return GeminiStreamTranslator(_model_name(cluster, request), _include_usage(request), cluster.key)

    def classify_error(
        self, cluster: Cluster, status: int, headers: Mapping[str, str], raw: bytes
    ) -> Failure:
        del cluster
        return classify(status, headers, raw)
