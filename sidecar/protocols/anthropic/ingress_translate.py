"""Anthropic Messages ⇄ OpenAI Chat Completions, for agents (or fallbacks) on other providers.

Request (a checked Messages body → an OpenAI chat body; the agent's policy is applied after):
- `system` (string or text blocks) → one leading system message; `cache_control` marks dropped.
- user text/image blocks → parts (a lone text block → a string; base64 images → `data:` URLs,
  url images → their URL); `tool_result` blocks → `tool` messages, in order, ahead of the user's
  own parts (OpenAI wants them right after the assistant's calls); images inside a result move
  into the user message that follows (tool messages carry text only); `is_error` is dropped.
- assistant text blocks → content (joined); `tool_use` → `tool_calls` with the `input` object
  serialised as the JSON `arguments` string; thinking blocks are dropped (the signed blocks a
  provider needs back ride in the tool_use ids: `openai/reasoning_carrier.py`).
- custom tools → functions with `input_schema` as `parameters` (`strict` kept); Anthropic server
  tools (typed, e.g. `web_search_…`), documents and other Anthropic-only blocks → 400.
- `tool_choice` auto/any/tool/none → auto/required/named/none; `disable_parallel_tool_use` →
  `parallel_tool_calls: false` (only with tools, as OpenAI requires).
- `stop_sequences` → `stop`; `temperature`/`top_p`/`max_tokens` kept; `thinking` →
  `reasoning_effort` (disabled → none, enabled → its budget's level, adaptive → medium);
  `service_tier`, `cache_control` honoured as they are; `metadata.user_id` → `user`; `output_config.format` json_schema (or the
  structured-outputs beta's top-level `output_format`) → `response_format` json_schema;
  `output_config.effort` low/medium/high → `reasoning_effort` (another level → 400);
  `context_management`, `top_k` and every other field: judged before this by `ingress_fields`;
  a stream asks for `include_usage` (usage goes in message_delta).
- `{"role": "system"}` messages inside `messages` (mid-conversation system turns, checked by
  `ingress_validate`) → system messages at the same place.

Response (an OpenAI completion → a Message): `reasoning_content` → a leading `thinking` block
(empty `signature`), text → a text block, refusal → a text block with
`stop_reason: refusal`, tool calls → `tool_use` blocks (`input` parsed from the arguments
string; empty or invalid JSON → `{}`), finish_reason → stop_reason and usage (`wire.stop_reason`,
`wire.anthropic_usage`: cached tokens as `cache_read_input_tokens`, `input_tokens` = prompt minus
cached, and minus cache writes when reported).
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.policy.reasoning import REASONING_FIELD, effort_from_thinking
from astra_sidecar.sidecar.protocols.anthropic.wire import anthropic_usage, stop_reason
from astra_sidecar.sidecar.protocols.codec import first_choice

Json = dict[str, Any]

_THINKING = frozenset({"thinking", "redacted_thinking"})


def message_id() -> str:
    return "msg_" + uuid.uuid4().hex[:24]


def _unsupported(what: str, param: str) -> ClientError:
    return ClientError(
        400,
        f"{param}: {what} is served only by Anthropic models, not by this agent's provider",
        code="unsupported_content",
        param=param,
    )


# --- request ------------------------------------------------------------------------------------


def openai_request(agent_id: str, body: Json) -> Json:
    """The OpenAI chat body for a checked Messages body (see the module docstring)."""
    out: Json = {"model": agent_id, "messages": _system(body.get("system")) + _messages(body["messages"])}
    for key in ("max_tokens", "temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    out.update(_tools(body))
    user_id = (body.get("metadata") or {}).get("user_id")
    if user_id:
        out["user"] = str(user_id)
    response_format = _response_format(body)
    if response_format:
        out["response_format"] = response_format
    _coding_agent_fields(body, out)
    _thinking(body, out)
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _system(system: Any) -> list[Json]:
    if isinstance(system, str):
        return [{"role": "system", "content": system}] if system else []
    parts = [{"type": "text", "text": block["text"]} for block in system or () if block["text"]]
    return [{"role": "system", "content": parts}] if parts else []


def _messages(messages: list[Json]) -> list[Json]:
    out: list[Json] = []
    for index, message in enumerate(messages):
        where = f"messages.{index}.content"
        if message["role"] == "system":  # mid-conversation (beta): a system message in place
            out.extend(_system(message["content"]) or [{"role": "system", "content": ""}])
        elif message["role"] == "assistant":
            out.append(_assistant(message["content"], where))
        else:
            out.extend(_user(message["content"], where))
    return out


def _image_part(block: Json, where: str) -> Json:
    source = block["source"]
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif source.get("type") == "url":
        url = str(source.get("url"))
    else:
        raise _unsupported(f"an image source of type {source.get('type')!r}", where)
    return {"type": "image_url", "image_url": {"url": url}}


def _as_content(parts: list[Json]) -> str | list[Json]:
    if not parts:
        return ""
    if len(parts) == 1 and parts[0]["type"] == "text":
        return str(parts[0]["text"])
    return parts


def _tool_message(block: Json, where: str) -> tuple[Json, list[Json]]:
    """The tool message for a `tool_result`, and the images it carried (for the user message)."""
    content = block.get("content")
    texts: list[Json] = []
    images: list[Json] = []
    if isinstance(content, str):
        texts = [{"type": "text", "text": content}] if content else []
    for index, inner in enumerate(content if isinstance(content, list) else ()):
        kind = inner["type"]
        if kind == "text":
            texts.append({"type": "text", "text": inner["text"]})
        elif kind == "image":
            images.append(_image_part(inner, f"{where}.content.{index}"))
        else:
            raise _unsupported(f"a {kind!r} block in a tool_result", f"{where}.content.{index}")
    message = {"role": "tool", "tool_call_id": block["tool_use_id"], "content": _as_content(texts)}
    return message, images


def _user(content: str | list[Json], where: str) -> list[Json]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    results: list[Json] = []
    carried: list[Json] = []
    parts: list[Json] = []
    for index, block in enumerate(content):
        kind, at = block["type"], f"{where}.{index}"
        if kind == "tool_result":
            message, images = _tool_message(block, at)
            results.append(message)
            carried.extend(images)
        elif kind == "text":
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            parts.append(_image_part(block, at))
        else:
            raise _unsupported(f"a {kind!r} block", at)
    parts = carried + parts
    if parts or not results:
        results.append({"role": "user", "content": _as_content(parts)})
    return results


def _assistant(content: str | list[Json], where: str) -> Json:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[Json] = []
    for index, block in enumerate(content):
        kind = block["type"]
        if kind == "text":
            texts.append(block["text"])
        elif kind == "tool_use":
            arguments = orjson.dumps(block["input"]).decode()
            calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {"name": block["name"], "arguments": arguments},
                }
            )
        elif kind not in _THINKING:
            raise _unsupported(f"a {kind!r} block", f"{where}.{index}")
    text = "".join(texts)
    message: Json = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _function(tool: Json, where: str) -> Json:
    if tool.get("type") not in (None, "custom"):
        raise _unsupported(f"the tool type {tool['type']!r}", where)
    function: Json = {"name": tool["name"]}
    if tool.get("description"):
        function["description"] = tool["description"]
    function["parameters"] = tool["input_schema"]
    if tool.get("strict") is True:
        function["strict"] = True
    return {"type": "function", "function": function}


def _tool_choice(choice: Json) -> Any:
    kind = choice.get("type")
    if kind == "any":
        return "required"
    if kind == "tool":
        return {"type": "function", "function": {"name": choice["name"]}}
    return "none" if kind == "none" else "auto"


def _tools(body: Json) -> Json:
    tools = [_function(tool, f"tools.{i}") for i, tool in enumerate(body.get("tools") or ())]
    if not tools:
        return {}
    out: Json = {"tools": tools}
    choice = body.get("tool_choice")
    if choice is None:
        return out
    out["tool_choice"] = _tool_choice(choice)
    if choice.get("disable_parallel_tool_use") is True and choice.get("type") != "none":
        out["parallel_tool_calls"] = False
    return out


def _response_format(body: Json) -> Json | None:
    """From `output_config.format`, or the beta's top-level `output_format` (structured outputs)."""
    config = body.get("output_config")
    output_format = config.get("format") if isinstance(config, dict) else None
    output_format = output_format if output_format is not None else body.get("output_format")
    if not isinstance(output_format, dict) or output_format.get("type") != "json_schema":
        return None
    schema = output_format.get("schema")
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}} if schema else None


#: Anthropic's `output_config.effort` levels → OpenAI's `reasoning_effort`.
_EFFORTS = {"low": "low", "medium": "medium", "high": "high"}


def _coding_agent_fields(body: Json, out: Json) -> None:
    """`output_config.effort` → `reasoning_effort` (`context_management`: see `ingress_fields`)."""
    config = body.get("output_config")
    effort = config.get("effort") if isinstance(config, dict) else None
    if effort is None:
        return
    if effort not in _EFFORTS:
        raise ClientError(
            400,
            f"output_config.effort: {effort!r} has no equivalent on this agent's provider (low, medium, high)",
            code="unsupported_content",
            param="output_config.effort",
        )
    out.setdefault("reasoning_effort", _EFFORTS[effort])


def _thinking(body: Json, out: Json) -> None:
    """`thinking` → `reasoning_effort` (`policy.reasoning.effort_from_thinking`); an
    `output_config.effort` the caller also sent wins."""
    effort = effort_from_thinking(body.get("thinking"))
    if effort is not None:
        out.setdefault("reasoning_effort", effort)


# --- response -----------------------------------------------------------------------------------


def tool_input(arguments: Any) -> Json:
    """The `input` object of a tool call whose OpenAI arguments is a JSON string."""
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) and arguments.strip() else {}
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return ""


def _answer_blocks(message: Json) -> tuple[list[Json], bool]:
    """The content blocks of an OpenAI assistant message, and whether it was a refusal."""
    blocks: list[Json] = []
    reasoning = message.get(REASONING_FIELD)
    if isinstance(reasoning, str) and reasoning:
        # No other provider signs its reasoning: the signature is empty (carried blocks ride in
        # the tool_use ids), and the client's copy of this block is dropped on the way back.
        blocks.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = _text_of(message.get("content"))
    refusal = message.get("refusal") if isinstance(message.get("refusal"), str) else ""
    if text or refusal:
        blocks.append({"type": "text", "text": text or refusal})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id") or "",
                "name": function.get("name") or "",
                "input": tool_input(function.get("arguments")),
            }
        )
    return blocks, bool(refusal) and not text


def message_from_completion(raw: bytes) -> bytes:
    """The Anthropic Message for an OpenAI `chat.completion` (JSON bytes in, JSON bytes out)."""
    completion, choice, message = first_choice(raw)
    content, refused = _answer_blocks(message)
    tools = any(block["type"] == "tool_use" for block in content)
    reason = "refusal" if refused else stop_reason(choice.get("finish_reason"), tools)
    return orjson.dumps(
        {
            "id": message_id(),
            "type": "message",
            "role": "assistant",
            "model": completion.get("model") or "",
            "content": content,
            "stop_reason": reason,
            "stop_sequence": None,
            "usage": anthropic_usage(completion.get("usage")),
        }
    )
