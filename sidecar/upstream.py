"""The one place the sidecar does upstream I/O: connection pools and the send/receive of one attempt.

Each cluster gets its own aiohttp `ClientSession` (one keep-alive connection pool), created on
first use and cached in a cachetools LRU keyed by the cluster key (`provider:modelId:endpoint`).
A session leaves the cache when a reload drops its cluster, when the LRU evicts it, or at
shutdown; it is closed once its in-flight attempts have finished, so no request is cut by a reload.

Network trouble becomes `UpstreamNetworkError` (retryable, counts against the breaker) with a
message that names the failure kind but never the request contents or credentials.
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

from compiler.table import Cluster
from sidecar.adapters.base import UpstreamRequest
from sidecar.errors import UpstreamNetworkError, network_failure

_RETIRE_POLL_S = 0.05
_RETIRE_MAX_S = 300.0


@dataclass(frozen=True, slots=True)
class AttemptTimeouts:
    connect_s: float
    idle_s: float


class UpstreamResponse(Protocol):
    status: int
    headers: Mapping[str, str]

    async def read(self) -> bytes: ...

    def chunks(self) -> AsyncIterator[bytes]: ...


class Transport(Protocol):
    def open(
        self, cluster: Cluster, request: UpstreamRequest, timeouts: AttemptTimeouts
    ) -> contextlib.AbstractAsyncContextManager[UpstreamResponse]: ...

    async def retire_except(self, keep: set[str]) -> None: ...

    async def close(self) -> None: ...


class _PooledSession:
    __slots__ = ("in_flight", "session")

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
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


class _AiohttpResponse:
    __slots__ = ("_idle_s", "_response", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse, idle_s: float) -> None:
        self._response = response
        self._idle_s = idle_s
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _network_error(exc) from exc

    async def chunks(self) -> AsyncIterator[bytes]:
        stream = self._response.content
        while True:
            try:
                async with asyncio.timeout(self._idle_s):
                    data = await stream.readany()
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise _network_error(exc) from exc
            if not data:
                return
            yield data


@functools.lru_cache(maxsize=1024)
def _url(url: str) -> URL:
    """encoded=True: the path goes out exactly as built (Bedrock signs `%3A` in model ids)."""
    return URL(url, encoded=True)


@functools.lru_cache(maxsize=64)
def _connect_timeout(connect_s: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, sock_connect=connect_s)


def _network_error(exc: BaseException) -> UpstreamNetworkError:
    timeout = isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError)
    kind = "timed out" if timeout else f"failed ({type(exc).__name__})"
    return UpstreamNetworkError(network_failure(f"upstream connection {kind}", timeout=timeout))


class HttpTransport:
    """aiohttp client sessions, one per cluster key."""

    def __init__(self, *, max_pools: int = 256, pool_limit: int = 0) -> None:
        self._pools: _EvictingLRU = _EvictingLRU(max_pools, self._retire)
        self._pool_limit = pool_limit
        self._retiring: set[asyncio.Task[None]] = set()

    def _session_for(self, cluster: Cluster) -> _PooledSession:
        pooled = self._pools.get(cluster.key)
        if pooled is None:
            connector = aiohttp.TCPConnector(limit=self._pool_limit, keepalive_timeout=30)
            session = aiohttp.ClientSession(
                connector=connector,
                # A proxy must never carry one caller's upstream cookies into another's request.
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
                timeout=aiohttp.ClientTimeout(total=None),
            )
            pooled = self._pools[cluster.key] = _PooledSession(session)
        return pooled

    @contextlib.asynccontextmanager
    async def open(
        self, cluster: Cluster, request: UpstreamRequest, timeouts: AttemptTimeouts
    ) -> AsyncIterator[UpstreamResponse]:
        pooled = self._session_for(cluster)
        pooled.in_flight += 1
        try:
            try:
                # The caller bounds the attempt's time; here only the connect phase has its own.
                response = await pooled.session.request(
                    request.method,
                    _url(request.url),
                    data=request.body,
                    headers=request.headers,
                    timeout=_connect_timeout(timeouts.connect_s),
                    allow_redirects=False,
                )
            except (aiohttp.ClientError, OSError) as exc:
                raise _network_error(exc) from exc
            try:
                yield _AiohttpResponse(response, timeouts.idle_s)
            finally:
                # A body left unread (a cut or a cancelled stream) must not go back to the pool.
                if response.content.at_eof():
                    response.release()
                else:
                    response.close()
        finally:
            pooled.in_flight -= 1

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
