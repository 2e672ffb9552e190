"""An OpenAI `chat.completion` → a Responses `response` object
(https://platform.openai.com/docs/api-reference/responses/object).

- text → one `message` item with an `output_text` part; a refusal → a `refusal` part;
- each tool call → a `function_call` item (`call_id` = the chat tool call id); a function of a
  `namespace` tool gets its own `name` and the `namespace` back (`tools.ToolNames`);
- `finish_reason` `length` → `status: incomplete`, `incomplete_details.reason: max_output_tokens`;
  `content_filter` → incomplete with reason `content_filter`; else `completed`;
- usage → `input_tokens`, `output_tokens`, `total_tokens`, with `input_tokens_details.cached_tokens`
  and `output_tokens_details.reasoning_tokens` from the chat usage details.

`output_text` is not part of the wire object: the SDKs compute it from the `message` items.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from astra_sidecar.sidecar.protocols.codec import first_choice
from astra_sidecar.sidecar.protocols.responses.tools import ToolNames

Json = dict[str, Any]

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def usage_of(raw: Any) -> Json | None:
    if not isinstance(raw, dict):
        return None
    prompt = int(raw.get("prompt_tokens") or 0)
    completion = int(raw.get("completion_tokens") or 0)
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": int(prompt_details.get("cached_tokens") or 0)},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": int(completion_details.get("reasoning_tokens") or 0)},
        "total_tokens": int(raw.get("total_tokens") or prompt + completion),
    }


def text_part(text: str) -> Json:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, parts: list[Json], status: str = "completed") -> Json:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": parts}


def function_item(
    item_id: str, call_id: str, chat_name: str, arguments: str, names: ToolNames, status: str = "completed"
) -> Json:
    namespace, name = names.original(chat_name)
    item: Json = {"id": item_id, "type": "function_call", "status": status, "call_id": call_id}
    if namespace is not None:
        item["namespace"] = namespace
    item.update(name=name, arguments=arguments)
    return item


def response_object(
    response_id: str, echo: Json, *, model: str, status: str, output: list[Json], usage: Json | None,
    finish: str | None = None, created: int | None = None, error: Json | None = None,
) -> Json:  # fmt: skip
    """A whole Response object with the request's echoed fields."""
    reason = _INCOMPLETE.get(finish or "")
    if reason is not None and status == "completed":
        status = "incomplete"
    return {
        "id": response_id,
        "object": "response",
        "created_at": created if created is not None else int(time.time()),
        "status": status,
        "error": error,
        "incomplete_details": {"reason": reason} if reason is not None and status == "incomplete" else None,
        "model": model,
        "output": output,
        "usage": usage,
        **echo,
    }


def _output(message: Json, names: ToolNames) -> list[Json]:
    items: list[Json] = []
    content = message.get("content")
    text = content if isinstance(content, str) else ""
    if isinstance(content, list):
        text = "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    refusal = message.get("refusal")
    if text:
        items.append(message_item(new_id("msg"), [text_part(text)]))
    elif isinstance(refusal, str) and refusal:
        items.append(message_item(new_id("msg"), [{"type": "refusal", "refusal": refusal}]))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = orjson.dumps(arguments or {}).decode()
        items.append(
            function_item(
                new_id("fc"), call.get("id") or new_id("call"), function.get("name") or "", arguments, names
            )
        )
    return items


def response_from_completion(raw: bytes, echo: Json, names: ToolNames) -> bytes:
    completion, choice, message = first_choice(raw)
    body = response_object(
        new_id("resp"),
        echo,
        model=str(completion.get("model") or ""),
        status="completed",
        output=_output(message, names),
        usage=usage_of(completion.get("usage")),
        finish=choice.get("finish_reason"),
        created=completion.get("created") if isinstance(completion.get("created"), int) else None,
    )
    return orjson.dumps(body)
