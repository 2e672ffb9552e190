"""Checks an Anthropic Messages request body the way the API does, before anything is sent.

Every refusal is a `ClientError(400)` whose `param` is the offending field as a dotted path, the
way Anthropic names fields (`messages.0.content.1.text`). `model` is not required (the agent comes
from the path) but must be a string when given; `max_tokens` is optional here too (natively the
agent's `maxOutputTokens`, or 4096, fills in; translated, the policy's cap does, when there is
one). Unknown top-level fields are left to the upstream.

A `{"role": "system"}` message inside `messages` (Claude Code sends them, under beta flags that
change between its releases: `mid-conversation-system-2026-04-07`, `per-turn-control-2026-07-01`)
is accepted whatever the flags, its content a string or text blocks: natively Anthropic judges it
with the caller's `anthropic-beta` header, translated it becomes a system message in place.
"""

from __future__ import annotations

from typing import Any

from astra_sidecar.sidecar.errors import ClientError

Json = dict[str, Any]

_ROLES = ("user", "assistant")
_TOOL_CHOICES = ("auto", "any", "tool", "none")


def _bad(message: str, param: str) -> ClientError:
    return ClientError(400, message, param=param)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def check_messages_body(body: Any) -> Json:
    """The body, unchanged, or a 400 naming the first offending field."""
    if not isinstance(body, dict):
        raise _bad("request body must be a JSON object", "body")
    if body.get("model") is not None and not isinstance(body["model"], str):
        raise _bad("model: must be a string", "model")
    _check_messages(body.get("messages"))
    _check_system(body.get("system"))
    _check_scalars(body)
    _check_tools(body.get("tools"))
    _check_tool_choice(body.get("tool_choice"))
    for key in ("metadata", "output_format", "output_config", "context_management"):
        if body.get(key) is not None and not isinstance(body[key], dict):
            raise _bad(f"{key}: must be an object", key)
    return body


def _check_scalars(body: Json) -> None:
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and not (_is_int(max_tokens) and max_tokens >= 1):
        raise _bad("max_tokens: must be an integer of at least 1", "max_tokens")
    if "stream" in body and body["stream"] is not None and not isinstance(body["stream"], bool):
        raise _bad("stream: must be a boolean", "stream")
    for key in ("temperature", "top_p"):
        if body.get(key) is not None and not _is_number(body[key]):
            raise _bad(f"{key}: must be a number", key)
    top_k = body.get("top_k")
    if top_k is not None and not (_is_int(top_k) and top_k >= 0):
        raise _bad("top_k: must be a non-negative integer", "top_k")
    stops = body.get("stop_sequences")
    if stops is not None and not (isinstance(stops, list) and all(_is_text(s) for s in stops)):
        raise _bad("stop_sequences: must be an array of strings", "stop_sequences")


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise _bad("messages: must be a non-empty array", "messages")
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, dict):
            raise _bad(f"{where}: must be an object", where)
        role = message.get("role")
        if role == "system":
            if message.get("content") is None:
                raise _bad(f"{where}.content: must be a string or an array of text blocks", f"{where}.content")
            _check_system(message["content"], f"{where}.content")
            continue
        if role not in _ROLES:  # Anthropic's own words
            raise _bad(f"{where}.role: must be 'user' or 'assistant'", f"{where}.role")
        _check_content(message.get("content"), f"{where}.content")


def _check_content(content: Any, where: str) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _bad(f"{where}: must be a string or an array of content blocks", where)
    for index, block in enumerate(content):
        _check_block(block, f"{where}.{index}")


def _check_block(block: Any, where: str) -> None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise _bad(f"{where}: must be an object with a 'type'", where)
    kind = block["type"]
    if kind == "text" and not _is_text(block.get("text")):
        raise _bad(f"{where}.text: must be a string", f"{where}.text")
    if kind == "image" and not isinstance(block.get("source"), dict):
        raise _bad(f"{where}.source: must be an object", f"{where}.source")
    if kind == "tool_use":
        for key in ("id", "name"):
            if not _is_text(block.get(key)) or not block[key]:
                raise _bad(f"{where}.{key}: must be a non-empty string", f"{where}.{key}")
        if not isinstance(block.get("input"), dict):
            raise _bad(f"{where}.input: must be an object", f"{where}.input")
    if kind == "tool_result":
        if not _is_text(block.get("tool_use_id")) or not block["tool_use_id"]:
            raise _bad(f"{where}.tool_use_id: must be a non-empty string", f"{where}.tool_use_id")
        if block.get("content") is not None:
            _check_content(block["content"], f"{where}.content")


def _check_system(system: Any, at: str = "system") -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise _bad(f"{at}: must be a string or an array of text blocks", at)
    for index, block in enumerate(system):
        where = f"{at}.{index}"
        if not isinstance(block, dict) or block.get("type") != "text" or not _is_text(block.get("text")):
            raise _bad(f"{where}: must be a text block", where)


def _check_tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise _bad("tools: must be an array", "tools")
    for index, tool in enumerate(tools):
        where = f"tools.{index}"
        if not isinstance(tool, dict) or not _is_text(tool.get("name")) or not tool["name"]:
            raise _bad(f"{where}.name: must be a non-empty string", f"{where}.name")
        custom = tool.get("type") in (None, "custom")
        if custom and not isinstance(tool.get("input_schema"), dict):
            raise _bad(f"{where}.input_schema: must be an object", f"{where}.input_schema")


def _check_tool_choice(choice: Any) -> None:
    if choice is None:
        return
    if not isinstance(choice, dict) or choice.get("type") not in _TOOL_CHOICES:
        raise _bad("tool_choice: must be an object of type auto, any, tool or none", "tool_choice")
    if choice["type"] == "tool" and (not _is_text(choice.get("name")) or not choice["name"]):
        raise _bad("tool_choice.name: must name a tool", "tool_choice.name")
    parallel = choice.get("disable_parallel_tool_use")
    if parallel is not None and not isinstance(parallel, bool):
        raise _bad(
            "tool_choice.disable_parallel_tool_use: must be a boolean",
            "tool_choice.disable_parallel_tool_use",
        )
