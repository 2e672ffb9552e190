"""Reading an Anthropic Messages stream, for the translator (`upstream_stream`) and the native
watch (`native`) alike: named SSE events, decoded with `astra_sidecar.sidecar.sse.SseDecoder` at any byte
boundary, whose data must be a JSON object; and the failures a stream ends in.

- an `error` event → the Failure of its error object (`upstream_errors.error_object_failure`);
- event data that is not a JSON object → `upstream_malformed`;
- EOF before `message_stop` (a cut) → 502, code `upstream_stream_cut`, retryable.

Usage is cumulative: message_start has the input side, each message_delta the counts so far
(`UsageTally` keeps the latest of each count).

Reference: https://docs.anthropic.com/en/docs/build-with-claude/streaming
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from astra_sidecar.sidecar.errors import UpstreamStreamError, malformed_failure
from astra_sidecar.sidecar.protocols.anthropic.upstream_errors import error_object_failure
from astra_sidecar.sidecar.protocols.anthropic.wire import usage_from
from astra_sidecar.sidecar.protocols.base import Failure, Usage
from astra_sidecar.sidecar.sse import SseEvent

Json = dict[str, Any]


def named_events(events: Iterable[SseEvent], cluster_key: str) -> Iterator[tuple[str, Json]]:
    """Each event's name (its `event:` line, else its data's `type`) and data object, decoded one
    at a time (so a caller that stops early never decodes the rest)."""
    for event in events:
        yield named_event(event, cluster_key)


def named_event(event: SseEvent, cluster_key: str) -> tuple[str, Json]:
    """One event's name and data object (`named_events`)."""
    try:
        data = orjson.loads(event.data)
    except orjson.JSONDecodeError as exc:
        raise UpstreamStreamError(malformed_stream("event data is not JSON"), cluster_key) from exc
    if type(data) is not dict:
        raise UpstreamStreamError(malformed_stream("event data is not an object"), cluster_key)
    return event.event or str(data.get("type")), data


def error_event(data: Json, cluster_key: str) -> UpstreamStreamError:
    """The error to raise for an `event: error`."""
    return UpstreamStreamError(error_object_failure(data), cluster_key)


def stream_cut(cluster_key: str) -> UpstreamStreamError:
    """The error to raise when the stream ended before `message_stop`."""
    failure = Failure(
        status=502,
        error_type="server_error",
        message="provider claude ended the stream before message_stop",
        code="upstream_stream_cut",
        retryable=True,
        breaker_counts=True,
    )
    return UpstreamStreamError(failure, cluster_key)


def malformed_stream(what: str) -> Failure:
    return malformed_failure(f"stream {what}", "claude")


class UsageTally:
    """The usage reported so far in a stream, in OpenAI terms."""

    def __init__(self) -> None:
        self._raw: Json = {}

    def add(self, raw: Any) -> bool:
        """Takes the integer counts of a `usage` object; False when it is not one."""
        if not isinstance(raw, dict):
            return False
        self._raw.update({key: value for key, value in raw.items() if isinstance(value, int)})
        return True

    def total(self) -> Usage:
        return usage_from(self._raw)
