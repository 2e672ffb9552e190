"""A whole Converse answer → OpenAI `chat.completion` pieces: message, finish reason, usage.

`inputTokens` excludes the cache buckets, so prompt = input + cacheRead + cacheWrite, cached =
cacheRead, cache writes = cacheWrite. Reasoning blocks → `reasoning_content`, carried back in the
first tool call's id (`reasoning`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from astra_sidecar.sidecar.policy.reasoning import REASONING_FIELD
from astra_sidecar.sidecar.protocols.base import Usage
from astra_sidecar.sidecar.protocols.bedrock.reasoning import carry, reasoning_blocks, reasoning_text
from astra_sidecar.sidecar.protocols.openai import wire as shapes
from astra_sidecar.sidecar.protocols.openai.wire import Json

STOP_REASONS: Mapping[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "model_context_window_exceeded": "length",
    "malformed_model_output": "stop",
    "malformed_tool_use": "stop",
}


def usage_from(raw: Any) -> Usage:
    def count(key: str) -> int:
        value = raw.get(key) if isinstance(raw, dict) else None
        return value if isinstance(value, int) else 0

    cache_read, cache_write = count("cacheReadInputTokens"), count("cacheWriteInputTokens")
    return Usage(
        prompt_tokens=count("inputTokens") + cache_read + cache_write,
        completion_tokens=count("outputTokens"),
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def finish_reason(stop_reason: Any) -> str:
    return STOP_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def _arguments(value: Any) -> str:
    return orjson.dumps(value if value is not None else {}).decode()


def response_message(content: Any) -> Json:
    texts: list[str] = []
    calls: list[Json] = []
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):
            use = block["toolUse"]
            calls.append(
                shapes.tool_call(
                    str(use.get("toolUseId")), str(use.get("name")), _arguments(use.get("input"))
                )
            )
    text = "".join(texts)
    blocks = reasoning_blocks(content if isinstance(content, list) else None)
    if calls and blocks:
        calls[0]["id"] = carry(calls[0]["id"], blocks)
    message = shapes.assistant_message(text if texts or not calls else None, calls or None)
    if reasoning_text(blocks):
        message[REASONING_FIELD] = reasoning_text(blocks)
    return message
