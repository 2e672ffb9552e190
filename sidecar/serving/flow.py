"""One request through the sidecar, whatever API it came in on.

read → parse (the codec) → find the agent → fit the plan to the context windows
(`astra_sidecar.sidecar.policy.context`) → per-request policy (`astra_sidecar.sidecar.serving.calls`) → the plan
(`astra_sidecar.sidecar.resilience.plan`) → the answer, or the stream (`astra_sidecar.sidecar.serving.relay`), in the caller's
format. Errors come back in the caller's format too; after the first streamed byte, as a final
in-stream error event. Every request is counted in the metrics and gets exactly one access line.

For agents that refuse some tool, the answer's tool calls go through the agent's
`astra_sidecar.sidecar.policy.tools` guard (plain answers whole, streams chunk by chunk), which is why such
agents never take the native pass-through path.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from astra_sidecar.sidecar.accesslog import AccessRecord
from astra_sidecar.sidecar.app_keys import STATE
from astra_sidecar.sidecar.errors import AstraError, ClientError
from astra_sidecar.sidecar.fleet.quota import Ticket, refusal_headers
from astra_sidecar.sidecar.limits import DEFAULT_LIMITS, Limits
from astra_sidecar.sidecar.policy.context import fit_plan
from astra_sidecar.sidecar.protocols.base import Usage
from astra_sidecar.sidecar.protocols.codec import IngressCall, IngressCodec, RequestSize
from astra_sidecar.sidecar.resilience.attempt import CallShape, whole_answer
from astra_sidecar.sidecar.resilience.plan import Deadline, Outcome, Plan, run_plan
from astra_sidecar.sidecar.serving import admission, off_loop
from astra_sidecar.sidecar.serving.calls import call_shape
from astra_sidecar.sidecar.serving.common import begin_request, end_request, outcome_headers, read_json_sized
from astra_sidecar.sidecar.serving.embeddings import kind_mismatch
from astra_sidecar.sidecar.serving.relay import serve_stream
from astra_sidecar.sidecar.serving.responses import error_response
from astra_sidecar.sidecar.upstream import AttemptTimeouts

if TYPE_CHECKING:  # types only: the runtime imports the protocol registry
    from astra_sidecar.sidecar.runtime import AgentRuntime

_JSON = "application/json"


@dataclass(slots=True)  # built per request: a frozen one costs 4x to build
class Exchange:
    """One parsed request and what the sidecar decided for it before any attempt."""

    codec: IngressCodec
    call: IngressCall
    plan: Plan
    shape: CallShape
    removed_tools: tuple[str, ...]
    started: float
    ticket: Ticket | None = None
    limits: Limits = DEFAULT_LIMITS
    #: A large body: its CPU work, and its release, in `off_loop`'s lane.
    large: bool = False

    @property
    def agent(self) -> AgentRuntime:
        return self.plan.agent

    def timeouts(self) -> AttemptTimeouts:
        t = self.agent.agent.timeouts
        return AttemptTimeouts(
            connect_s=t.connect_ms / 1000.0, idle_s=t.stream_idle_ms / 1000.0, limits=self.limits
        )

    def headers(self, record: AccessRecord, outcome: Outcome[Any] | None) -> dict[str, str]:
        """What the answer's headers say happened."""
        headers = {"x-request-id": record.request_id, "x-astra-agent": self.agent.agent.id}
        headers.update(outcome_headers(outcome))
        if self.removed_tools:
            headers["x-astra-tools-removed"] = ",".join(self.removed_tools)
        if self.ticket is not None:
            headers.update(self.ticket.headers)
        return headers

    def count_usage(self, record: AccessRecord, usage: Usage | None) -> None:
        if usage is None:
            return
        record.prompt_tokens, record.completion_tokens = usage.prompt_tokens, usage.completion_tokens
        self.plan.metrics.count_usage(self.agent.agent.id, record.provider or "none", usage)


async def serve(request: web.Request, codec: IngressCodec) -> web.StreamResponse:
    record, started = begin_request(request, codec.name)
    exchange: Exchange | None = None
    try:
        exchange = await _exchange(request, codec, record)
        if exchange.call.stream:
            return await serve_stream(request, exchange, record)
        return await _whole(exchange, record)
    except AstraError as exc:
        record.status, record.error_code = exc.failure.status, exc.failure.code
        headers = {"x-request-id": record.request_id, **refusal_headers(exc)}
        return error_response(codec, exc.failure, headers)
    finally:
        if exchange is None:
            end_request(request, record, started, None, None)
        else:
            end_request(request, record, started, exchange.agent.agent.id, exchange.ticket)
            if exchange.large:
                off_loop.release([exchange])
                exchange = None


async def _exchange(request: web.Request, codec: IngressCodec, record: AccessRecord) -> Exchange:
    state = request.app[STATE]
    runtime = state.runtime
    if state.draining:
        raise ClientError(503, "the sidecar is shutting down", code="draining", error_type="server_error")
    raw, size_read = await read_json_sized(request, runtime.table.settings.max_body_bytes)
    large = size_read > off_loop.LARGE_BODY_BYTES
    parse = functools.partial(codec.parse, raw, request.match_info, request.query, request.headers)
    call = await off_loop.run(parse) if large else parse()
    agent = runtime.agents.get(call.agent_id)
    if agent is None:
        raise ClientError(
            404,
            f"The model '{call.agent_id}' does not exist: it names no agent of this sidecar",
            code="model_not_found",
            param="model",
        )
    record.agent = agent.agent.id
    if agent.agent.kind != "chat":
        raise kind_mismatch(agent.agent.id, agent.agent.kind)
    record.stream = call.stream
    admission.admit(request, record)
    size = await off_loop.run(functools.partial(codec.size, call)) if large else codec.size(call)
    ticket = await state.shared.quotas.admit(agent.agent, request.headers, size, call.stream)
    shaped = functools.partial(_shaped, codec, call, agent, size, large)
    fitted, shape, removed = await off_loop.run(shaped) if large else shaped()
    shared = state.shared
    if removed:
        shared.metrics.tools_removed.labels(agent.agent.id).inc(len(removed))
    deadline = Deadline(shared.clock, agent.agent.request_timeout_ms)
    plan = Plan(agent=fitted, deadline=deadline, clock=shared.clock, rng=shared.rng, metrics=shared.metrics)
    return Exchange(codec, call, plan, shape, removed, shared.clock.now(), ticket, runtime.limits, large)


def _shaped(
    codec: IngressCodec, call: IngressCall, agent: AgentRuntime, size: RequestSize, large: bool
) -> tuple[AgentRuntime, CallShape, tuple[str, ...]]:
    """The agent with the plan that fits the request, the call's shape and the tools removed."""
    fitted = fit_plan(agent, size)
    shape, removed = call_shape(codec, call, fitted, large=large)
    return fitted, shape, removed


async def _whole(exchange: Exchange, record: AccessRecord) -> web.Response:
    attempt = functools.partial(whole_answer, exchange.shape, timeouts=exchange.timeouts())
    outcome = await run_plan(exchange.plan, attempt)
    record.attempts = outcome.attempts
    headers = exchange.headers(record, outcome)
    try:
        completion, native = outcome.result()
        record.status = 200
        record.provider = outcome.served_by.cluster.provider if outcome.served_by else None
        exchange.count_usage(record, completion.usage)
        body = completion.body
        if not native:
            body = exchange.codec.completion_from_openai(_guarded(exchange, record, body), exchange.call)
    except AstraError as exc:
        record.status, record.error_code = exc.failure.status, exc.failure.code
        return error_response(exchange.codec, exc.failure, headers)
    return web.Response(body=body, content_type=_JSON, headers=headers)


def _guarded(exchange: Exchange, record: AccessRecord, body: bytes) -> bytes:
    """A whole OpenAI answer after the agent's tool guard (as it is when the agent has none)."""
    guard = exchange.agent.policy.tool_guard
    if guard is None:
        return body
    return guard.completion(body, guard.reporter(exchange.plan.metrics, record.request_id))
