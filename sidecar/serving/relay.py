"""A streamed answer: the plan runs until one cluster has produced its first event, then that
stream belongs to the client and is relayed to its end in the caller's format.

Translated streams become the caller's events through its codec's encoder (OpenAI chunks through
the agent's tool guard first, when it has one); native streams are relayed byte for byte while
their watch looks for usage, in-stream errors and cuts. A failure after the first byte is a final
in-stream error event (a native stream already carries the upstream's own error event).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

from astra_sidecar.sidecar.accesslog import AccessRecord
from astra_sidecar.sidecar.errors import DeadlineExceededError, UpstreamError
from astra_sidecar.sidecar.policy.tools import StreamGuard
from astra_sidecar.sidecar.protocols.base import Failure
from astra_sidecar.sidecar.protocols.codec import StreamEncoder
from astra_sidecar.sidecar.resilience.attempt import OpenStream, first_events
from astra_sidecar.sidecar.resilience.breaker import Permit
from astra_sidecar.sidecar.resilience.plan import Deadline, report_stream_end, run_plan
from astra_sidecar.sidecar.serving.responses import error_response

if TYPE_CHECKING:
    from astra_sidecar.sidecar.runtime import ClusterRuntime
    from astra_sidecar.sidecar.serving.flow import Exchange


class _Relay:
    """Writes one opened stream to the client in the caller's format."""

    def __init__(
        self, response: web.StreamResponse, opened: OpenStream, encoder: StreamEncoder, guard: StreamGuard | None
    ) -> None:
        self._response = response
        self._opened = opened
        self._encoder = encoder
        self._guard = guard

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
            await self._response.write(data)

    async def rest(self, deadline: Deadline) -> tuple[Failure | None, bool]:
        """Relays to the end. Returns the failure that ended the stream early, if any, and whether
        the client already has it (a native stream relays the upstream's own error event)."""
        try:
            async with asyncio.timeout(max(0.001, deadline.remaining())):
                if self._opened.watch is not None:
                    return await self._rest_native()
                await self._rest_translated()
        except UpstreamError as exc:
            return exc.failure, False
        except TimeoutError:
            return DeadlineExceededError(deadline.timeout_ms).failure, False
        return None, False

    async def _rest_native(self) -> tuple[Failure | None, bool]:
        opened, watch, write = self._opened, self._opened.watch, self._response.write
        assert watch is not None
        async for data in opened.chunks:
            await write(data)
            try:
                watch.feed(data)
            except UpstreamError as exc:
                return exc.failure, True
        watch.finish()
        return None, False

    async def _rest_translated(self) -> None:
        opened, translator, write = self._opened, self._opened.translator, self._response.write
        assert translator is not None
        async for data in opened.chunks:
            payloads = translator.feed(data)
            if payloads and (encoded := self._encode(payloads)):
                await write(encoded)
        tail = translator.finish()
        # The last chunks and the stream's terminator go out in one write.
        closing = (self._encode(tail) if tail else b"") + self._close()
        if closing:
            await write(closing)


def _stream_guard(exchange: Exchange, record: AccessRecord, opened: OpenStream) -> StreamGuard | None:
    guard = exchange.agent.policy.tool_guard
    if guard is None or opened.native:
        return None
    return guard.stream(guard.reporter(exchange.plan.metrics, record.request_id))


async def serve_stream(request: web.Request, exchange: Exchange, record: AccessRecord) -> web.StreamResponse:
    timeouts = exchange.timeouts()

    async def attempt(cluster: ClusterRuntime, permit: Permit) -> OpenStream:
        return await first_events(exchange.shape, cluster, permit, timeouts)

    outcome = await run_plan(exchange.plan, attempt)
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
    relay = _Relay(response, opened, exchange.codec.stream_encoder(exchange.call), guard)
    try:
        await response.prepare(request)
        await relay.first()
        metrics, clock = exchange.plan.metrics, exchange.plan.clock
        metrics.ttft_seconds.labels(exchange.agent.agent.id).observe(max(0.0, clock.now() - exchange.started))
        failure, relayed = await relay.rest(exchange.plan.deadline)
        report_stream_end(opened.permit, failure)
        if failure is not None:
            record.error_code = failure.code
            if not relayed:
                await response.write(exchange.codec.stream_error(failure))
        await response.write_eof()
    except asyncio.CancelledError:
        opened.permit.release()
        record.error_code = "client_disconnected"
        raise
    except ConnectionResetError:
        # The client went away mid-stream (before its handler was cancelled): nothing more can
        # reach it and nothing failed here, so this is no error for the guard to log.
        opened.permit.release()
        record.error_code = "client_disconnected"
    finally:
        await opened.exits.aclose()
        exchange.count_usage(record, opened.usage_source.usage)
    return response
