"""One request through the sidecar, whatever API it came in on.

read → parse (the codec) → find the agent → per-request policy → the plan (`sidecar.resilience.plan`) →
the answer, or the stream, in the caller's format. Errors come back in the caller's format too;
after the first streamed byte, as a final in-stream error event. Every request is counted in the
metrics and gets exactly one access-log line.

Before the plan runs, the request's estimated size is checked against the context window of each
plan entry (`sidecar.policy.context`). For agents that refuse some tool, the answer's tool calls go
through the agent's `sidecar.policy.tools` (plain answers whole, streams chunk by chunk), which is
why such agents never take the native pass-through path (see `TranslatedCall`).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import replace

from aiohttp import web

from compiler.table import Cluster
from sidecar.accesslog import AccessRecord
from sidecar.app_keys import STATE
from sidecar.errors import AstraError, ClientError, DeadlineExceededError, UpstreamError
from sidecar.policy.agent import PreparedRequest, check_chat_body
from sidecar.policy.context import fit_plan
from sidecar.policy.tools import StreamGuard
from sidecar.protocols.base import AuthMaterial, Completion, Failure, StreamTranslator, Usage
from sidecar.protocols.codec import IngressCall, IngressCodec, NativePrepared, StreamEncoder
from sidecar.resilience.plan import (
    BuiltAttempt,
    CallShape,
    Deadline,
    OpenAICall,
    OpenStream,
    RequestContext,
    complete,
    open_stream,
)
from sidecar.runtime import AgentRuntime, ClusterRuntime
from sidecar.serving.common import read_json, request_id

_JSON = "application/json"


def error_response(
    codec: IngressCodec, failure: Failure, headers: Mapping[str, str] | None = None
) -> web.Response:
    out = dict(headers or {})
    if failure.retry_after_s is not None and failure.status in (429, 503):
        out["Retry-After"] = str(max(1, math.ceil(failure.retry_after_s)))
    return web.Response(
        status=failure.status, body=codec.error_body(failure), content_type=_JSON, headers=out
    )


class TranslatedCall:
    """A call in another API's format, served natively where the cluster speaks that format and
    through the OpenAI translation everywhere else (each computed once, when first needed).

    Agents with a restrictive tool policy are always translated: a native answer is relayed byte
    for byte, and the tool guard reads OpenAI answers only. Their translation starts from the body
    with the tool policy applied in the caller's format (as the native path would apply it), so a
    refused tool that has no OpenAI form (a Gemini `googleSearch`, an Anthropic server tool) is
    removed and reported, not refused by the translation."""

    def __init__(self, codec: IngressCodec, call: IngressCall, agent: AgentRuntime) -> None:
        self._codec = codec
        self._call = call
        self._agent = agent
        self._guarded = codec.native and agent.policy.tool_guard is not None
        self._native: NativePrepared | None = None
        self._openai: OpenAICall | None = None
        self.removed_tools: tuple[str, ...] = ()

    def prepare_first(self) -> None:
        """Applies the per-request policy for the primary cluster's path (reports removed tools)."""
        if self._is_native(self._agent.plan[0].cluster):
            self.removed_tools = self._native_prepared().removed_tools
        else:
            self.removed_tools = self._openai_call().prepared.removed_tools

    def _is_native(self, cluster: Cluster) -> bool:
        return self._codec.native and not self._guarded and cluster.wire == self._codec.wire

    def _native_prepared(self) -> NativePrepared:
        if self._native is None:
            self._native = self._codec.prepare_native(self._call, self._agent.agent)
        return self._native

    def _openai_call(self) -> OpenAICall:
        if self._openai is None:
            call = self._call
            removed: tuple[str, ...] = ()
            if self._guarded:
                native = self._native_prepared()
                call, removed = replace(call, body=native.body), native.removed_tools
            prepared = self._agent.policy.prepare(check_chat_body(self._codec.to_openai(call)))
            if removed:
                prepared = replace(prepared, removed_tools=removed + prepared.removed_tools)
            self._openai = OpenAICall(self._agent, prepared)
        return self._openai

    async def build(self, cluster: ClusterRuntime, inbound: Mapping[str, str]) -> BuiltAttempt:
        if not self._is_native(cluster.cluster):
            return await self._openai_call().build(cluster, inbound)
        body = self._codec.native_for_cluster(
            self._native_prepared(), self._agent.policy, cluster.cluster, self._call
        )
        auth: AuthMaterial = await cluster.credentials.material(inbound)
        request = self._codec.native_request(cluster.cluster, body, auth, self._call, inbound)
        return BuiltAttempt(request, body, native=True)

    def parse(self, cluster: ClusterRuntime, built: BuiltAttempt, raw: bytes) -> Completion:
        if not built.native:
            return self._openai_call().parse(cluster, built, raw)
        # The native answer still goes through the adapter once: a malformed answer is an error.
        cluster.adapter.parse_response(cluster.cluster, {"messages": []}, raw)
        return Completion(raw, self._codec.native_usage(raw))

    def translator(self, cluster: ClusterRuntime, built: BuiltAttempt) -> StreamTranslator:
        if not built.native:
            return self._openai_call().translator(cluster, built)
        # Native streams are relayed as they are; the adapter's translator only watches them for
        # in-stream errors, cuts and usage.
        return cluster.adapter.stream_translator(
            cluster.cluster, {"stream": True, "stream_options": {"include_usage": True}}
        )


async def serve(request: web.Request, codec: IngressCodec) -> web.StreamResponse:
    state = request.app[STATE]
    shared = state.shared
    record = AccessRecord(request_id=request_id(request), route=codec.name)
    started = shared.clock.now()
    state.enter()
    ctx: RequestContext | None = None
    try:
        ctx, call = await _context(request, codec, record)
        if call.stream:
            return await _stream(request, codec, call, ctx, record)
        completion, native = await complete(ctx)
        record.status = 200
        record.provider = ctx.served_by.cluster.provider if ctx.served_by else None
        _count_usage(ctx, record, completion.usage)
        body = (
            completion.body
            if native
            else codec.completion_from_openai(_guarded(ctx, record, completion.body), call)
        )
        return web.Response(body=body, content_type=_JSON, headers=_outcome_headers(ctx, record))
    except AstraError as exc:
        record.status, record.error_code = exc.failure.status, exc.failure.code
        headers = _outcome_headers(ctx, record) if ctx else {"x-request-id": record.request_id}
        return error_response(codec, exc.failure, headers)
    finally:
        elapsed = max(0.0, shared.clock.now() - started)
        record.latency_ms = round(elapsed * 1000.0, 3)
        if ctx is not None:
            record.attempts = ctx.attempts
            agent_id = ctx.agent.agent.id
            shared.metrics.request_seconds.labels(agent_id).observe(elapsed)
            shared.metrics.requests.labels(agent_id, record.provider or "none", str(record.status)).inc()
        record.emit(shared.access_sink)
        state.leave()


async def _context(
    request: web.Request, codec: IngressCodec, record: AccessRecord
) -> tuple[RequestContext, IngressCall]:
    state = request.app[STATE]
    runtime = state.runtime
    if state.draining:
        raise ClientError(503, "the sidecar is shutting down", code="draining", error_type="server_error")
    raw = await read_json(request, runtime.table.settings.max_body_bytes)
    call = codec.parse(raw, request.match_info, request.query)
    agent = runtime.agents.get(call.agent_id)
    if agent is None:
        raise ClientError(
            404,
            f"The model '{call.agent_id}' does not exist: it names no agent of this sidecar",
            code="model_not_found",
            param="model",
        )
    record.agent = agent.agent.id
    record.stream = call.stream
    agent = fit_plan(agent, call.body)
    shape, removed = _shape_for(codec, call, agent)
    shared = state.shared
    if removed:
        shared.metrics.tools_removed.labels(agent.agent.id).inc(len(removed))
    ctx = RequestContext(
        agent=agent,
        shape=shape,
        inbound=codec.inbound(request.headers, request.query),
        clock=shared.clock,
        rng=shared.rng,
        metrics=shared.metrics,
        deadline=Deadline(shared.clock, agent.agent.request_timeout_ms),
        started=shared.clock.now(),
        removed_tools=removed,
    )
    return ctx, call


def _shape_for(
    codec: IngressCodec, call: IngressCall, agent: AgentRuntime
) -> tuple[CallShape, tuple[str, ...]]:
    if not codec.native:
        prepared: PreparedRequest = agent.policy.prepare(codec.to_openai(call))
        return OpenAICall(agent, prepared), prepared.removed_tools
    shape = TranslatedCall(codec, call, agent)
    shape.prepare_first()
    return shape, shape.removed_tools


def _outcome_headers(ctx: RequestContext, record: AccessRecord) -> dict[str, str]:
    headers = {"x-request-id": record.request_id, "x-astra-agent": ctx.agent.agent.id}
    headers["x-astra-attempts"] = str(ctx.attempts)
    if ctx.served_by is not None:
        headers["x-astra-provider"] = ctx.served_by.cluster.provider
    if ctx.removed_tools:
        headers["x-astra-tools-removed"] = ",".join(ctx.removed_tools)
    return headers


def _guarded(ctx: RequestContext, record: AccessRecord, body: bytes) -> bytes:
    """A whole OpenAI answer after the agent's tool guard (as it is when the agent has none)."""
    guard = ctx.agent.policy.tool_guard
    if guard is None:
        return body
    return guard.completion(body, guard.reporter(ctx.metrics, record.request_id))


def _stream_guard(ctx: RequestContext, record: AccessRecord, opened: OpenStream) -> StreamGuard | None:
    guard = ctx.agent.policy.tool_guard
    if guard is None or opened.native:
        return None
    return guard.stream(guard.reporter(ctx.metrics, record.request_id))


def _count_usage(ctx: RequestContext, record: AccessRecord, usage: Usage | None) -> None:
    if usage is None:
        return
    record.prompt_tokens, record.completion_tokens = usage.prompt_tokens, usage.completion_tokens
    ctx.metrics.count_usage(ctx.agent.agent.id, record.provider or "none", usage)


class _Relay:
    """Writes one opened stream to the client in the caller's format (OpenAI chunks through the
    agent's tool guard when it has one)."""

    def __init__(
        self,
        response: web.StreamResponse,
        opened: OpenStream,
        encoder: StreamEncoder,
        guard: StreamGuard | None = None,
    ) -> None:
        self._response = response
        self._opened = opened
        self._encoder = encoder
        self._guard = guard

    def close(self) -> bytes:
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
        opened = self._opened
        try:
            async with asyncio.timeout(max(0.001, deadline.remaining())):
                async for data in opened.chunks:
                    if opened.native:
                        await self._response.write(data)
                        try:
                            opened.translator.feed(data)
                        except UpstreamError as exc:
                            return exc.failure, True
                        continue
                    payloads = opened.translator.feed(data)
                    if payloads and (encoded := self._encode(payloads)):
                        await self._response.write(encoded)
                tail = opened.translator.finish()
                # The last chunks and the stream's terminator go out in one write.
                encoded = self._encode(tail) if tail and not opened.native else b""
                if closing := encoded + self.close():
                    await self._response.write(closing)
        except UpstreamError as exc:
            return exc.failure, False
        except TimeoutError:
            return DeadlineExceededError(deadline.timeout_ms).failure, False
        return None, False


async def _stream(
    request: web.Request, codec: IngressCodec, call: IngressCall, ctx: RequestContext, record: AccessRecord
) -> web.StreamResponse:
    opened = await open_stream(ctx)
    record.provider = opened.cluster.cluster.provider
    response = web.StreamResponse(
        status=200,
        headers={
            "Content-Type": codec.stream_content_type(),
            "Cache-Control": "no-cache",
            **_outcome_headers(ctx, record),
        },
    )
    record.status = 200
    relay = _Relay(response, opened, codec.stream_encoder(call), _stream_guard(ctx, record, opened))
    try:
        await response.prepare(request)
        await relay.first()
        ctx.metrics.ttft_seconds.labels(ctx.agent.agent.id).observe(max(0.0, ctx.clock.now() - ctx.started))
        failure, relayed = await relay.rest(ctx.deadline)
        if failure is None:
            opened.permit.success()
        else:
            record.error_code = failure.code
            _report(opened, failure)
            if not relayed:
                await response.write(codec.stream_error(failure))
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
        _count_usage(ctx, record, opened.translator.usage)
    return response


def _report(opened: OpenStream, failure: Failure) -> None:
    if failure.breaker_counts:
        opened.permit.failure()
    else:
        opened.permit.release()
