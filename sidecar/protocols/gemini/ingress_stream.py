"""OpenAI chunks → a Gemini `streamGenerateContent?alt=sse` stream, for translated attempts.

Gemini streams are `data: {GenerateContentResponse}` events and end at EOF, with no terminator.

- A text delta is sent at once as a one-part candidate chunk.
- Tool calls arrive as argument fragments (keyed by their `index`); they are buffered and sent
  whole, as `functionCall` parts of one chunk, when their choice finishes (Gemini, too, sends
  its calls whole and together).
- The finish reasons (and any calls still buffered) go out in one last chunk at the end of the
  stream, together with `usageMetadata` (OpenAI sends usage after the finish chunk). That chunk
  has an empty text part, so `chunk.text` is `""`, never None.
- Reasoning deltas (`reasoning_content`) are sent at once as `thought: true` text parts, when
  the caller shows thoughts (`ingress_translate.shows_thoughts`: as Gemini, only when asked for).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from astra_sidecar.sidecar.policy.reasoning import REASONING_FIELD
from astra_sidecar.sidecar.protocols.gemini.ingress_response import (
    candidate,
    envelope,
    function_call_part,
    index_of,
    thought_part,
    usage_metadata,
)
from astra_sidecar.sidecar.protocols.gemini.json_values import as_dict
from astra_sidecar.sidecar.protocols.gemini.wire import gemini_finish_reason

Json = dict[str, Any]


def encode_event(payload: Json) -> bytes:
    """One SSE event framed as Google frames them."""
    return b"data: " + orjson.dumps(payload) + b"\r\n\r\n"


@dataclass(slots=True)
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: str = ""

    def part(self) -> Json:
        return function_call_part(self.id or None, self.name, self.arguments)


@dataclass(slots=True)
class _Choice:
    calls: dict[int, _PendingCall] = field(default_factory=dict)
    finish: str | None = None

    def take_calls(self) -> list[Json]:
        parts = [call.part() for _, call in sorted(self.calls.items())]
        self.calls.clear()
        return parts


class GeminiStreamEncoder:
    """Fed OpenAI chunk payloads in order; writes Gemini SSE events."""

    __slots__ = ("_choices", "_model", "_response_id", "_thoughts", "_usage")

    def __init__(self, thoughts: bool = True) -> None:
        self._thoughts = thoughts
        self._choices: dict[int, _Choice] = {}
        self._model: Any = None
        self._response_id: Any = None
        self._usage: Json | None = None

    def encode(self, payloads: list[bytes]) -> bytes:
        return b"".join(self._on_chunk(orjson.loads(p)) for p in payloads)

    def close(self) -> bytes:
        choices = self._choices or {0: _Choice(finish="stop")}
        candidates = [
            candidate([{"text": ""}, *state.take_calls()], index, gemini_finish_reason(state.finish))
            for index, state in sorted(choices.items())
        ]
        return encode_event(envelope(candidates, self._model, self._response_id, self._usage))

    def _on_chunk(self, chunk: Any) -> bytes:
        if not isinstance(chunk, dict):
            return b""
        self._model = chunk.get("model") or self._model
        self._response_id = chunk.get("id") or self._response_id
        usage = usage_metadata(chunk.get("usage"))
        if usage is not None:
            self._usage = usage
        out = b""
        for position, choice in enumerate(chunk.get("choices") or ()):
            if isinstance(choice, dict):
                out += self._on_choice(index_of(choice, position), choice)
        return out

    def _on_choice(self, index: int, choice: Json) -> bytes:
        state = self._choices.setdefault(index, _Choice())
        delta = as_dict(choice.get("delta"))
        parts: list[Json] = thought_part(delta, REASONING_FIELD) if self._thoughts else []
        text = delta.get("content")
        if isinstance(text, str) and text:
            parts.append({"text": text})
        for position, fragment in enumerate(delta.get("tool_calls") or ()):
            if isinstance(fragment, dict):
                self._on_call_fragment(state, fragment, position)
        if choice.get("finish_reason"):
            state.finish = choice["finish_reason"]
            parts += state.take_calls()
        if not parts:
            return b""
        return self._event(index, parts)

    def _on_call_fragment(self, state: _Choice, fragment: Json, position: int) -> None:
        """Buffers one streamed tool-call fragment."""
        call = state.calls.setdefault(index_of(fragment, position), _PendingCall())
        call.id = call.id or str(fragment.get("id") or "")
        function = as_dict(fragment.get("function"))
        call.name = call.name or str(function.get("name") or "")
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            call.arguments += arguments

    def _event(self, index: int, parts: list[Json]) -> bytes:
        return encode_event(envelope([candidate(parts, index, None)], self._model, self._response_id))
