"""OpenAI `chat.completion.chunk` payloads → Anthropic's named SSE events, in the published order.

    message_start (usage so far: zeros, OpenAI reports usage only at the end)
    per content block: content_block_start, content_block_delta…, content_block_stop
        reasoning deltas (`reasoning_content`) → a `thinking` block with `thinking_delta`s (its
        `signature` empty and no `signature_delta`: no other provider signs its reasoning, and
        the signed blocks a provider needs back ride in the tool_use ids);
        text deltas → a text block with `text_delta`s; each tool call → a `tool_use` block (id and
        name from its first fragment, `input: {}`) with its argument fragments as
        `input_json_delta`s, forwarded unparsed
    message_delta (stop_reason from finish_reason; cumulative usage with input_tokens and the
        cache buckets, from the OpenAI usage chunk the translated request asks for)
    message_stop

A new block closes the open one. OpenAI streams deliver each tool call's fragments together
(every adapter of this sidecar does, and so does OpenAI); a late fragment for a tool call whose
block is already closed cannot be placed in Anthropic's format and is dropped.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from astra_sidecar.sidecar.policy.reasoning import REASONING_FIELD
from astra_sidecar.sidecar.protocols.anthropic.ingress_translate import message_id
from astra_sidecar.sidecar.protocols.anthropic.wire import anthropic_usage, stop_reason
from astra_sidecar.sidecar.protocols.codec import encode_chunks
from astra_sidecar.sidecar.sse import encode_event

Json = dict[str, Any]


def event(data: Json) -> bytes:
    """One Anthropic SSE event: its name is the data's `type`."""
    return encode_event(str(data["type"]), orjson.dumps(data))


class AnthropicStreamEncoder:
    """State of one translated stream (see the module docstring)."""

    def __init__(self) -> None:
        self._id = message_id()
        self._started = False
        self._blocks = 0
        self._open: str | None = None
        self._open_tool: int | None = None
        self._tools: set[int] = set()
        self._finish: str | None = None
        self._refused = False
        self._usage: Any = None

    def encode(self, payloads: list[bytes]) -> bytes:
        return encode_chunks(payloads, self._chunk)

    def close(self) -> bytes:
        out = self._start({})
        out.extend(self._stop_block())
        reason = "refusal" if self._refused else stop_reason(self._finish, bool(self._tools))
        delta = {"stop_reason": reason, "stop_sequence": None}
        out.append(event({"type": "message_delta", "delta": delta, "usage": anthropic_usage(self._usage)}))
        out.append(event({"type": "message_stop"}))
        return b"".join(out)

    def _chunk(self, chunk: Json) -> list[bytes]:
        out = self._start(chunk)
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            out.extend(self._thinking(delta.get(REASONING_FIELD)))
            out.extend(self._text(delta.get("content")))
            if isinstance(delta.get("refusal"), str) and delta["refusal"]:
                self._refused = True
                out.extend(self._text(delta["refusal"]))
            for call in delta.get("tool_calls") or ():
                out.extend(self._tool(call))
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
                out.extend(self._stop_block())
        return out

    def _start(self, chunk: Json) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        message: Json = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": chunk.get("model") or "",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": anthropic_usage(chunk.get("usage")),
        }
        return [event({"type": "message_start", "message": message})]

    def _open_block(self, kind: str, block: Json) -> list[bytes]:
        out = self._stop_block()
        self._open = kind
        out.append(event({"type": "content_block_start", "index": self._blocks, "content_block": block}))
        return out

    def _stop_block(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open, self._open_tool = None, None
        self._blocks += 1
        return [event({"type": "content_block_stop", "index": self._blocks - 1})]

    def _delta(self, delta: Json) -> bytes:
        return event({"type": "content_block_delta", "index": self._blocks, "delta": delta})

    def _thinking(self, text: Any) -> list[bytes]:
        if not isinstance(text, str) or not text:
            return []
        block = {"type": "thinking", "thinking": "", "signature": ""}
        out = [] if self._open == "thinking" else self._open_block("thinking", block)
        out.append(self._delta({"type": "thinking_delta", "thinking": text}))
        return out

    def _text(self, text: Any) -> list[bytes]:
        if not isinstance(text, str) or not text:
            return []
        out = [] if self._open == "text" else self._open_block("text", {"type": "text", "text": ""})
        out.append(self._delta({"type": "text_delta", "text": text}))
        return out

    def _tool(self, call: Any) -> list[bytes]:
        if not isinstance(call, dict):
            return []
        index = call.get("index", 0)
        function = call.get("function") or {}
        out: list[bytes] = []
        if index not in self._tools:
            self._tools.add(index)
            block: Json = {
                "type": "tool_use",
                "id": call.get("id") or "toolu_" + uuid.uuid4().hex[:24],
                "name": function.get("name") or "",
                "input": {},
            }
            out = self._open_block("tool", block)
            self._open_tool = index
        elif self._open_tool != index:
            return []
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            out.append(self._delta({"type": "input_json_delta", "partial_json": arguments}))
        return out
