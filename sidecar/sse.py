"""Incremental Server-Sent Events decoding and encoding (the text/event-stream wire format).

`SseDecoder.feed` accepts bytes exactly as they arrive from the network (an event may straddle
reads, lines may end in LF, CRLF or CR) and returns the complete events so far. Comment lines
(starting with `:`, e.g. OpenRouter's keep-alives) are skipped.

A line, or an event, longer than `max_bytes` (default `maxSseLineBytes`; the transport also
enforces the table's value as bytes arrive) is an `UpstreamTooLargeError`. Reads that end no line
are held as a list of pieces, so a long line costs linear, not quadratic, copying.
"""

from __future__ import annotations

from typing import NamedTuple

from astra_sidecar.sidecar.errors import UpstreamTooLargeError
from astra_sidecar.sidecar.limits import DEFAULT_LIMITS


class SseEvent(NamedTuple):  # a tuple: one is built per relayed event
    data: bytes
    event: str | None = None


#: Event names decoded once, for the fast path: a stream uses a handful, so the first
#: `_EVENT_NAMES_MAX` names seen are kept (and decoded like the general path's, with "replace").
_EVENT_NAMES: dict[bytes, str] = {}
_EVENT_NAMES_MAX = 256


def _event_name(raw: bytes) -> str:
    name = _EVENT_NAMES.get(raw)
    if name is None:
        name = raw.decode("utf-8", "replace")
        if len(_EVENT_NAMES) < _EVENT_NAMES_MAX:
            _EVENT_NAMES[raw] = name
    return name


class SseDecoder:
    __slots__ = ("_buffer", "_data", "_event", "_event_size", "_max", "_pending", "_pending_size")

    def __init__(self, max_bytes: int = DEFAULT_LIMITS.max_sse_line_bytes) -> None:
        self._buffer = b""
        self._data: list[bytes] = []
        self._event: str | None = None
        self._event_size = 0
        self._max = max_bytes
        self._pending: list[bytes] = []
        self._pending_size = 0

    def feed(self, chunk: bytes) -> list[SseEvent]:
        simple = self._whole_data_events(chunk)
        if simple is not None:
            return simple
        if b"\n" not in chunk and b"\r" not in chunk:
            self._hold(chunk)
            return []
        if self._pending:
            self._buffer += b"".join(self._pending)
            self._pending, self._pending_size = [], 0
        buffer = self._buffer + chunk
        if b"\r" in buffer:
            # A lone CR at the very end may be the first half of CRLF: keep it for the next read.
            keep_cr = buffer.endswith(b"\r")
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if keep_cr:
                buffer = buffer[:-1]
                lines = buffer.split(b"\n")
                self._buffer = lines.pop() + b"\r"
                return self._consume(lines)
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()
        return self._consume(lines)

    def _whole_data_events(self, chunk: bytes) -> list[SseEvent] | None:
        """The common read, decoded without the line machinery: nothing held from earlier reads,
        and whole one-line `data: …` events (or one `event: …` + `data: …` pair) with LF line
        ends. None for anything else."""
        if self._buffer or self._pending or self._data or b"\r" in chunk:
            return None
        if chunk.startswith(b"event: "):
            return self._one_named_event(chunk)
        if not chunk.startswith(b"data: "):
            return None
        end = len(chunk) - 2
        if chunk.find(b"\n") == end and chunk.endswith(b"\n\n") and end - 6 <= self._max:
            return [SseEvent(chunk[6:end])]  # one event: the usual read of a paced stream
        if not chunk.endswith(b"\n\n"):
            return None
        events: list[SseEvent] = []
        for part in chunk[:end].split(b"\n\n"):
            if not part.startswith(b"data: ") or b"\n" in part or len(part) - 6 > self._max:
                return None
            events.append(SseEvent(part[6:]))
        return events

    def _hold(self, chunk: bytes) -> None:
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if len(self._buffer) + self._pending_size > self._max:
            raise UpstreamTooLargeError(f"an SSE line longer than {self._max} bytes")

    def _one_named_event(self, chunk: bytes) -> list[SseEvent] | None:
        """`event: NAME` then one `data: …` line and the blank line (Anthropic's usual read)."""
        name_end = chunk.find(b"\n")
        data_end = len(chunk) - 2
        if (
            name_end < 0
            or chunk.find(b"\n", name_end + 1) != data_end
            or not chunk.endswith(b"\n\n")
            or not chunk.startswith(b"data: ", name_end + 1)
            or data_end - name_end - 7 > self._max
        ):
            return None
        return [SseEvent(chunk[name_end + 7 : data_end], _event_name(chunk[7:name_end]))]

    def idle(self) -> bool:
        """Nothing held from earlier reads: the next read starts a line."""
        return not (self._buffer or self._pending or self._data)

    @property
    def max_bytes(self) -> int:
        return self._max

    def flush(self) -> list[SseEvent]:
        """At end of input: a final event without its blank line still counts."""
        if self._pending:
            self._buffer += b"".join(self._pending)
            self._pending, self._pending_size = [], 0
        rest, self._buffer = self._buffer.rstrip(b"\r"), b""
        events = self._consume([rest, b""] if rest else [b""])
        return events

    def _consume(self, lines: list[bytes]) -> list[SseEvent]:
        events: list[SseEvent] = []
        for line in lines:
            if not line:
                if self._data:
                    events.append(SseEvent(b"\n".join(self._data), self._event))
                self._data, self._event, self._event_size = [], None, 0
                continue
            if line[0:1] == b":":
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self._event_size += len(value)
                if self._event_size > self._max:
                    raise UpstreamTooLargeError(f"an SSE event longer than {self._max} bytes")
                self._data.append(value)
            elif name == b"event":
                self._event = value.decode("utf-8", "replace")
        return events


def encode_data(payload: bytes) -> bytes:
    """One OpenAI-style SSE event (`data:` only)."""
    return b"data: " + payload + b"\n\n"


def encode_event(event: str, payload: bytes) -> bytes:
    """One named SSE event (Anthropic style)."""
    return b"event: " + event.encode() + b"\ndata: " + payload + b"\n\n"


DONE = b"data: [DONE]\n\n"
