"""An Anthropic Messages stream → OpenAI `chat.completion.chunk` payloads (`AnthropicStreamTranslator`).

Named SSE events, read with `upstream_events`:

- message_start → first chunk (role); text_delta → content; tool_use start → tool-call header
  chunk (index = position among tool calls, not content blocks); input_json_delta → arguments
  fragments, forwarded unparsed (a tool that streamed no arguments gets `{}` at block stop, as in
  the non-streamed answer); with the JSON-mode emulation (`upstream_tools`) the `json_response`
  tool's fragments are content fragments; thinking_delta → `reasoning_content`, and the
  thinking blocks (text + signature_delta, redacted data) ride in the first tool call's id
  (`upstream_thinking`); citations deltas and ping are ignored; unknown events are ignored; message_delta carries the stop reason and cumulative
  usage; message_stop → finish chunk, then the usage chunk when `stream_options.include_usage`
  is true. Events after message_stop are ignored.
- An `error` event raises `UpstreamStreamError` with the mapped Failure; EOF without
  message_stop (a cut) raises `UpstreamStreamError` (502, code `upstream_stream_cut`).

Reference: https://docs.anthropic.com/en/docs/build-with-claude/streaming
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from astra_sidecar.compiler.table import Cluster
from astra_sidecar.sidecar.policy.reasoning import REASONING_FIELD
from astra_sidecar.sidecar.protocols.anthropic.upstream_events import (
    UsageTally,
    error_event,
    named_event,
    stream_cut,
)
from astra_sidecar.sidecar.protocols.anthropic.upstream_response import chat_id
from astra_sidecar.sidecar.protocols.anthropic.upstream_thinking import THINKING_BLOCKS, carry
from astra_sidecar.sidecar.protocols.anthropic.upstream_tools import JSON_TOOL_NAME, json_tool_emulated
from astra_sidecar.sidecar.protocols.anthropic.wire import finish_reason
from astra_sidecar.sidecar.protocols.base import Body, Usage
from astra_sidecar.sidecar.protocols.openai import wire as shapes
from astra_sidecar.sidecar.sse import SseDecoder, SseEvent

Json = dict[str, Any]


@dataclass(slots=True)
class _Block:
    """State of one streamed content block: `tool` is the OpenAI tool-call index, or None."""

    kind: str
    tool: int | None = None
    streamed_args: bool = False
    start_input: Any = None
    thinking: Json | None = None


class AnthropicStreamTranslator:
    """Anthropic named SSE events → OpenAI `chat.completion.chunk` payloads."""

    def __init__(self, cluster: Cluster, request: Body) -> None:
        self.usage: Usage | None = None
        self._cluster = cluster.key
        self._model: str = cluster.model_id
        options = request.get("stream_options") or {}
        self._include_usage = options.get("include_usage") is True
        self._json_tool = json_tool_emulated(request)
        self._decoder = SseDecoder()
        self._writer: shapes.ChunkWriter | None = None
        self._blocks: dict[int, _Block] = {}
        self._tool_calls = 0
        self._thinking: list[Json] = []
        self._stop_reason: str | None = None
        self._tally = UsageTally()
        self._done = False
        self._handlers: dict[str, Callable[[Json], list[bytes]]] = {
            "message_start": self._message_start,
            "content_block_start": self._block_start,
            "content_block_delta": self._block_delta,
            "content_block_stop": self._block_stop,
            "message_delta": self._message_delta,
            "message_stop": self._message_stop,
            "error": self._error,
        }

    def feed(self, data: bytes) -> list[bytes]:
        return self._events(self._decoder.feed(data))

    def finish(self) -> list[bytes]:
        out = self._events(self._decoder.flush())
        if not self._done:
            raise stream_cut(self._cluster)
        return out

    def _events(self, events: list[SseEvent]) -> list[bytes]:
        out: list[bytes] = []
        if self._done:
            return out
        for event in events:  # decoded one at a time: nothing after message_stop is decoded
            name, data = named_event(event, self._cluster)
            handler = self._handlers.get(name)
            if handler is not None:
                out.extend(handler(data))
            if self._done:
                break
        return out

    def _chunk(self, delta: Json, finish: str | None = None) -> list[bytes]:
        if self._writer is not None:
            return [self._writer.chunk(delta, finish)]
        out = self._start(None)
        assert self._writer is not None
        out.append(self._writer.chunk(delta, finish))
        return out

    def _content(self, text: Any) -> list[bytes]:
        """The chunk of a piece of answer text (`ChunkWriter.content`, the usual chunk)."""
        if self._writer is not None and type(text) is str:
            return [self._writer.content(text)]
        return self._chunk({"content": text})

    def _start(self, message: Json | None) -> list[bytes]:
        if self._writer is not None:
            return []
        message = message or {}
        self._writer = shapes.ChunkWriter(
            model=message.get("model") or self._model,
            include_usage=self._include_usage,
            id=chat_id(message.get("id")),
        )
        return [self._writer.chunk({"role": "assistant", "content": ""})]

    def _message_start(self, data: Json) -> list[bytes]:
        message = data.get("message") or {}
        self._update_usage(message.get("usage"))
        return self._start(message)

    def _block_start(self, data: Json) -> list[bytes]:
        block = data.get("content_block") or {}
        kind = block.get("type")
        index = int(data.get("index") or 0)
        if kind == "text":
            self._blocks[index] = _Block("text")
            return self._content(block["text"]) if block.get("text") else []
        if kind == "tool_use" and self._json_tool and block.get("name") == JSON_TOOL_NAME:
            self._blocks[index] = _Block("json", start_input=block.get("input"))
            return []
        if kind == "tool_use":
            state = _Block("tool", tool=self._tool_calls, start_input=block.get("input"))
            self._blocks[index] = state
            self._tool_calls += 1
            call_id = str(block.get("id") or "")
            header = {
                "index": state.tool,
                "id": carry(call_id, self._thinking) if state.tool == 0 else call_id,
                "type": "function",
                "function": {"name": block.get("name") or "", "arguments": ""},
            }
            return self._chunk({"tool_calls": [header]})
        if kind in THINKING_BLOCKS:
            self._thinking.append(dict(block))
            self._blocks[index] = _Block(str(kind), thinking=self._thinking[-1])
            return self._chunk({REASONING_FIELD: block["thinking"]}) if block.get("thinking") else []
        self._blocks[index] = _Block(str(kind))
        return []

    def _thinking_delta(self, state: _Block | None, delta: Json) -> list[bytes]:
        if state is None or state.thinking is None:
            return []
        if delta.get("type") == "signature_delta":
            state.thinking["signature"] = str(state.thinking.get("signature") or "") + str(
                delta.get("signature") or ""
            )
            return []
        text = str(delta.get("thinking") or "")
        state.thinking["thinking"] = str(state.thinking.get("thinking") or "") + text
        return self._chunk({REASONING_FIELD: text}) if text else []

    def _block_delta(self, data: Json) -> list[bytes]:
        delta = data.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            return self._content(text) if text else []
        state = self._blocks.get(int(data.get("index") or 0))
        if kind in ("thinking_delta", "signature_delta"):
            return self._thinking_delta(state, delta)
        if kind != "input_json_delta" or state is None or not delta.get("partial_json"):
            return []
        state.streamed_args = True
        return self._arguments(state, delta["partial_json"])

    def _arguments(self, state: _Block, fragment: str) -> list[bytes]:
        if state.kind == "json":
            return self._content(fragment)
        if state.kind == "tool":
            return self._chunk({"tool_calls": [{"index": state.tool, "function": {"arguments": fragment}}]})
        return []

    def _block_stop(self, data: Json) -> list[bytes]:
        state = self._blocks.get(int(data.get("index") or 0))
        if state is None or state.streamed_args or state.kind not in ("tool", "json"):
            return []
        state.streamed_args = True
        return self._arguments(state, orjson.dumps(state.start_input or {}).decode())

    def _message_delta(self, data: Json) -> list[bytes]:
        delta = data.get("delta") or {}
        if delta.get("stop_reason"):
            self._stop_reason = delta["stop_reason"]
        self._update_usage(data.get("usage"))
        return []

    def _message_stop(self, data: Json) -> list[bytes]:
        del data
        out = self._chunk({}, finish_reason(self._stop_reason, self._tool_calls))
        self._done = True
        self.usage = self._tally.total()
        if self._include_usage:
            assert self._writer is not None
            out.append(self._writer.usage_chunk(self.usage))
        return out

    def _error(self, data: Json) -> list[bytes]:
        raise error_event(data, self._cluster)

    def _update_usage(self, raw: Any) -> None:
        if self._tally.add(raw):
            self.usage = self._tally.total()
