"""OpenAI chat `messages` → Anthropic's top-level `system` blocks and alternating turns.

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
- Images: `data:` URLs → base64 source (`image/jpg` normalised to `image/jpeg`), http(s) → url
  source. Audio/file parts → 400 (no Anthropic equivalent).

Reference: https://docs.anthropic.com/en/api/messages
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from astra_sidecar.compiler.table import Agent
from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.protocols.anthropic.upstream_thinking import uncarry
from astra_sidecar.sidecar.protocols.anthropic.wire import EPHEMERAL

Json = dict[str, Any]

PLACEHOLDER_USER_TEXT = "."

_IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


def unsupported(what: str, *, code: str = "unsupported_parameter", param: str | None = None) -> ClientError:
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
            raise unsupported(
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
        raise unsupported(f"image type {media_type!r}", code="unsupported_content", param="messages")
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
            raise unsupported(f"content part type {kind!r}", code="unsupported_content", param="messages")
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
        raise unsupported(f"tool call type {call.get('type')!r}", param="messages")
    return {
        "type": "tool_use",
        "id": uncarry(call.get("id"))[0],
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
    carried = uncarry(calls[0].get("id"))[1] if calls and isinstance(calls[0], dict) else []
    return [*carried, *blocks]


def _tool_result_block(message: Json) -> Json:
    tool_use_id = message.get("tool_call_id")
    if not tool_use_id:
        raise ClientError(
            400, "tool message without tool_call_id", code="missing_tool_call_id", param="messages"
        )
    block: Json = {"type": "tool_result", "tool_use_id": uncarry(tool_use_id)[0]}
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
    raise unsupported(f"message role {role!r}", code="unsupported_role", param="messages")


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


def system_and_turns(messages: list[Json], agent: Agent) -> tuple[list[Json], list[Json]]:
    """The `system` blocks and the alternating turns of an OpenAI conversation."""
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
