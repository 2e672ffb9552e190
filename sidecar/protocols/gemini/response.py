"""A whole `GenerateContentResponse` → an OpenAI `chat.completion`, and the pieces the stream
translator shares with it (visible text, tool calls, candidate indexes). `read_response` (the
answer object, or the error it is) is shared with the native path, which does not translate.

`finishReason` is `STOP` even for function calls → `tool_calls`; MAX_TOKENS → `length`;
SAFETY/RECITATION/BLOCKLIST/… → `content_filter` (the table is in `wire`);
`promptFeedback.blockReason` without candidates → `content_filter` with empty content. `thought`
parts (summaries, with `includeThoughts`) become `message.reasoning_content`, never `content`. Usage (`wire.usage_from_metadata`): prompt = `promptTokenCount +
toolUsePromptTokenCount`, cached = `cachedContentTokenCount`, completion = `candidatesTokenCount +
thoughtsTokenCount`, reasoning = `thoughtsTokenCount` (always reported).
"""

from __future__ import annotations

import orjson

from astra_sidecar.sidecar.errors import UpstreamMalformedError, UpstreamStatusError
from astra_sidecar.sidecar.large_json import answer_json
from astra_sidecar.sidecar.policy.reasoning import REASONING_FIELD
from astra_sidecar.sidecar.protocols.base import Usage
from astra_sidecar.sidecar.protocols.gemini.errors import failure_from_error, google_error
from astra_sidecar.sidecar.protocols.gemini.ids import call_nonce, encode_call_id
from astra_sidecar.sidecar.protocols.gemini.json_values import as_dict
from astra_sidecar.sidecar.protocols.gemini.wire import openai_finish_reason, usage_from_metadata
from astra_sidecar.sidecar.protocols.openai.wire import (
    Json,
    assistant_message,
    completion_id,
    now_s,
    tool_call,
    usage_json,
)


def read_response(raw: bytes, cluster_key: str) -> Json:
    """The `GenerateContentResponse` object of a whole answer (also in a one-element array).
    Raises `UpstreamStatusError` for a Google error body, `UpstreamMalformedError` for anything
    else that is not a response object."""
    try:
        data = answer_json(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamMalformedError("not JSON", cluster_key, "gemini") from exc
    error = google_error(data)
    if error is not None:
        raise UpstreamStatusError(failure_from_error(200, error, {}), cluster_key)
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if not isinstance(data, dict):
        raise UpstreamMalformedError("not a GenerateContentResponse", cluster_key, "gemini")
    return data


def response_id_of(data: Json) -> str | None:
    value = data.get("responseId")
    return value if isinstance(value, str) and value else None


def prompt_blocked(data: Json) -> bool:
    return bool(as_dict(data.get("promptFeedback")).get("blockReason"))


def candidate_index(candidate: Json, position: int) -> int:
    index = candidate.get("index", position)
    return index if isinstance(index, int) else position


def candidate_parts(candidate: Json) -> list[Json]:
    parts = as_dict(candidate.get("content")).get("parts")
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def thought_text(part: Json) -> str | None:
    text = part.get("text")
    return text if isinstance(text, str) and text and part.get("thought") else None


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
    index = candidate_index(candidate, position)
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[Json] = []
    for part in candidate_parts(candidate):
        text = visible_text(part)
        if text is not None:
            texts.append(text)
        thought = thought_text(part)
        if thought is not None:
            thoughts.append(thought)
        call = openai_tool_call(part, response_id, index, len(calls))
        if call is not None:
            calls.append(call)
    content = "".join(texts) if texts or not calls else None
    message = assistant_message(content, calls or None)
    if thoughts:
        message[REASONING_FIELD] = "".join(thoughts)
    return {
        "index": index,
        "message": message,
        "logprobs": None,
        "finish_reason": openai_finish_reason(candidate.get("finishReason"), bool(calls)),
    }


def _empty_choice(data: Json) -> Json:
    return {
        "index": 0,
        "message": assistant_message(""),
        "logprobs": None,
        "finish_reason": "content_filter" if prompt_blocked(data) else "stop",
    }


def completion_body(data: Json, model: str) -> tuple[bytes, Usage | None]:
    response_id = response_id_of(data)
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
        body["usage"] = usage_json(usage, report_reasoning=True)  # thoughts, 0 included
    return orjson.dumps(body), usage
