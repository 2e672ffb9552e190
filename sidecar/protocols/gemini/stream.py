"""The stream translator: SSE `GenerateContentResponse` chunks in, OpenAI chunks out.

Gemini streams `data:` chunks with text deltas and whole `functionCall` parts, `usageMetadata`
possibly repeated (the last wins), and no terminator. Each candidate becomes a choice with its own
index. At EOF the finish chunk(s) and, with `stream_options.include_usage`, the usage chunk are
emitted; EOF without any `finishReason` (or prompt block) is a cut. An error object inside the
stream → `UpstreamStreamError`. The native path's watch (`native_watch`) reads events and decides
cuts with the same functions.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import orjson

from astra_sidecar.sidecar.errors import UpstreamStreamError, network_failure
from astra_sidecar.sidecar.policy.reasoning import REASONING_FIELD
from astra_sidecar.sidecar.protocols.base import Usage
from astra_sidecar.sidecar.protocols.gemini.errors import failure_from_error, google_error
from astra_sidecar.sidecar.protocols.gemini.response import (
    candidate_index,
    candidate_parts,
    openai_tool_call,
    prompt_blocked,
    response_id_of,
    thought_text,
    visible_text,
)
from astra_sidecar.sidecar.protocols.gemini.wire import openai_finish_reason, usage_from_metadata
from astra_sidecar.sidecar.protocols.openai.wire import ChunkWriter, Json
from astra_sidecar.sidecar.sse import SseDecoder

CUT_MESSAGE = "gemini stream ended before a finishReason"


def stream_event(payload: bytes, cluster_key: str) -> Json | None:
    """The `GenerateContentResponse` in one stream event (None for JSON that is not an object).
    Raises `UpstreamStreamError` for an error object or data that is not JSON."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise UpstreamStreamError(
            network_failure("gemini sent a malformed stream chunk"), cluster_key
        ) from exc
    error = google_error(data)
    if error is not None:
        raise UpstreamStreamError(failure_from_error(200, error, {}), cluster_key)
    return data if isinstance(data, dict) else None


def finish_of(candidate: Json) -> str | None:
    reason = candidate.get("finishReason")
    return reason if isinstance(reason, str) and reason else None


def stream_cut(finishes: Collection[str | None], blocked: bool) -> bool:
    """True when a stream ended early: a candidate without a finishReason, or no candidate at
    all and no prompt block."""
    if not finishes:
        return not blocked
    return any(finish is None for finish in finishes)


@dataclass(slots=True)
class _CandidateState:
    calls: int = 0
    finish: str | None = None


class GeminiStreamTranslator:
    """SSE `GenerateContentResponse` chunks in, OpenAI chunks out; closes the stream at EOF."""

    __slots__ = (
        "_blocked",
        "_candidates",
        "_cluster_key",
        "_decoder",
        "_latest_usage",
        "_writer",
        "usage",
    )

    def __init__(self, model: str, include_usage: bool, cluster_key: str = "") -> None:
        self._cluster_key = cluster_key
        self._decoder = SseDecoder()
        self._writer = ChunkWriter(model=model, include_usage=include_usage)
        self._candidates: dict[int, _CandidateState] = {}
        self._blocked = False
        self._latest_usage: Usage | None = None
        self.usage: Usage | None = None

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        for event in self._decoder.feed(data):
            out.extend(self._on_event(event.data))
        return out

    def finish(self) -> list[bytes]:
        out: list[bytes] = []
        for event in self._decoder.flush():
            out.extend(self._on_event(event.data))
        if stream_cut([state.finish for state in self._candidates.values()], self._blocked):
            raise UpstreamStreamError(network_failure(CUT_MESSAGE), self._cluster_key)
        if not self._candidates:  # the prompt was blocked: an empty, filtered answer
            out.append(self._writer.chunk({"role": "assistant", "content": ""}))
            out.append(self._writer.chunk({}, "content_filter"))
        for index, state in sorted(self._candidates.items()):
            out.append(
                self._writer.chunk({}, openai_finish_reason(state.finish, state.calls > 0), index=index)
            )
        if self._latest_usage is not None:
            self.usage = self._latest_usage
            if self._writer.include_usage:  # thoughts always reported, 0 included
                out.append(self._writer.usage_chunk(self.usage, report_reasoning=True))
        return out

    def _on_event(self, payload: bytes) -> list[bytes]:
        data = stream_event(payload, self._cluster_key)
        if data is None:
            return []
        if prompt_blocked(data):
            self._blocked = True
        usage = usage_from_metadata(data.get("usageMetadata"))
        if usage is not None:
            self._latest_usage = usage
        out: list[bytes] = []
        response_id = response_id_of(data)
        for position, candidate in enumerate(data.get("candidates") or ()):
            if isinstance(candidate, dict):
                out.extend(self._on_candidate(candidate, position, response_id))
        return out

    def _on_candidate(self, candidate: Json, position: int, response_id: str | None) -> list[bytes]:
        index = candidate_index(candidate, position)
        out: list[bytes] = []
        state = self._candidates.get(index)
        if state is None:
            state = self._candidates[index] = _CandidateState()
            out.append(self._writer.chunk({"role": "assistant", "content": ""}, index=index))
        for part in candidate_parts(candidate):
            text = visible_text(part)
            if text is not None:
                out.append(self._writer.chunk({"content": text}, index=index))
            thought = thought_text(part)
            if thought is not None:
                out.append(self._writer.chunk({REASONING_FIELD: thought}, index=index))
            call = openai_tool_call(part, response_id, index, state.calls)
            if call is not None:
                out.append(self._writer.chunk({"tool_calls": [{"index": state.calls, **call}]}, index=index))
                state.calls += 1
        state.finish = finish_of(candidate) or state.finish
        return out
