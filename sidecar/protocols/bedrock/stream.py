"""The stream translator: ConverseStream's binary event stream → OpenAI chunks.

The body is `application/vnd.amazon.eventstream`, decoded by botocore's `EventStreamBuffer`
(frames may straddle reads; CRCs are checked). Text blocks may arrive without
`contentBlockStart`. `metadata` (usage) arrives after `messageStop`: the finish chunk is sent at
`messageStop`, the usage chunk (only with `stream_options.include_usage`) at `metadata`. A tool
block that streamed no input gets `"{}"` as its arguments. Exception and error frames become
`UpstreamStreamError`; chunks decoded in the same read go out first and the error is raised on the
next call. EOF before `messageStop` (or inside a frame) is a cut.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from astra_sidecar.sidecar.errors import UpstreamStreamError
from astra_sidecar.sidecar.policy.reasoning import REASONING_FIELD
from astra_sidecar.sidecar.protocols.base import Failure, Usage
from astra_sidecar.sidecar.protocols.bedrock.errors import failure_for, json_object, malformed
from astra_sidecar.sidecar.protocols.bedrock.reasoning import carry
from astra_sidecar.sidecar.protocols.bedrock.response import finish_reason, usage_from
from astra_sidecar.sidecar.protocols.openai import wire as shapes
from astra_sidecar.sidecar.protocols.openai.wire import Json

if TYPE_CHECKING:
    from botocore.eventstream import EventStreamBuffer

EVENT_STREAM_TYPE = "application/vnd.amazon.eventstream"


def _frames(buffer: EventStreamBuffer) -> Iterator[tuple[int, Mapping[str, Any], bytes]]:
    """(frame length, headers, payload) of each complete frame (botocore's stubs mistype these)."""
    message: Any
    for message in buffer:
        yield message.prelude.total_length, message.headers, message.payload


@dataclass(slots=True)
class _ToolBlock:
    index: int
    arguments_sent: bool = False


class BedrockStreamTranslator:
    """ConverseStream event-stream bytes → OpenAI chunks. One instance per stream."""

    def __init__(self, model: str, include_usage: bool, cluster_key: str = "") -> None:
        from botocore.eventstream import EventStreamBuffer  # loaded by the first Bedrock stream

        self.usage: Usage | None = None
        self._cluster_key = cluster_key
        self._writer = shapes.ChunkWriter(model=model, include_usage=include_usage)
        self._buffer = EventStreamBuffer()
        self._fed = 0
        self._consumed = 0
        self._role_sent = False
        self._stopped = False
        self._usage_sent = False
        self._tools: dict[int, _ToolBlock] = {}
        #: reasoningContent blocks by contentBlockIndex, rebuilt from their deltas.
        self._reasoning: dict[int, Json] = {}
        self._pending_error: UpstreamStreamError | None = None

    def feed(self, data: bytes) -> list[bytes]:
        if self._pending_error is not None:
            raise self._pending_error
        self._fed += len(data)
        self._buffer.add_data(data)
        out: list[bytes] = []
        try:
            for length, headers, payload in self._decoded():
                self._consumed += length
                out.extend(self._on_frame(headers, payload))
        except UpstreamStreamError as exc:
            self._pending_error = exc  # chunks decoded before it go out first; the error next call
            if not out:
                raise
        return out

    def _decoded(self) -> Iterator[tuple[int, Mapping[str, Any], bytes]]:
        from botocore.eventstream import ParserError

        try:
            yield from _frames(self._buffer)
        except ParserError as exc:
            raise self._error(malformed(f"malformed Bedrock event stream: {type(exc).__name__}")) from exc

    def finish(self) -> list[bytes]:
        if self._pending_error is not None:
            raise self._pending_error
        if not self._stopped or self._fed != self._consumed:
            raise self._error(malformed("Bedrock stream ended before messageStop"))
        return []

    def _error(self, failure: Failure) -> UpstreamStreamError:
        return UpstreamStreamError(failure, self._cluster_key)

    # -- frames --

    def _on_frame(self, headers: Mapping[str, Any], raw: bytes) -> list[bytes]:
        kind = headers.get(":message-type")
        payload = json_object(raw)
        if kind == "exception":
            name = str(headers.get(":exception-type") or "")
            name = name[:1].upper() + name[1:]
            raise self._error(failure_for(name or None, 502, payload))
        if kind == "error":
            code = str(headers.get(":error-code") or "") or None
            body = {"message": str(headers.get(":error-message") or "")}
            raise self._error(failure_for(code, 502, body))
        if kind != "event":
            return []
        handler = self._HANDLERS.get(str(headers.get(":event-type")))
        return handler(self, payload) if handler is not None else []

    def _role(self) -> list[bytes]:
        if self._role_sent:
            return []
        self._role_sent = True
        return [self._writer.chunk({"role": "assistant", "content": ""})]

    def _message_start(self, payload: Json) -> list[bytes]:
        return self._role()

    def _block_start(self, payload: Json) -> list[bytes]:
        use = (payload.get("start") or {}).get("toolUse")
        if not isinstance(use, dict):
            return []
        tool = _ToolBlock(len(self._tools))
        self._tools[payload.get("contentBlockIndex", -1)] = tool
        call_id = str(use.get("toolUseId") or "")
        if tool.index == 0:
            call_id = carry(call_id, list(self._reasoning.values()))
        call = {"index": tool.index, "id": call_id, "type": "function",
                "function": {"name": use.get("name"), "arguments": ""}}  # fmt: skip
        return [*self._role(), self._writer.chunk({"tool_calls": [call]})]

    def _block_delta(self, payload: Json) -> list[bytes]:
        delta = payload.get("delta") or {}
        text = delta.get("text")
        if isinstance(text, str):
            return [*self._role(), self._writer.chunk({"content": text})] if text else []
        if isinstance(delta.get("reasoningContent"), dict):
            return self._reasoning_delta(payload.get("contentBlockIndex", -1), delta["reasoningContent"])
        use = delta.get("toolUse")
        if not isinstance(use, dict):
            return []  # citations…: not surfaced
        tool = self._tools.get(payload.get("contentBlockIndex", -1))
        if tool is None:
            raise self._error(malformed("Bedrock tool input delta without contentBlockStart"))
        fragment = use.get("input")
        if not isinstance(fragment, str) or not fragment:
            return []
        tool.arguments_sent = True
        return [self._arguments_chunk(tool, fragment)]

    def _reasoning_delta(self, index: Any, delta: Json) -> list[bytes]:
        """Text → `reasoning_content`; text, signature and redacted bytes kept for the carrier."""
        block = self._reasoning.setdefault(index if isinstance(index, int) else -1, {"reasoningContent": {}})
        content = block["reasoningContent"]
        if isinstance(delta.get("redactedContent"), str):
            content["redactedContent"] = content.get("redactedContent", "") + delta["redactedContent"]
            return []
        kept = content.setdefault("reasoningText", {})
        if isinstance(delta.get("signature"), str):
            kept["signature"] = kept.get("signature", "") + delta["signature"]
        text = delta.get("text")
        if not isinstance(text, str) or not text:
            return []
        kept["text"] = kept.get("text", "") + text
        return [*self._role(), self._writer.chunk({REASONING_FIELD: text})]

    def _arguments_chunk(self, tool: _ToolBlock, fragment: str) -> bytes:
        return self._writer.chunk(
            {"tool_calls": [{"index": tool.index, "function": {"arguments": fragment}}]}
        )

    def _block_stop(self, payload: Json) -> list[bytes]:
        tool = self._tools.get(payload.get("contentBlockIndex", -1))
        if tool is None or tool.arguments_sent:
            return []
        tool.arguments_sent = True
        return [self._arguments_chunk(tool, "{}")]

    def _message_stop(self, payload: Json) -> list[bytes]:
        if self._stopped:
            return []
        self._stopped = True
        out = [*self._role(), self._writer.chunk({}, finish_reason(payload.get("stopReason")))]
        return out + self._usage_chunk()

    def _metadata(self, payload: Json) -> list[bytes]:
        if "usage" in payload:
            self.usage = usage_from(payload["usage"])
        return self._usage_chunk() if self._stopped else []

    def _usage_chunk(self) -> list[bytes]:
        if self.usage is None or self._usage_sent or not self._writer.include_usage:
            return []
        self._usage_sent = True
        return [self._writer.usage_chunk(self.usage)]

    _HANDLERS: Mapping[str, Callable[[BedrockStreamTranslator, Json], list[bytes]]] = {
        "messageStart": _message_start,
        "contentBlockStart": _block_start,
        "contentBlockDelta": _block_delta,
        "contentBlockStop": _block_stop,
        "messageStop": _message_stop,
        "metadata": _metadata,
    }
