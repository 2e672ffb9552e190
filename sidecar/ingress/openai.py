"""OpenAI-compatible ingress: `POST /v1/chat/completions` and `GET /v1/models`.

`model` names an agent. Answers carry headers that say what happened:
  x-astra-agent, x-astra-provider (the provider that served), x-astra-attempts (upstream attempts
  made, retries and fallbacks included), x-astra-tools-removed (request tools the policy removed),
  x-request-id.
Errors are OpenAI's `{"error": {"message", "type", "param", "code"}}` with the sidecar's status
mapping (see `sidecar.errors`); a failure after streaming began is a final `data: {"error": …}`
event.
"""

from __future__ import annotations

import asyncio
import logging
import math

import orjson
from aiohttp import web

from sidecar.accesslog import AccessRecord
from sidecar.adapters.base import Failure
from sidecar.app_keys import STATE
from sidecar.errors import AstraError, ClientError, DeadlineExceededError, UpstreamError
from sidecar.ingress.common import read_json, request_id
from sidecar.policy import check_chat_body
from sidecar.proxy import Deadline, OpenStream, RequestContext, complete, open_stream
from sidecar.sse import DONE, encode_data

log = logging.getLogger("astra.sidecar")

_JSON = "application/json"


def error_payload(failure: Failure) -> bytes:
    return orjson.dumps(
        {
            "error": {
                "message": failure.message,
                "type": failure.error_type,
                "param": failure.param,
                "code": failure.code,
            }
        }
    )


def error_response(failure: Failure, headers: dict[str, str] | None = None) -> web.Response:
    headers = dict(headers or {})
    if failure.retry_after_s is not None and failure.status in (429, 503):
        headers["Retry-After"] = str(max(1, math.ceil(failure.retry_after_s)))
    return web.Response(
        status=failure.status, body=error_payload(failure), content_type=_JSON, headers=headers
    )


def _outcome_headers(ctx: RequestContext, record: AccessRecord) -> dict[str, str]:
    headers = {"x-request-id": record.request_id, "x-astra-agent": ctx.agent.agent.id}
    headers["x-astra-attempts"] = str(ctx.attempts)
    if ctx.served_by is not None:
        headers["x-astra-provider"] = ctx.served_by.cluster.provider
    if ctx.prepared.removed_tools:
        headers["x-astra-tools-removed"] = ",".join(ctx.prepared.removed_tools)
    return headers


async def list_models(request: web.Request) -> web.Response:
    return web.Response(body=request.app[STATE].runtime.models_body, content_type=_JSON)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    shared = state.shared
    record = AccessRecord(request_id=request_id(request), route="openai")
    started = shared.clock.now()
    state.enter()
    ctx: RequestContext | None = None
    try:
        ctx = await _context(request, record)
        if ctx.prepared.stream:
            return await _stream(request, ctx, record)
        completion = await complete(ctx)
        record.status = 200
        record.provider = ctx.served_by.cluster.provider if ctx.served_by else None
        if completion.usage is not None:
            record.prompt_tokens = completion.usage.prompt_tokens
            record.completion_tokens = completion.usage.completion_tokens
            shared.metrics.count_usage(ctx.agent.agent.id, record.provider or "none", completion.usage)
        return web.Response(body=completion.body, content_type=_JSON, headers=_outcome_headers(ctx, record))
    except AstraError as exc:
        record.status, record.error_code = exc.failure.status, exc.failure.code
        headers = _outcome_headers(ctx, record) if ctx else {"x-request-id": record.request_id}
        return error_response(exc.failure, headers)
    finally:
        elapsed = max(0.0, shared.clock.now() - started)
        record.latency_ms = round(elapsed * 1000.0, 3)
        if ctx is not None:
            record.attempts = ctx.attempts
            shared.metrics.child(shared.metrics.request_seconds, ctx.agent.agent.id).observe(elapsed)
            shared.metrics.child(
                shared.metrics.requests, ctx.agent.agent.id, record.provider or "none", str(record.status)
            ).inc()
        record.emit()
        state.leave()


async def _context(request: web.Request, record: AccessRecord) -> RequestContext:
    state = request.app[STATE]
    runtime = state.runtime
    if state.draining:
        raise ClientError(503, "the sidecar is shutting down", code="draining", error_type="server_error")
    body = check_chat_body(await read_json(request, runtime.table.settings.max_body_bytes))
    agent = runtime.agents.get(body["model"])
    if agent is None:
        raise ClientError(
            404,
            f"The model '{body['model']}' does not exist: it names no agent of this sidecar",
            code="model_not_found",
            param="model",
        )
    record.agent = agent.agent.id
    prepared = agent.policy.prepare(body)
    record.stream = prepared.stream
    shared = state.shared
    if prepared.removed_tools:
        shared.metrics.child(shared.metrics.tools_removed, agent.agent.id).inc(len(prepared.removed_tools))
    return RequestContext(
        agent=agent,
        prepared=prepared,
        inbound=request.headers,
        clock=shared.clock,
        rng=shared.rng,
        metrics=shared.metrics,
        deadline=Deadline(shared.clock, agent.agent.request_timeout_ms),
        started=shared.clock.now(),
    )


async def _stream(request: web.Request, ctx: RequestContext, record: AccessRecord) -> web.StreamResponse:
    opened = await open_stream(ctx)
    record.provider = opened.cluster.cluster.provider
    metrics = ctx.metrics
    response = web.StreamResponse(
        status=200,
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            **_outcome_headers(ctx, record),
        },
    )
    record.status = 200
    try:
        await response.prepare(request)
        await response.write(b"".join(encode_data(p) for p in opened.first))
        metrics.child(metrics.ttft_seconds, ctx.agent.agent.id).observe(
            max(0.0, ctx.clock.now() - ctx.started)
        )
        failure = await _relay(response, ctx, opened)
        if failure is None:
            await response.write(DONE)
            opened.permit.success()
        else:
            record.error_code = failure.code
            await response.write(encode_data(error_payload(failure)))
        await response.write_eof()
    except (ConnectionResetError, asyncio.CancelledError):
        opened.permit.release()
        record.error_code = "client_disconnected"
        raise
    finally:
        await opened.exits.aclose()
        usage = opened.translator.usage
        if usage is not None:
            record.prompt_tokens, record.completion_tokens = usage.prompt_tokens, usage.completion_tokens
        metrics.count_usage(ctx.agent.agent.id, record.provider or "none", usage)
    return response


async def _relay(response: web.StreamResponse, ctx: RequestContext, opened: OpenStream) -> Failure | None:
    """Relays the rest of the stream; returns the failure that ended it early, if any."""
    try:
        async with asyncio.timeout(max(0.001, ctx.deadline.remaining())):
            async for data in opened.chunks:
                payloads = opened.translator.feed(data)
                if payloads:
                    await response.write(b"".join(encode_data(p) for p in payloads))
            tail = opened.translator.finish()
            if tail:
                await response.write(b"".join(encode_data(p) for p in tail))
    except UpstreamError as exc:
        _report_stream_failure(opened, exc.failure)
        return exc.failure
    except TimeoutError:
        failure = DeadlineExceededError(ctx.deadline.timeout_ms).failure
        opened.permit.failure()
        return failure
    return None


def _report_stream_failure(opened: OpenStream, failure: Failure) -> None:
    if failure.breaker_counts:
        opened.permit.failure()
    else:
        opened.permit.release()
