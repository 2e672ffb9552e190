"""Incremental Server-Sent Events decoding and encoding (the text/event-stream wire format).

`SseDecoder.feed` accepts bytes exactly as they arrive from the network (an event may straddle
reads, lines may end in LF, CRLF or CR) and returns the complete events so far. Comment lines
(starting with `:`, e.g. OpenRouter's keep-alives) are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SseEvent:
    data: bytes
    event: str | None = None


class SseDecoder:
    __slots__ = ("_buffer", "_data", "_event")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []
        self._event: str | None = None

    def feed(self, chunk: bytes) -> list[SseEvent]:
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

    def flush(self) -> list[SseEvent]:
        """At end of input: a final event without its blank line still counts."""
        rest, self._buffer = self._buffer.rstrip(b"\r"), b""
        events = self._consume([rest, b""] if rest else [b""])
        return events

    def _consume(self, lines: list[bytes]) -> list[SseEvent]:
        events: list[SseEvent] = []
        for line in lines:
            if not line:
                if self._data:
                    events.append(SseEvent(b"\n".join(self._data), self._event))
                self._data, self._event = [], None
                continue
            if line[0:1] == b":":
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
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
