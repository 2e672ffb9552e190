"""The checks an OpenAI Chat Completions body passes before anything else reads it."""

from __future__ import annotations

from typing import Any

from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.protocols.base import Body

OUTPUT_CAPS = ("max_completion_tokens", "max_tokens")


def check_chat_body(body: Any) -> Body:
    """The OpenAI chat body, or a 400 naming the offending field."""
    if not isinstance(body, dict):
        raise ClientError(400, "request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ClientError(400, "'messages' must be a non-empty array", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ClientError(
                400, f"messages[{index}] must be an object with a 'role'", param=f"messages[{index}]"
            )
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ClientError(400, "'model' must name an agent", param="model")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise ClientError(400, "'stream' must be a boolean", param="stream")
    for key in ("temperature", "top_p"):
        if key in body and body[key] is not None and not _is_number(body[key]):
            raise ClientError(400, f"'{key}' must be a number", param=key)
    for key in (*OUTPUT_CAPS, "n"):
        if key in body and body[key] is not None and not _is_int(body[key]):
            raise ClientError(400, f"'{key}' must be an integer", param=key)
    if "tools" in body and body["tools"] is not None:
        _check_tools(body["tools"])
    return body


def _check_tools(tools: Any) -> None:
    """Every tool an object; a function tool (the default type) names its function."""
    if not isinstance(tools, list):
        raise ClientError(400, "'tools' must be an array", param="tools")
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise ClientError(400, f"tools[{index}] must be an object", param=f"tools[{index}]")
        function = tool.get("function")
        if tool.get("type", "function") == "function" and not (
            isinstance(function, dict) and isinstance(function.get("name"), str)
        ):
            raise ClientError(
                400,
                f"tools[{index}].function must be an object with a 'name'",
                param=f"tools[{index}].function",
            )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
