"""One attempt at one cluster: build the upstream request, send it, read the answer or open the stream.

How a request is built and its answer read depends on the call (`CallShape`: translated through
the cluster's adapter, or native pass-through); sending, failing on an error status and reading
the first chunk of a stream are the same for all. A failure is an `UpstreamError` for the plan
(`astra_sidecar.sidecar.resilience.plan`) to retry, fall back or give up on.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from astra_sidecar.sidecar import large_json
from astra_sidecar.sidecar.errors import UpstreamStatusError, without_credentials
from astra_sidecar.sidecar.protocols.base import Body, Completion, StreamTranslator, UpstreamRequest
from astra_sidecar.sidecar.protocols.codec import StreamWatch
from astra_sidecar.sidecar.resilience.breaker import Permit
from astra_sidecar.sidecar.upstream import AttemptTimeouts, UpstreamResponse

if TYPE_CHECKING:  # types only: the runtime imports the protocol registry
    from astra_sidecar.sidecar.runtime import ClusterRuntime


@dataclass(slots=True)  # built per request: a frozen one costs 4x to build
class BuiltAttempt:
    """One attempt's upstream request, and how to read its answer: `native` answers go back to
    the client as they are; the others are OpenAI bytes from the cluster's adapter."""

    request: UpstreamRequest
    body: Body
    native: bool = False


class CallShape(Protocol):
    """How one client call becomes an attempt on a given cluster, and how its answer is read."""

    async def build(self, cluster: ClusterRuntime) -> BuiltAttempt: ...

    def parse(self, cluster: ClusterRuntime, built: BuiltAttempt, raw: bytes) -> Completion: ...

    def translator(self, cluster: ClusterRuntime, built: BuiltAttempt) -> StreamTranslator: ...

    def watch(self, cluster: ClusterRuntime, built: BuiltAttempt) -> StreamWatch: ...


@dataclass(slots=True)
class OpenStream:
    """An upstream stream that has produced its first event(s) and now belongs to the client.

    Translated streams carry a `translator` (its first OpenAI payloads in `first`); native ones a
    `watch`, and their bytes so far in `first_raw`."""

    cluster: ClusterRuntime
    permit: Permit
    translator: StreamTranslator | None
    watch: StreamWatch | None
    first: list[bytes]
    first_raw: bytes
    chunks: AsyncIterator[bytes]
    #: The upstream exchange, left (`close`) when the stream ends.
    exchange: contextlib.AbstractAsyncContextManager[UpstreamResponse]
    #: True once the upstream's whole stream has arrived: the rest is relayed without waiting.
    ended: Callable[[], bool]

    async def close(self) -> None:
        await self.exchange.__aexit__(None, None, None)

    @property
    def native(self) -> bool:
        return self.watch is not None

    @property
    def usage_source(self) -> StreamTranslator | StreamWatch:
        source = self.watch or self.translator
        assert source is not None
        return source


async def upstream_failure(
    cluster: ClusterRuntime, response: UpstreamResponse, request: UpstreamRequest
) -> UpstreamStatusError:
    raw = await response.read()
    failure = cluster.adapter.classify_error(cluster.cluster, response.status, response.headers, raw)
    return UpstreamStatusError(without_credentials(failure, request.headers), cluster.cluster.key)


async def whole_answer(
    shape: CallShape, cluster: ClusterRuntime, permit: Permit, timeouts: AttemptTimeouts
) -> tuple[Completion, bool]:
    """A whole (non-streamed) answer from one cluster, and whether it is native (not OpenAI)."""
    built = await shape.build(cluster)
    async with cluster.transport.open(cluster.cluster, built.request, timeouts) as response:
        if response.status >= 300:
            raise await upstream_failure(cluster, response, built.request)
        raw = await response.read()
    with await large_json.known_answer(raw):  # a large answer is parsed in slices, once
        completion = shape.parse(cluster, built, raw)
    permit.success()
    return completion, built.native


async def first_events(
    shape: CallShape, cluster: ClusterRuntime, permit: Permit, timeouts: AttemptTimeouts
) -> OpenStream:
    """Opens a stream at one cluster and reads until its first event is there."""
    built = await shape.build(cluster)
    exchange = cluster.transport.open(cluster.cluster, built.request, timeouts)
    response = await exchange.__aenter__()
    try:
        if response.status >= 300:
            raise await upstream_failure(cluster, response, built.request)
        chunks = response.chunks()
        if built.native:
            watch = shape.watch(cluster, built)
            raw = await _first_watched(chunks, watch)
            return OpenStream(cluster, permit, None, watch, [], raw, chunks, exchange, response.ended)
        translator = shape.translator(cluster, built)
        first, raw = await _first_translated(chunks, translator)
        return OpenStream(cluster, permit, translator, None, first, raw, chunks, exchange, response.ended)
    except BaseException:
        await exchange.__aexit__(None, None, None)
        raise


async def _first_translated(
    chunks: AsyncIterator[bytes], translator: StreamTranslator
) -> tuple[list[bytes], bytes]:
    """Reads until the translator yields its first chunk: (those chunks, the raw bytes read)."""
    raw: list[bytes] = []
    async for data in chunks:
        raw.append(data)
        out = translator.feed(data)
        if out:
            return out, b"".join(raw)
    return translator.finish(), b"".join(raw)


async def _first_watched(chunks: AsyncIterator[bytes], watch: StreamWatch) -> bytes:
    """Reads until the first whole event has arrived: the raw bytes read."""
    raw: list[bytes] = []
    async for data in chunks:
        raw.append(data)
        if watch.feed(data):
            return b"".join(raw)
    watch.finish()
    return b"".join(raw)


def attempt_timeouts(connect_ms: int, stream_idle_ms: int) -> AttemptTimeouts:
    return AttemptTimeouts(connect_s=connect_ms / 1000.0, idle_s=stream_idle_ms / 1000.0)


__all__ = [
    "BuiltAttempt",
    "CallShape",
    "OpenStream",
    "first_events",
    "upstream_failure",
    "whole_answer",
]

