"""A streamed answer: the plan runs until one cluster has produced its first event, then that
stream belongs to the client and is relayed to its end in the caller's format.

Translated streams become the caller's events through its codec's encoder (OpenAI chunks through
the agent's tool guard first, when it has one); native streams are relayed byte for byte while
their watch looks for usage, in-stream errors and cuts. A failure after the first byte is a final
in-stream error event (a native stream already carries the upstream's own error event).

Backpressure: every write waits until the client's connection has room (aiohttp drains the
transport past its high-water mark, set here to `WRITE_BUFFER_HIGH`), and while it waits the
upstream is not read, so a client that reads slowly slows its upstream down and holds a bounded
buffer (docs/hardening.md, "Backpressure"). A client that accepts no bytes for
`limits.clientStallMs` is cut (`_StallWatch`): its connection is reset, the upstream's is
released, the access line says `client_stalled` and `astra_client_stalls_total` counts it.
Relaying hands the event loop back every `TURN_BYTES` (`_Turns`), so a fast upstream's stream
never holds the loop for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import socket
import struct
import termios
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from astra_sidecar.sidecar.accesslog import AccessRecord
from astra_sidecar.sidecar.errors import DeadlineExceededError, UpstreamError
from astra_sidecar.sidecar.policy.tools import StreamGuard
from astra_sidecar.sidecar.protocols.base import Failure, StreamTranslator
from astra_sidecar.sidecar.protocols.codec import StreamEncoder
from astra_sidecar.sidecar.resilience.attempt import OpenStream, first_events
from astra_sidecar.sidecar.resilience.breaker import Permit
from astra_sidecar.sidecar.resilience.plan import Deadline, count_stream_attempt, report_stream_end, run_plan
from astra_sidecar.sidecar.serving.responses import error_response

if TYPE_CHECKING:
    from astra_sidecar.sidecar.serving.flow import Exchange


class _Relay:
    """Writes one opened stream to the client in the caller's format.

    When the upstream's whole stream has already arrived by the time its first event is read (a
    short answer), what it becomes is held and goes out with the end of the response in one
    write, as long as it stays under `HELD_MAX` and the client's buffer is empty: that write,
    headers included, stays under the high-water mark, so it cannot wait for the client.
    Otherwise every event is written as it comes, under a `_StallWatch` created at the first
    such write."""

    def __init__(
        self,
        response: web.StreamResponse,
        opened: OpenStream,
        encoder: StreamEncoder,
        guard: StreamGuard | None,
        stall: tuple[asyncio.Transport | None, float],
    ) -> None:
        self._response = response
        self._opened = opened
        self._encoder = encoder
        self._guard = guard
        self._stall = stall
        self._watch: _StallWatch | None = None
        transport = stall[0]
        idle = transport is None or transport.get_write_buffer_size() == 0
        self._held: list[bytes] | None = [] if idle and opened.ended() else None
        self._held_size = 0

    @property
    def stalled(self) -> bool:
        return self._watch is not None and self._watch.stalled

    def _stall_watch(self) -> _StallWatch:
        if self._watch is None:
            self._watch = _StallWatch(*self._stall)
        return self._watch

    async def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            held.append(data)
            self._held_size += len(data)
            if self._held_size <= HELD_MAX:
                return
            data, self._held = b"".join(held), None  # too much to hold: relay it as it comes
        watch = self._watch or self._stall_watch()
        watch.begin(len(data))
        if len(data) <= WRITE_PIECE:
            await self._response.write(data)
        else:  # aiohttp waits for the client between writes, not inside one
            view = memoryview(data)
            for start in range(0, len(data), WRITE_PIECE):
                await self._response.write(view[start : start + WRITE_PIECE])
        watch.end()

    async def end(self) -> None:
        """The end of the response, with what is held."""
        if self._held is not None:
            await self._response.write_eof(b"".join(self._held))
            return
        watch = self._stall_watch()
        watch.begin(0)
        await self._response.write_eof()
        watch.end()

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.stop()

    def _close(self) -> bytes:
        if self._opened.native:
            return b""
        held = self._guard.finish() if self._guard is not None else []
        return (self._encoder.encode(held) if held else b"") + self._encoder.close()

    def _encode(self, payloads: list[bytes]) -> bytes:
        if self._guard is not None:
            payloads = self._guard.feed(payloads)
        return self._encoder.encode(payloads) if payloads else b""

    async def first(self) -> None:
        opened = self._opened
        data = opened.first_raw if opened.native else self._encode(opened.first)
        if data:
            await self.write(data)

    async def rest(self, deadline: Deadline) -> tuple[Failure | None, bool]:
        """Relays to the end. Returns the failure that ended the stream early, if any, and whether
        the client already has it (a native stream relays the upstream's own error event)."""
        try:
            if self._held is not None:  # it has all arrived: relayed without a timer, nothing waits
                return await self._relay_rest()
            async with asyncio.timeout(max(0.001, deadline.remaining())):
                return await self._relay_rest()
        except UpstreamError as exc:
            return exc.failure, False
        except TimeoutError:
            return DeadlineExceededError(deadline.timeout_ms).failure, False

    async def _relay_rest(self) -> tuple[Failure | None, bool]:
        if self._opened.watch is not None:
            return await self._rest_native()
        await self._rest_translated()
        return None, False

    async def _rest_native(self) -> tuple[Failure | None, bool]:
        opened, watch, write = self._opened, self._opened.watch, self.write
        assert watch is not None
        turns = _Turns()
        async for read in opened.chunks:
            for data in _pieces(read):
                await write(data)
                try:
                    watch.feed(data)
                except UpstreamError as exc:
                    return exc.failure, True
                if turns.due(len(data)):
                    await asyncio.sleep(0)
        watch.finish()
        return None, False

    async def _rest_translated(self) -> None:
        opened, translator, write = self._opened, self._opened.translator, self.write
        assert translator is not None
        as_is = _as_is_check(translator, self._encoder) if self._guard is None else None
        turns = _Turns()
        async for read in opened.chunks:
            for data in _pieces(read):
                if as_is is not None and as_is(data):
                    await write(data)
                else:
                    payloads = translator.feed(data)
                    if payloads and (encoded := self._encode(payloads)):
                        await write(encoded)
                if turns.due(len(data)):
                    await asyncio.sleep(0)
        tail = translator.finish()
        # The last chunks and the stream's terminator go out in one write.
        closing = (self._encode(tail) if tail else b"") + self._close()
        if closing:
            await write(closing)


def _as_is_check(translator: StreamTranslator, encoder: StreamEncoder) -> Callable[[bytes], bool] | None:
    """The check of reads relayed as they came: OpenAI events in and out (`relayed_as_is` in
    `base.StreamTranslator`). Optional attributes, not runtime protocols: an `isinstance` of one
    costs more than the check saves on a short stream."""
    check: Callable[[bytes], bool] | None = getattr(translator, "relayed_as_is", None)
    return check if getattr(encoder, "frames_openai_sse", False) else None


def _stream_guard(exchange: Exchange, record: AccessRecord, opened: OpenStream) -> StreamGuard | None:
    guard = exchange.agent.policy.tool_guard
    if guard is None or opened.native:
        return None
    return guard.stream(guard.reporter(exchange.plan.metrics, record.request_id))


#: The client transport's write buffer during a stream: past `WRITE_BUFFER_HIGH` queued bytes a
#: write waits for the client; it goes on once the queue is under `WRITE_BUFFER_LOW`. aiohttp
#: checks after every 64 KiB written, and a larger chunk is written in `WRITE_PIECE`s, so what is
#: queued for a stalled client stays under `MAX_QUEUED` (docs/hardening.md, "Backpressure").
WRITE_BUFFER_HIGH = 64 * 1024
WRITE_BUFFER_LOW = 16 * 1024
WRITE_PIECE = 64 * 1024
MAX_QUEUED = WRITE_BUFFER_HIGH + 64 * 1024 + WRITE_PIECE
#: The most a short answer's stream holds to send in one write with its end (`_Relay`).
HELD_MAX = WRITE_BUFFER_HIGH // 2
SEND_BUFFER = 128 * 1024
#: Relaying hands the loop back after this many bytes, fed to translators in pieces this large.
TURN_BYTES = 16 * 1024
FEED_PIECE = 16 * 1024
_UNKNOWN = 1 << 62
_TIOCOUTQ: int | None = getattr(termios, "TIOCOUTQ", None)


class ClientStalledError(ConnectionResetError):
    """The client accepted no bytes for `clientStallMs`: the sidecar cut its connection."""


class _StallWatch:
    """Cuts a client that has accepted no bytes for `stall_s` while a write waits for it.

    One timer per stream, which reschedules itself every quarter of `stall_s`: a write only notes
    when it starts and ends and what it wrote (no timer per chunk). Progress is bytes the client
    accepted: written, less what still waits in the transport and in the kernel's send queue
    (`TIOCOUTQ`: sent but not acknowledged, or not sent), so a slow reader that keeps taking
    bytes is never cut; a stalled one is cut between `stall_s` and 1.5 times `stall_s` after it
    took its last byte."""

    __slots__ = ("_accepted", "_handle", "_loop", "_since", "_stall_s", "_transport", "_written", "stalled")

    def __init__(self, transport: asyncio.Transport | None, stall_s: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._transport = transport
        self._stall_s = stall_s
        self._since: float | None = None
        self._written = 0
        self._accepted = -_UNKNOWN
        self.stalled = False
        self._handle: asyncio.TimerHandle | None = None
        if transport is not None:
            transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH, low=WRITE_BUFFER_LOW)
            _bound_send_buffer(transport)
            self._handle = self._loop.call_later(stall_s / 4, self._check)

    def begin(self, size: int) -> None:
        """A write of `size` bytes starts: from now it may wait for the client."""
        self._since = self._loop.time()
        self._written += size

    def end(self) -> None:
        """The write is done, unless it was woken by the cut itself."""
        if self.stalled:
            raise ClientStalledError("the client accepted no bytes")
        self._since = None

    def _check(self) -> None:
        now, transport = self._loop.time(), self._transport
        assert transport is not None
        if self._since is not None:
            accepted = self._written - transport.get_write_buffer_size() - _unacknowledged(transport)
            if accepted > self._accepted:  # the client took bytes: the wait starts over
                self._since = now
            self._accepted = accepted
            if now - self._since >= self._stall_s:
                self.stalled, self._handle = True, None
                _reset(transport)
                return
        self._handle = self._loop.call_at(now + self._stall_s / 4, self._check)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class _Turns:
    """When a relay hands the loop back: after every `TURN_BYTES` relayed. Reads of an upstream
    that sends fast complete without waiting, so one task would otherwise relay, and translate,
    all that is buffered in one callback (tens of ms for a few hundred KiB) while a healthy
    request waited (docs/hardening.md, "No blocking callback"). A plain method, not another
    generator around the reads: each layer costs every chunk of a long stream."""

    __slots__ = ("_since",)

    def __init__(self) -> None:
        self._since = 0

    def due(self, relayed: int) -> bool:
        self._since += relayed
        if self._since < TURN_BYTES:
            return False
        self._since = 0
        return True


def _pieces(data: bytes) -> tuple[bytes, ...] | list[bytes]:
    """One read in pieces of at most `FEED_PIECE` bytes (the read itself, the usual case)."""
    if len(data) <= FEED_PIECE:
        return (data,)
    return [data[start : start + FEED_PIECE] for start in range(0, len(data), FEED_PIECE)]


def _bound_send_buffer(transport: asyncio.Transport) -> None:
    """Caps the kernel's send buffer of a streaming client's socket at `SEND_BUFFER` (Linux
    doubles the figure for its bookkeeping). Left to autotuning it grows to `tcp_wmem`'s maximum
    (4 MiB here) for a client that does not read: kernel memory, and megabytes of upstream
    stream read and translated before the stall shows. 128 KiB per round trip is still far more
    than a token stream needs."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)


def _reset(transport: asyncio.Transport) -> None:
    """Closes the connection with a reset: what the kernel still holds for the client is dropped
    at once (a plain close would keep trying to deliver it, and the FIN after it, for minutes)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _unacknowledged(transport: asyncio.Transport) -> int:
    """Bytes in the kernel's send queue of the transport's socket (0 where that cannot be asked)."""
    sock = transport.get_extra_info("socket")
    if sock is None or _TIOCOUTQ is None:
        return 0
    try:
        raw = fcntl.ioctl(sock.fileno(), _TIOCOUTQ, b"\0\0\0\0")
    except (OSError, ValueError):
        return 0
    return int(struct.unpack("i", raw)[0])


async def serve_stream(request: web.Request, exchange: Exchange, record: AccessRecord) -> web.StreamResponse:
    attempt = functools.partial(first_events, exchange.shape, timeouts=exchange.timeouts())
    outcome = await run_plan(exchange.plan, attempt, stream=True)
    record.attempts = outcome.attempts
    headers = exchange.headers(record, outcome)
    if outcome.error is not None:
        refused = outcome.error.failure
        record.status, record.error_code = refused.status, refused.code
        return error_response(exchange.codec, refused, headers)
    opened = outcome.result()
    record.provider = opened.cluster.cluster.provider
    response = web.StreamResponse(
        status=200,
        headers={"Content-Type": exchange.codec.stream_content_type, "Cache-Control": "no-cache", **headers},
    )
    record.status = 200
    guard = _stream_guard(exchange, record, opened)
    stall = (request.transport, exchange.limits.client_stall_ms / 1000.0)
    relay = _Relay(response, opened, exchange.codec.stream_encoder(exchange.call), guard, stall)
    reported = False
    try:
        await response.prepare(request)
        await relay.first()
        metrics, clock = exchange.plan.metrics, exchange.plan.clock
        metrics.ttft_seconds.labels(exchange.agent.agent.id).observe(max(0.0, clock.now() - exchange.started))
        failure, relayed = await relay.rest(exchange.plan.deadline)
        report_stream_end(exchange.plan, opened.cluster, opened.permit, failure)
        reported = True
        if failure is not None:
            record.error_code = failure.code
            if not relayed:
                await relay.write(exchange.codec.stream_error(failure))
        await relay.end()
    except asyncio.CancelledError:
        _client_gone(exchange, record, opened.permit, relay.stalled)
        raise
    except ConnectionError:
        # The client went away mid-stream (before its handler was cancelled: a reset while a
        # write waited is aiohttp's `ConnectionError`), or was cut for stalling: nothing more
        # can reach it, so this is no error for the guard to log.
        _client_gone(exchange, record, opened.permit, relay.stalled)
    finally:
        if not reported:  # the client went away (or stalled): the upstream's attempt went well
            count_stream_attempt(exchange.plan, opened.cluster, None)
        relay.stop()
        await opened.close()
        exchange.count_usage(record, opened.usage_source.usage)
    return response


def _client_gone(exchange: Exchange, record: AccessRecord, permit: Permit, stalled: bool) -> None:
    """The stream ended on the client's side: it went away, or stalled and was cut."""
    permit.release()
    record.error_code = "client_stalled" if stalled else "client_disconnected"
    if stalled:
        exchange.plan.metrics.client_stalls.labels(exchange.agent.agent.id).inc()
