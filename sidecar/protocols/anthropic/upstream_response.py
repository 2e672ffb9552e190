"""An Anthropic Message → an OpenAI `chat.completion`.

- Text blocks are concatenated into `content`; `tool_use` blocks become `tool_calls` with
  `arguments` = the JSON-serialised `input`; thinking text → `reasoning_content`, and the
  `thinking`/`redacted_thinking` blocks ride in the first tool call's id (`upstream_thinking`).
  With the JSON-mode emulation (`upstream_tools`), the `json_response` tool's input is content.
- `stop_reason` → `finish_reason` and usage: `wire.finish_reason`, `wire.usage_from`.
- An error object inside a 200 is an `UpstreamStatusError` (`upstream_errors`); a body that is
  not a JSON object with a `content` list is an `UpstreamMalformedError`.

Reference: https://docs.anthropic.com/en/api/messages
"""

from __future__ import annotations

from typing import Any

import orjson

from astra_sidecar.compiler.table import Cluster
from astra_sidecar.sidecar.errors import UpstreamMalformedError, UpstreamStatusError
from astra_sidecar.sidecar.large_json import answer_json
from astra_sidecar.sidecar.policy.reasoning import REASONING_FIELD
from astra_sidecar.sidecar.protocols.anthropic.upstream_errors import error_object_failure
from astra_sidecar.sidecar.protocols.anthropic.upstream_thinking import carry, thinking_blocks, thinking_text
from astra_sidecar.sidecar.protocols.anthropic.upstream_tools import JSON_TOOL_NAME, json_tool_emulated
from astra_sidecar.sidecar.protocols.anthropic.wire import finish_reason, usage_from
from astra_sidecar.sidecar.protocols.base import Body, Completion
from astra_sidecar.sidecar.protocols.openai import wire as shapes

Json = dict[str, Any]


def chat_id(message_id: Any) -> str:
    """The OpenAI completion id for an Anthropic message id (a fresh one without it)."""
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
    blocks = thinking_blocks(message.get("content"))
    if calls and blocks:
        calls[0]["id"] = carry(calls[0]["id"], blocks)
    return (text if text or not calls else None), calls


def _with_reasoning(message: Json, content: Any) -> Json:
    reasoning = thinking_text(thinking_blocks(content))
    if reasoning:
        message[REASONING_FIELD] = reasoning
    return message


def malformed(cluster: Cluster, what: str) -> UpstreamMalformedError:
    return UpstreamMalformedError(what, cluster.key, "claude")


def load_answer(cluster: Cluster, raw: bytes) -> Json:
    """The decoded JSON object of a whole answer; an error object inside it is raised."""
    try:
        answer = answer_json(raw)
    except orjson.JSONDecodeError as exc:
        raise malformed(cluster, "body is not JSON") from exc
    if not isinstance(answer, dict):
        raise malformed(cluster, "body is not a JSON object")
    if answer.get("type") == "error":
        raise UpstreamStatusError(error_object_failure(answer), cluster.key)
    return answer


def parse_message(cluster: Cluster, request: Body, raw: bytes) -> Completion:
    message = load_answer(cluster, raw)
    if not isinstance(message.get("content"), list):
        raise malformed(cluster, "no content list")
    content, calls = _message_fields(message, json_tool_emulated(request))
    usage = usage_from(message.get("usage") or {})
    body = shapes.completion(
        id=chat_id(message.get("id")),
        model=message.get("model") or cluster.model_id,
        created=shapes.now_s(),
        message=_with_reasoning(shapes.assistant_message(content, calls), message.get("content")),
        finish_reason=finish_reason(message.get("stop_reason"), len(calls)),
        usage=usage,
    )
    return Completion(body=body, usage=usage)
