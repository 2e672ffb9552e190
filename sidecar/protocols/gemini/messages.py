"""OpenAI messages → Gemini `contents` + `systemInstruction` parts.

Roles are only `user`/`model`: system and developer messages are hoisted into the system
instruction; consecutive same-role turns are merged, except that a turn of function responses is
never merged with a plain user turn. `functionResponse` needs the function *name*, looked up from
the earlier assistant `tool_calls` by `tool_call_id`; Gemini's own call id and `thoughtSignature`
come back out of our tool-call ids (see `ids`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from astra_sidecar.sidecar.protocols.gemini.content import bad_request, content_parts, text_of
from astra_sidecar.sidecar.protocols.gemini.ids import decode_call_id
from astra_sidecar.sidecar.protocols.gemini.json_values import as_dict
from astra_sidecar.sidecar.protocols.openai.wire import Json


def _arguments_object(raw: Any, where: str) -> Json:
    if isinstance(raw, dict):
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    try:
        parsed = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise bad_request(where, "function arguments are not valid JSON") from exc
    if not isinstance(parsed, dict):
        raise bad_request(where, "function arguments must be a JSON object")
    return parsed


def _function_call_part(call: Any, where: str, names: dict[str, str]) -> Json:
    function = as_dict(call.get("function")) if isinstance(call, dict) else {}
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise bad_request(where, "tool call without a function name")
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
        raise bad_request(where, f"tool_call_id {call_id!r} matches no earlier assistant tool call")
    response: Json = {"name": name, "response": {"output": text_of(message.get("content"))}}
    gemini_id, _ = decode_call_id(call_id) if isinstance(call_id, str) else (None, None)
    if gemini_id is not None:
        response["id"] = gemini_id
    return {"functionResponse": response}


@dataclass(slots=True)
class Conversation:
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


def translate_messages(messages: Any) -> Conversation:
    if not isinstance(messages, list):
        raise bad_request("messages", "must be a list")
    conv = Conversation()
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise bad_request(where, "must be an object")
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
            raise bad_request(where, f"role {role!r} is not supported")
    return conv
