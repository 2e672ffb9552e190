"""OpenAI messages → Converse `system` blocks and `messages` turns.

System/developer messages go to top-level `system` blocks; content blocks are a union (exactly one
key each); image parts must be base64 `data:` URLs (Bedrock cannot fetch http URLs → 400); tool
messages become `toolResult` blocks in a user turn; consecutive messages of one role are merged;
empty text blocks and messages left empty are dropped. Tool-call `arguments` (a JSON string) become
a `toolUse.input` object: "" means `{}`, anything that is not a JSON object is a 400.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import orjson

from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.protocols.bedrock.reasoning import uncarry
from astra_sidecar.sidecar.protocols.openai.wire import Json

IMAGE_FORMATS: Mapping[str, str] = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}


def bad_request(message: str, code: str = "invalid_value", param: str = "messages") -> ClientError:
    return ClientError(400, message, code=code, param=param)


def _text_parts(content: Any, where: str) -> list[str]:
    """Text of a string or a list of text/refusal parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise bad_request(f"{where}.content must be a string or a list of parts")
    texts: list[str] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(str(part.get("text", "")))
        elif kind == "refusal":
            texts.append(str(part.get("refusal", "")))
        else:
            raise bad_request(
                f"{where}: content part type {kind!r} is not supported here", "unsupported_content"
            )
    return texts


def _image_block(part: Json, where: str) -> Json:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url.startswith("data:"):
        raise bad_request(
            f"{where}: Bedrock accepts images only as base64 data: URLs, not remote URLs",
            "unsupported_image_url",
        )
    header, sep, data = url[5:].partition(",")
    mime, _, encoding = header.partition(";")
    image_format = IMAGE_FORMATS.get(mime.strip().lower())
    if not sep or encoding.strip().lower() != "base64" or image_format is None:
        raise bad_request(f"{where}: image must be a base64 data: URL of type png, jpeg, gif or webp")
    try:
        base64.b64decode(data, validate=True)
    except binascii.Error as exc:
        raise bad_request(f"{where}: image data is not valid base64") from exc
    return {"image": {"format": image_format, "source": {"bytes": data}}}


def _user_blocks(content: Any, where: str) -> list[Json]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise bad_request(f"{where}.content must be a string or a list of parts")
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
            raise bad_request(
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
        raise bad_request(f"{where}: tool call arguments are not valid JSON") from exc
    if not isinstance(value, dict):
        raise bad_request(f"{where}: tool call arguments must be a JSON object")
    return value


def _assistant_blocks(message: Json, where: str) -> list[Json]:
    blocks: list[Json] = [{"text": t} for t in _text_parts(message.get("content"), where) if t]
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise bad_request(f"{where}.tool_calls: must be an array")
    for k, call in enumerate(calls):
        function = (call.get("function") or {}) if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise bad_request(f"{where}.tool_calls[{k}]: must be an object with a function object")
        blocks.append(
            {
                "toolUse": {
                    "toolUseId": uncarry(call.get("id"))[0],
                    "name": function.get("name"),
                    "input": _tool_input(function.get("arguments"), f"{where}.tool_calls[{k}]"),
                }
            }
        )
    carried = uncarry(calls[0].get("id"))[1] if calls and isinstance(calls[0], dict) else []
    return [*carried, *blocks]


def _tool_result(message: Json, where: str) -> Json:
    tool_call_id = message.get("tool_call_id")
    if not isinstance(tool_call_id, str) or not tool_call_id:
        raise bad_request(f"{where}: a tool message needs tool_call_id")
    texts = _text_parts(message.get("content"), where) or [""]
    return {"toolResult": {"toolUseId": uncarry(tool_call_id)[0], "content": [{"text": t} for t in texts]}}


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
        raise bad_request("messages must be a non-empty list")
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
            raise bad_request(f"{where}: role {role!r} is not supported by Bedrock")
    return system, turns
