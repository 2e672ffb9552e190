"""The one place the sidecar does upstream I/O: connection pools and the send/receive of one attempt.

Each cluster gets its own aiohttp `ClientSession` (one keep-alive connection pool), created on
first use and cached in a cachetools LRU keyed by the cluster key (`provider:modelId:endpoint`).
A session leaves the cache when a reload drops its cluster, when the LRU evicts it, or at
shutdown; it is closed once its in-flight attempts have finished, so no request is cut by a reload.

Network trouble becomes `UpstreamNetworkError` (retryable, counts against the breaker) with a
message that names the failure kind but never the request contents or credentials.

Everything read is bounded by the attempt's `Limits` (`astra_sidecar.sidecar.limits`): header
count and size (aiohttp's parser), the whole answer, error bodies (cut, not refused: the status
still classifies them), SSE lines/events, event-stream frames, and decompression, done here in
small pieces (`astra_sidecar.sidecar.upstream_body`) instead of by aiohttp. Redirects are never
followed: a 3xx is refused (`UpstreamTooLargeError`, code `upstream_refused`), and its
`Location` goes nowhere. Going over a limit is an `UpstreamTooLargeError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from cachetools import LRUCache
from yarl import URL

from astra_sidecar.compiler.table import Cluster
from astra_sidecar.sidecar.errors import UpstreamNetworkError, UpstreamTooLargeError, network_failure
from astra_sidecar.sidecar.limits import DEFAULT_LIMITS, Limits
from astra_sidecar.sidecar.protocols.base import UpstreamRequest
from astra_sidecar.sidecar.upstream_body import (
    ACCEPT_ENCODING,
    FrameWatch,
    SilenceWatch,
    SseWatch,
    inflater_for,
)

#: What upstreams see of the sidecar: its name, no version.
USER_AGENT = "astra-sidecar"
_RETIRE_POLL_S = 0.05
_RETIRE_MAX_S = 300.0
#: What aiohttp buffers of an answer before it stops reading the socket (twice this, its
#: high-water mark). A stream whose client stalled held 1.8 MiB with aiohttp's 256 KiB, 1.0 MiB
#: with this; streams under it never reach the mark (docs/hardening.md, "Backpressure").
READ_BUFSIZE = 128 * 1024


@dataclass(slots=True)  # built per request: a frozen one costs 4x to build
class AttemptTimeouts:
    connect_s: float
    idle_s: float
    limits: Limits = DEFAULT_LIMITS


class UpstreamResponse(Protocol):
    status: int
    headers: Mapping[str, str]

    async def read(self) -> bytes: ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    def ended(self) -> bool:
        """The whole body has arrived: reading the rest never waits for the upstream."""
        ...


class Transport(Protocol):
    def open(
        self, cluster: Cluster, request: UpstreamRequest, timeouts: AttemptTimeouts
    ) -> contextlib.AbstractAsyncContextManager[UpstreamResponse]: ...

    async def retire_except(self, keep: set[str]) -> None: ...

    async def close(self) -> None: ...


class _PooledSession:
    __slots__ = ("in_flight", "limits", "session")

    def __init__(self, session: aiohttp.ClientSession, limits: Limits) -> None:
        self.session = session
        self.limits = limits
        self.in_flight = 0


class _EvictingLRU(LRUCache[str, _PooledSession]):
    def __init__(self, maxsize: int, on_evict: _Retire) -> None:
        super().__init__(maxsize)
        self._on_evict = on_evict

    def popitem(self) -> tuple[str, _PooledSession]:
        key, pooled = super().popitem()
        self._on_evict(pooled)
        return key, pooled


class _Retire(Protocol):
    def __call__(self, pooled: _PooledSession) -> None: ...


class _Exchange:
    """One request/response with an upstream: an async context manager that is the response.

    Entering sends the request; leaving returns the connection to the pool, or closes it when the
    body was left unread (a cut, or a stream the client abandoned)."""

    __slots__ = ("_pooled", "_request", "_response", "_silence", "_timeouts", "headers", "status")

    def __init__(self, pooled: _PooledSession, request: UpstreamRequest, timeouts: AttemptTimeouts) -> None:
        self._pooled = pooled
        self._request = request
        self._timeouts = timeouts
        self._response: aiohttp.ClientResponse | None = None
        self._silence: SilenceWatch | None = None
        self.status = 0
        self.headers: Mapping[str, str] = {}

    async def __aenter__(self) -> _Exchange:
        request = self._request
        self._pooled.in_flight += 1
        try:
            # The caller bounds the attempt's time; here only the connect phase has its own.
            response = await self._pooled.session.request(
                request.method,
                _url(request.url),
                data=request.body,
                headers=request.headers,
                timeout=_client_timeout(
                    self._timeouts.connect_s, self._timeouts.idle_s if request.stream else None
                ),
                allow_redirects=False,
            )
        except (aiohttp.ClientError, OSError) as exc:
            self._pooled.in_flight -= 1
            raise _network_error(exc) from exc
        except BaseException:
            self._pooled.in_flight -= 1
            raise
        self._response = response
        self.status = response.status
        self.headers = response.headers
        if 300 <= response.status < 400:
            await self.__aexit__()
            self._response = None
            raise UpstreamTooLargeError(f"a redirect ({response.status}), never followed", code="refused")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        response = self._response
        self._pooled.in_flight -= 1
        if self._silence is not None:  # a stream left before its end: its generator may linger
            self._silence.stop()
        if response is None:
            return
        if response.content.at_eof():
            response.release()
        else:
            response.close()

    async def read(self) -> bytes:
        """The whole body: an answer over `maxAnswerBytes` is refused, an error body is cut at
        `maxErrorBodyBytes` (its status still says what went wrong)."""
        limits = self._timeouts.limits
        error = self.status >= 300
        limit = limits.max_error_body_bytes if error else limits.max_answer_bytes
        if self._is_plain():  # the usual answer: read as it comes, no decoding to do
            parts, size = await self._read_plain(limit)
        else:
            parts, size = [], 0
            async for data in self._decoded(limit if error else limit + 1):
                parts.append(data)
                size += len(data)
                if size > limit:
                    break
        if size > limit:
            if not error:
                raise UpstreamTooLargeError(f"an answer larger than {limit} bytes")
            return b"".join(parts)[:limit]
        return b"".join(parts)

    def _is_plain(self) -> bool:
        """Neither compressed nor a stream format whose lines or frames are watched."""
        headers = self.headers
        return "Content-Encoding" not in headers and _media_type(headers.get("Content-Type", "")) not in _WATCHED

    async def _read_plain(self, limit: int) -> tuple[list[bytes], int]:
        """The reads of a plain body, until its end or the first one past `limit`."""
        assert self._response is not None
        stream = self._response.content
        parts: list[bytes] = []
        size = 0
        while size <= limit:
            data = await _read_some(stream)
            if not data:
                break
            parts.append(data)
            size += len(data)
        return parts, size

    def ended(self) -> bool:
        return self._response is not None and self._response.content.is_eof()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, decoded; a stream over `maxAnswerBytes` in all is refused.

        An uncompressed stream is read here, with no generator or coroutine in between: each
        layer costs every chunk of a long stream."""
        assert self._response is not None
        limit = self._timeouts.limits.max_answer_bytes
        size = 0
        if "Content-Encoding" in self.headers:
            async for data in self._decoded(limit + 1):
                size += len(data)
                if size > limit:
                    raise UpstreamTooLargeError(f"a stream larger than {limit} bytes")
                yield data
            return
        watch = _watch_for(self.headers.get("Content-Type", ""), self._timeouts.limits)
        stream = self._response.content
        silence = self._silence = SilenceWatch(self._response, self._timeouts.idle_s)
        try:
            while True:
                silence.waiting = True
                try:
                    data = await stream.readany()
                except (TimeoutError, aiohttp.ClientError) as exc:
                    raise _network_error(exc) from exc
                silence.waiting = False
                if not data:
                    return
                size += len(data)
                if size > limit:
                    raise UpstreamTooLargeError(f"a stream larger than {limit} bytes")
                if watch is not None:
                    watch.feed(data)
                yield data
        finally:
            silence.stop()

    async def _decoded(self, raw_limit: int) -> AsyncIterator[bytes]:
        assert self._response is not None
        limits = self._timeouts.limits
        inflater = inflater_for(self.headers.get("Content-Encoding"), limits)
        watch = _watch_for(self.headers.get("Content-Type", ""), limits)
        stream = self._response.content
        raw = 0
        while True:
            data = await _read_some(stream)
            if not data:
                return
            raw += len(data)
            if raw > raw_limit:
                yield data  # the caller counts it and decides (refuse, or cut an error body)
                return
            if inflater is None:
                if watch is not None:
                    watch.feed(data)
                yield data
                continue
            async for piece in inflater.pieces(data):
                if watch is not None:
                    watch.feed(piece)
                yield piece


async def _read_some(stream: aiohttp.StreamReader) -> bytes:
    """What has arrived (b"" at the end); a read timeout or a broken body is a network error."""
    try:
        return await stream.readany()
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise _network_error(exc) from exc


#: Stream formats whose lines or frames are watched as they arrive, by media type.
_WATCHED: dict[str, type[SseWatch] | type[FrameWatch]] = {
    "text/event-stream": SseWatch,
    "application/vnd.amazon.eventstream": FrameWatch,
}


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _watch_for(content_type: str, limits: Limits) -> SseWatch | FrameWatch | None:
    watch = _WATCHED.get(_media_type(content_type))
    return watch(limits) if watch is not None else None


@functools.lru_cache(maxsize=1024)
def _url(url: str) -> URL:
    """encoded=True: the path goes out exactly as built (Bedrock signs `%3A` in model ids)."""
    return URL(url, encoded=True)


@functools.lru_cache(maxsize=64)
def _client_timeout(connect_s: float, idle_s: float | None) -> aiohttp.ClientTimeout:
    """Connect, and for a stream the longest silence before its head (`streamIdleMs`; in its
    body `SilenceWatch` takes over); the attempt (`attemptMs`, which alone bounds a whole
    answer) and the deadline are bounded by the caller."""
    return aiohttp.ClientTimeout(total=None, sock_connect=connect_s, sock_read=idle_s)


def _network_error(exc: BaseException) -> UpstreamNetworkError | UpstreamTooLargeError:
    if isinstance(exc, aiohttp.ClientResponseError) and _header_limit(exc):
        return UpstreamTooLargeError("a response head over the header limits, or unparseable")
    timeout = isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError)
    kind = "timed out" if timeout else f"failed ({type(exc).__name__})"
    return UpstreamNetworkError(network_failure(f"upstream connection {kind}", timeout=timeout))


class HttpTransport:
    """aiohttp client sessions, one per cluster key."""

    def __init__(self, *, max_pools: int = 256, pool_limit: int = 0) -> None:
        self._pools: _EvictingLRU = _EvictingLRU(max_pools, self._retire)
        self._pool_limit = pool_limit
        self._retiring: set[asyncio.Task[None]] = set()

    def _session_for(self, cluster: Cluster, limits: Limits) -> _PooledSession:
        pooled = self._pools.get(cluster.key)
        if pooled is not None and pooled.limits is not limits and pooled.limits != limits:
            # A reload changed the limits: header limits live in the pool's parser settings.
            self._retire(self._pools.pop(cluster.key))
            pooled = None
        if pooled is None:
            connector = aiohttp.TCPConnector(limit=self._pool_limit, keepalive_timeout=30)
            session = aiohttp.ClientSession(
                connector=connector,
                # A proxy must never carry one caller's upstream cookies into another's request.
                cookie_jar=aiohttp.DummyCookieJar(),
                # Decoded here, in bounded pieces (see astra_sidecar.sidecar.upstream_body).
                auto_decompress=False,
                # Set once here: cheaper than skipping aiohttp's own (which names its version).
                headers={"Accept-Encoding": ACCEPT_ENCODING, "User-Agent": USER_AGENT},
                timeout=aiohttp.ClientTimeout(total=None),
                max_headers=limits.max_headers,
                max_line_size=limits.max_header_bytes,
                max_field_size=limits.max_header_bytes,
                read_bufsize=READ_BUFSIZE,
            )
            pooled = self._pools[cluster.key] = _PooledSession(session, limits)
        return pooled

    def open(self, cluster: Cluster, request: UpstreamRequest, timeouts: AttemptTimeouts) -> _Exchange:
        return _Exchange(self._session_for(cluster, timeouts.limits), request, timeouts)

    def in_flight(self, key: str) -> int:
        """Requests in flight on the pool of cluster `key` (least-in-flight pools read it)."""
        pooled = self._pools.get(key)
        return pooled.in_flight if pooled is not None else 0

    def _retire(self, pooled: _PooledSession) -> None:
        task = asyncio.get_running_loop().create_task(self._close_when_idle(pooled))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _close_when_idle(self, pooled: _PooledSession) -> None:
        waited = 0.0
        while pooled.in_flight and waited < _RETIRE_MAX_S:
            await asyncio.sleep(_RETIRE_POLL_S)
            waited += _RETIRE_POLL_S
        await pooled.session.close()

    async def retire_except(self, keep: set[str]) -> None:
        for key in [k for k in self._pools if k not in keep]:
            self._retire(self._pools.pop(key))

    async def close(self) -> None:
        await self.retire_except(set())
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)


def _header_limit(exc: aiohttp.ClientResponseError) -> bool:
    """aiohttp's parser refused the response head (over `maxHeaders`/`maxHeaderBytes`, or bad)."""
    return isinstance(exc.__cause__, aiohttp.http_exceptions.HttpProcessingError)
