"""Reading an upstream body within the limits (`astra_sidecar.sidecar.limits`).

The transport turns aiohttp's own decompression off and decodes here instead: `gzip` and
`deflate` (the only encodings the sidecar asks for) are inflated in pieces of at most
`_PIECE` bytes, with a pause for the event loop between pieces, so a bomb costs a few ms of loop
time and stops at `maxDecompressedBytes` or `maxCompressionRatio`. Any other encoding is refused.
`text/event-stream` bodies have their line and event lengths watched, and
`application/vnd.amazon.eventstream` bodies the length each frame's prelude declares, and a
stream's silence is bounded (`SilenceWatch`, `streamIdleMs`).
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import AsyncIterator

import aiohttp

from astra_sidecar.sidecar.errors import UpstreamTooLargeError
from astra_sidecar.sidecar.limits import RATIO_GRACE_BYTES, Limits

#: Largest piece inflated in one step: ~0.1 ms of CPU (see docs/hardening.md).
_PIECE = 64 * 1024
ACCEPT_ENCODING = "gzip, deflate"
_GZIP = frozenset({"gzip", "x-gzip"})


class Inflater:
    """Incremental, bounded `gzip`/`deflate` decoding of one body."""

    __slots__ = ("_in", "_limits", "_out", "_zlib")

    def __init__(self, encoding: str, limits: Limits) -> None:
        self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding in _GZIP else zlib.MAX_WBITS)
        self._limits = limits
        self._in = 0
        self._out = 0

    async def pieces(self, data: bytes) -> AsyncIterator[bytes]:
        self._in += len(data)
        while data:
            try:
                piece = self._zlib.decompress(data, _PIECE)
            except zlib.error as exc:
                raise UpstreamTooLargeError("a compressed body that does not inflate", code="refused") from exc
            data = self._zlib.unconsumed_tail
            self._count(len(piece))
            if piece:
                yield piece
            if data:
                await asyncio.sleep(0)

    def _count(self, size: int) -> None:
        self._out += size
        limits = self._limits
        if self._out > limits.max_decompressed_bytes:
            raise UpstreamTooLargeError(f"inflates past {limits.max_decompressed_bytes} bytes")
        if self._out > RATIO_GRACE_BYTES and self._out > limits.max_compression_ratio * max(1, self._in):
            raise UpstreamTooLargeError(f"inflates more than {limits.max_compression_ratio}:1")


def inflater_for(content_encoding: str | None, limits: Limits) -> Inflater | None:
    """The decoder for a response's Content-Encoding; refuses what the sidecar never asked for."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return None
    if encoding in _GZIP or encoding == "deflate":
        return Inflater(encoding, limits)
    raise UpstreamTooLargeError("a Content-Encoding the sidecar did not ask for", code="refused")


class SseWatch:
    """The longest line and event of a `text/event-stream` body, checked as bytes arrive,
    wherever the reads cut it (CR, LF and CRLF all end a line; a blank line ends an event)."""

    __slots__ = ("_after_cr", "_event", "_limits", "_line", "_line_ended")

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._line = 0  # bytes of the line not yet ended
        self._event = 0  # bytes since the last blank line
        self._line_ended = True
        self._after_cr = False  # the last read ended in CR: a leading LF completes that CRLF

    def feed(self, data: bytes) -> None:
        limit = self._limits.max_sse_line_bytes
        if self._line + self._event + len(data) <= limit and data.endswith(b"\n\n"):
            # Nothing in `data` can pass the limit, and it ends an event: the common read.
            if self._event or self._line or self._after_cr or not self._line_ended:
                self._line, self._event, self._line_ended, self._after_cr = 0, 0, True, False
            return
        text = data[1:] if self._after_cr and data.startswith(b"\n") else data
        self._after_cr = text.endswith(b"\r")
        if b"\r" in text:
            text = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        self._check_lines(text.split(b"\n"), limit)
        # A line ended by the last read may meet an empty line here: that is a blank line too.
        joined = b"\n" + text if self._line_ended else text
        self._check_events(joined.split(b"\n\n"), len(joined) - len(text), limit)
        self._line_ended = text.endswith(b"\n") or (not text and self._line_ended)

    def _check_lines(self, lines: list[bytes], limit: int) -> None:
        longest = max(self._line + len(lines[0]), max(map(len, lines[1:]), default=0))
        self._line = len(lines[-1]) if len(lines) > 1 else self._line + len(lines[0])
        if longest > limit:
            raise UpstreamTooLargeError(f"an SSE line longer than {limit} bytes")

    def _check_events(self, events: list[bytes], prefix: int, limit: int) -> None:
        """`events`: the read split at blank lines; an event's length counts its lines' ends."""
        *ended, open_event = events
        if not ended:
            self._event += len(open_event) - prefix
            longest = self._event
        else:
            first = self._event + len(ended[0]) - prefix + 1
            longest = max(first, max((len(e) + 1 for e in ended[1:]), default=0), len(open_event))
            self._event = len(open_event)
        if longest > limit:
            raise UpstreamTooLargeError(f"an SSE event longer than {limit} bytes")


class FrameWatch:
    """The length each event-stream frame declares in its prelude (a 4-byte big-endian total)."""

    __slots__ = ("_head", "_left", "_limit")

    def __init__(self, limits: Limits) -> None:
        self._limit = limits.max_event_frame_bytes
        self._left = 0
        self._head = b""

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._left:
                step = min(self._left, len(view))
                self._left -= step
                view = view[step:]
                continue
            need = 4 - len(self._head)
            self._head += bytes(view[:need])
            view = view[need:]
            if len(self._head) < 4:
                return
            (total,) = struct.unpack(">I", self._head)
            self._head = b""
            if total > self._limit:
                raise UpstreamTooLargeError(f"an event-stream frame of {total} bytes (limit {self._limit})")
            self._left = max(0, total - 4)


class SilenceWatch:
    """Ends a stream whose upstream has sent nothing for `idle_s` while the sidecar waited to
    read it (`streamIdleMs`): one timer per stream, rescheduled every quarter of `idle_s`, that
    compares the bytes received with its last look, so it fires between `idle_s` and 1.25 times
    `idle_s` after the last byte. It takes over from aiohttp's `sock_read`, which covers the wait
    for the response head but reschedules a timer on every read of the body. Time spent waiting
    for the client (backpressure) is not the upstream's silence."""

    __slots__ = ("_handle", "_idle_s", "_loop", "_seen", "_since", "_stream", "waiting")

    def __init__(self, response: aiohttp.ClientResponse, idle_s: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._stream = response.content
        self._idle_s = idle_s
        self._seen = self._stream.total_bytes
        self._since = self._loop.time()
        self.waiting = False
        self._handle: asyncio.TimerHandle | None = None
        connection = response.connection
        if connection is not None and connection.protocol is not None:
            # aiohttp's timer, left from the head's last read, is dropped at the body's first.
            connection.protocol.read_timeout = None
            self._handle = self._loop.call_later(idle_s / 4, self._check)

    def _check(self) -> None:
        now, received = self._loop.time(), self._stream.total_bytes
        if received != self._seen or not self.waiting:
            self._seen, self._since = received, now
        elif now - self._since >= self._idle_s:
            self._handle = None
            self._stream.set_exception(aiohttp.ServerTimeoutError("Timeout on reading data from socket"))
            return
        self._handle = self._loop.call_at(now + self._idle_s / 4, self._check)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
