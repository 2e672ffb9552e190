"""Watching a native Gemini stream while it is relayed byte for byte (`codec.StreamWatch`).

It reads the `data:` events as the stream translator (`stream`) does, with the same functions,
and builds nothing: an error object or data that is not JSON raises `UpstreamStreamError`; the
stream is complete at EOF when every candidate has sent a `finishReason`, or when the prompt was
blocked and no candidate came, and cut otherwise. `usageMetadata` may repeat (the last wins); the
usage is published when the stream ended complete, as the translator publishes it.
"""

from __future__ import annotations

from astra_sidecar.sidecar.errors import UpstreamStreamError, network_failure
from astra_sidecar.sidecar.protocols.base import Usage
from astra_sidecar.sidecar.protocols.gemini.response import candidate_index, prompt_blocked
from astra_sidecar.sidecar.protocols.gemini.stream import CUT_MESSAGE, finish_of, stream_cut, stream_event
from astra_sidecar.sidecar.protocols.gemini.wire import usage_from_metadata
from astra_sidecar.sidecar.protocols.openai.wire import Json
from astra_sidecar.sidecar.sse import SseDecoder


class GeminiStreamWatch:
    __slots__ = ("_blocked", "_cluster_key", "_decoder", "_events", "_finishes", "_latest_usage", "usage")

    def __init__(self, cluster_key: str = "") -> None:
        self._cluster_key = cluster_key
        self._decoder = SseDecoder()
        self._events = 0
        #: Each candidate index seen, and its finishReason once it came.
        self._finishes: dict[int, str | None] = {}
        self._blocked = False
        self._latest_usage: Usage | None = None
        self.usage: Usage | None = None

    def feed(self, data: bytes) -> bool:
        for event in self._decoder.feed(data):
            self._on_event(event.data)
        return self._events > 0

    def finish(self) -> None:
        for event in self._decoder.flush():
            self._on_event(event.data)
        if stream_cut(list(self._finishes.values()), self._blocked):
            raise UpstreamStreamError(network_failure(CUT_MESSAGE), self._cluster_key)
        self.usage = self._latest_usage

    def _on_event(self, payload: bytes) -> None:
        data = stream_event(payload, self._cluster_key)
        self._events += 1
        if data is None:
            return
        if prompt_blocked(data):
            self._blocked = True
        usage = usage_from_metadata(data.get("usageMetadata"))
        if usage is not None:
            self._latest_usage = usage
        for position, candidate in enumerate(data.get("candidates") or ()):
            if isinstance(candidate, dict):
                self._on_candidate(candidate, position)

    def _on_candidate(self, candidate: Json, position: int) -> None:
        index = candidate_index(candidate, position)
        self._finishes[index] = finish_of(candidate) or self._finishes.get(index)
