"""OpenAI answers → Gemini `GenerateContentResponse`s (whole answers; the shapes streams share).

- Each choice becomes a candidate (`index` kept): `reasoning_content` → a leading
  `{"text": …, "thought": true}` part (when the caller shows thoughts), content text → a text
  part, a refusal → a text part, each tool call → a `functionCall` part with `args` as an object
  (arguments that are not a JSON object come as `{"arguments": "<raw text>"}`) and the OpenAI
  call id as its `id`, so the client's `functionResponse` can name it.
- `finish_reason`: stop/tool_calls/function_call → STOP, length → MAX_TOKENS, content_filter →
  SAFETY, anything else → OTHER (the table is in `wire`).
- `usage` → `usageMetadata` (`wire.metadata_from_usage`): promptTokenCount = prompt_tokens
  (cached tokens are inside, as in Gemini), candidatesTokenCount = completion_tokens - reasoning
  tokens, thoughtsTokenCount = reasoning tokens (when any), cachedContentTokenCount (when any),
  totalTokenCount = prompt + completion.
- `modelVersion` is the model that answered (the cluster's model id), `responseId` the OpenAI id.
"""

from __future__ import annotations

from typing import Any

import orjson

from astra_sidecar.sidecar.errors import UpstreamMalformedError
from astra_sidecar.sidecar.policy.reasoning import REASONING_FIELD
from astra_sidecar.sidecar.protocols.base import Usage
from astra_sidecar.sidecar.protocols.gemini.json_values import as_dict
from astra_sidecar.sidecar.protocols.gemini.wire import gemini_finish_reason, metadata_from_usage

Json = dict[str, Any]


def index_of(item: Json, position: int) -> int:
    """A choice's (or tool call's) `index`, else its position."""
    index = item.get("index")
    return index if isinstance(index, int) and not isinstance(index, bool) else position


def function_call_part(call_id: str | None, name: str, arguments: str) -> Json:
    try:
        args = orjson.loads(arguments) if arguments.strip() else {}
    except orjson.JSONDecodeError:
        args = None
    call: Json = {"name": name, "args": args if isinstance(args, dict) else {"arguments": arguments}}
    if call_id:
        call["id"] = call_id
    return {"functionCall": call}


def _count(block: Any, key: str) -> int:
    value = block.get(key) if isinstance(block, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_metadata(usage: Any) -> Json | None:
    """An OpenAI `usage` object as Gemini `usageMetadata`."""
    if not isinstance(usage, dict):
        return None
    return metadata_from_usage(
        Usage(
            prompt_tokens=_count(usage, "prompt_tokens"),
            completion_tokens=_count(usage, "completion_tokens"),
            cached_tokens=_count(usage.get("prompt_tokens_details"), "cached_tokens"),
            reasoning_tokens=_count(usage.get("completion_tokens_details"), "reasoning_tokens"),
        )
    )


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def thought_part(message: Json, key: str) -> list[Json]:
    """The message's (or delta's) reasoning text as a Gemini thought part, when there is some."""
    reasoning = message.get(key)
    return [{"text": reasoning, "thought": True}] if isinstance(reasoning, str) and reasoning else []


def _parts(message: Json, thoughts: bool) -> list[Json]:
    parts: list[Json] = thought_part(message, REASONING_FIELD) if thoughts else []
    text = _text_of(message.get("content")) or _text_of(message.get("refusal"))
    if text:
        parts.append({"text": text})
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            arguments = function.get("arguments")
            parts.append(
                function_call_part(
                    call.get("id"),
                    str(function.get("name", "")),
                    arguments if isinstance(arguments, str) else orjson.dumps(arguments or {}).decode(),
                )
            )
    return parts


def candidate(parts: list[Json], index: int, finish: str | None) -> Json:
    out: Json = {"content": {"role": "model", "parts": parts}, "index": index}
    if finish is not None:
        out["finishReason"] = finish
    return out


def envelope(candidates: list[Json], model: Any, response_id: Any, usage: Json | None = None) -> Json:
    out: Json = {"candidates": candidates}
    if usage is not None:
        out["usageMetadata"] = usage
    if isinstance(model, str) and model:
        out["modelVersion"] = model
    if isinstance(response_id, str) and response_id:
        out["responseId"] = response_id
    return out


def response_from_openai(raw: bytes, thoughts: bool = True) -> bytes:
    """A whole OpenAI `chat.completion` as a `GenerateContentResponse`."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamMalformedError("not JSON") from exc
    if not isinstance(data, dict):
        raise UpstreamMalformedError("not a chat completion")
    candidates = []
    for position, choice in enumerate(data.get("choices") or ()):
        if not isinstance(choice, dict):
            continue
        parts = _parts(as_dict(choice.get("message")), thoughts)
        candidates.append(
            candidate(parts, index_of(choice, position), gemini_finish_reason(choice.get("finish_reason")))
        )
    body = envelope(candidates, data.get("model"), data.get("id"), usage_metadata(data.get("usage")))
    return orjson.dumps(body)
