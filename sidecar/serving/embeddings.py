"""One embeddings request, whatever API it came in on (`EmbeddingFront`).

read → parse (the front) → the agent (an embedding agent, else a 400 naming its kind) → the plan
entries that can take the call (token arrays and extra OpenAI fields go to OpenAI-wire clusters
that take them; the others are left out, and a 400 when none is left) → admission, quotas,
context windows → the plan (`astra_sidecar.sidecar.resilience.plan`: breaker, retries, fallbacks and the
deadline, exactly as chat) → the answer in the caller's shape. One attempt at a cluster may be
several upstream calls (Titan embeds one input per call); any failed call fails the attempt.
Every request is counted in the metrics and gets one access line, as in `serving/flow.py`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from aiohttp import web

from astra_sidecar.sidecar.accesslog import AccessRecord
from astra_sidecar.sidecar.app_keys import STATE
from astra_sidecar.sidecar.errors import AstraError, ClientError
from astra_sidecar.sidecar.fleet.quota import Ticket, refusal_headers
from astra_sidecar.sidecar.policy.context import fit_plan
from astra_sidecar.sidecar.protocols import registry
from astra_sidecar.sidecar.protocols.base import Usage
from astra_sidecar.sidecar.protocols.codec import RequestSize
from astra_sidecar.sidecar.protocols.embedding import (
    Embedder,
    EmbeddingCall,
    EmbeddingFront,
    Embeddings,
    UpstreamAnswer,
    bad_input,
)
from astra_sidecar.sidecar.protocols.openai.embeddings import KNOWN_FIELDS
from astra_sidecar.sidecar.resilience.attempt import upstream_failure
from astra_sidecar.sidecar.resilience.breaker import Permit
from astra_sidecar.sidecar.resilience.plan import Deadline, Outcome, Plan, run_plan
from astra_sidecar.sidecar.serving import admission
from astra_sidecar.sidecar.serving.common import begin_request, end_request, outcome_headers, read_json
from astra_sidecar.sidecar.upstream import AttemptTimeouts

if TYPE_CHECKING:  # types only: the runtime imports the protocol registry
    from astra_sidecar.sidecar.runtime import AgentRuntime, ClusterRuntime

EMBEDDING_KIND = "embedding"

#: Set on the answers of this flow, which writes their access line itself (`sidecar/app.py`).
OWN_ACCESS_LINE = web.ResponseKey("astra.own_access_line", bool)


def kind_mismatch(agent_id: str, kind: str) -> ClientError:
    """The 400 for a call the agent's kind does not serve (chat on an embedding agent, or the reverse)."""
    if kind == EMBEDDING_KIND:
        message = (
            f"agent '{agent_id}' is an embedding agent: it serves embeddings (POST /v1/embeddings), not chat"
        )
    else:
        message = f"agent '{agent_id}' is a {kind} agent: it does not serve embeddings"
    return ClientError(400, message, code="wrong_agent_kind", param="model")


def _embedder(cluster: ClusterRuntime) -> Embedder:
    rules = cluster.cluster.embedding
    embedder = registry.EMBEDDERS.get(rules.format) if rules is not None else None
    if embedder is None:  # the compiler gives every cluster of an embedding agent its rules
        raise ClientError(500, f"cluster {cluster.cluster.key} has no embeddings API", code="internal_error")
    return embedder


def _refusal(cluster: ClusterRuntime, call: EmbeddingCall) -> ClientError | None:
    """Why `cluster` cannot take `call` (token arrays, extra OpenAI fields), or None."""
    rules = cluster.cluster.embedding
    provider = cluster.cluster.provider
    if rules is not None and call.has_tokens and not rules.token_input:
        return bad_input(
            f"token arrays as input are not accepted by {provider}, nor by this agent's fallbacks"
        )
    extra = sorted(set(call.native or ()) - KNOWN_FIELDS)
    if rules is not None and extra and rules.format != "openai":
        message = f"'{extra[0]}' cannot be sent to {provider}, nor to this agent's fallbacks"
        return bad_input(message, extra[0], code="unsupported_parameter")
    return None


def capable_plan(agent: AgentRuntime, call: EmbeddingCall) -> AgentRuntime:
    """The plan without the entries that cannot take this call (as context windows leave out the
    entries a request does not fit); the primary's refusal when none can."""
    refusals = [_refusal(cluster, call) for cluster in agent.plan]
    able = tuple(cluster for cluster, refusal in zip(agent.plan, refusals, strict=True) if refusal is None)
    if not able and refusals[0] is not None:
        raise refusals[0]
    return agent if len(able) == len(agent.plan) else replace(agent, plan=able)


def _size(call: EmbeddingCall) -> RequestSize:
    """The longest input: each input must fit the model's window on its own."""
    longest = max(call.inputs, key=len)
    return RequestSize(conversation=[longest if isinstance(longest, str) else " " * (4 * len(longest))])


def _fitted(agent: AgentRuntime, size: RequestSize) -> AgentRuntime:
    try:
        return fit_plan(agent, size)
    except ClientError as exc:
        raise ClientError(
            400, exc.failure.message.replace("messages", "input"), code=exc.failure.code, param="input"
        ) from exc


async def _attempt(call: EmbeddingCall, cluster: ClusterRuntime, timeouts: AttemptTimeouts) -> Embeddings:
    embedder = _embedder(cluster)
    auth = await cluster.credentials.material(call.inbound)
    answers = []
    for upstream in embedder.requests(cluster.cluster, call, auth):
        async with cluster.transport.open(cluster.cluster, upstream, timeouts) as response:
            if response.status >= 300:
                raise await upstream_failure(cluster, response, upstream)
            answers.append(UpstreamAnswer(await response.read(), response.headers))
    return embedder.parse(cluster.cluster, call, answers)


class _Served:
    """What one request decided and what its answer's headers say."""

    def __init__(self, record: AccessRecord) -> None:
        self.record = record
        self.agent: AgentRuntime | None = None
        self.ticket: Ticket | None = None
        self.outcome: Outcome[Embeddings] | None = None

    def headers(self) -> dict[str, str]:
        headers = {"x-request-id": self.record.request_id}
        if self.agent is not None:
            headers["x-astra-agent"] = self.agent.agent.id
            headers.update(outcome_headers(self.outcome))
        if self.ticket is not None:
            headers.update(self.ticket.headers)
        return headers


async def serve_embeddings(request: web.Request, front: EmbeddingFront) -> web.Response:
    record, started = begin_request(request, f"{front.name}-embeddings")
    served = _Served(record)
    try:
        result, call = await _serve(request, front, served)
        record.status = 200
        response = web.Response(
            body=front.answer(result, call), content_type="application/json", headers=served.headers()
        )
    except AstraError as exc:
        record.status, record.error_code = exc.failure.status, exc.failure.code
        body = front.error_body(exc.failure)
        headers = {**served.headers(), **refusal_headers(exc)}
        response = web.Response(
            status=exc.failure.status, body=body, content_type="application/json", headers=headers
        )
    finally:
        end_request(request, record, started, served.agent.agent.id if served.agent else None, served.ticket)
    response[OWN_ACCESS_LINE] = True
    return response


async def _serve(
    request: web.Request, front: EmbeddingFront, served: _Served
) -> tuple[Embeddings, EmbeddingCall]:
    state = request.app[STATE]
    runtime, shared, record = state.runtime, state.shared, served.record
    if state.draining:
        raise ClientError(503, "the sidecar is shutting down", code="draining", error_type="server_error")
    raw = await read_json(request, runtime.table.settings.max_body_bytes)
    call = front.parse(raw, request.match_info, request.query, request.headers)
    agent = runtime.agents.get(call.agent_id)
    if agent is None:
        message = f"The model '{call.agent_id}' does not exist: it names no agent of this sidecar"
        raise ClientError(404, message, code="model_not_found", param="model")
    record.agent = agent.agent.id
    served.agent = agent
    if agent.agent.kind != EMBEDDING_KIND:
        raise kind_mismatch(agent.agent.id, agent.agent.kind)
    agent = capable_plan(agent, call)
    admission.admit(request, record)
    size = _size(call)
    served.ticket = await shared.quotas.admit(agent.agent, request.headers, size, False)
    agent = _fitted(agent, size)
    timeouts_ms = agent.agent.timeouts
    timeouts = AttemptTimeouts(
        timeouts_ms.connect_ms / 1000.0, timeouts_ms.stream_idle_ms / 1000.0, runtime.limits
    )
    plan = Plan(
        agent=agent, deadline=Deadline(shared.clock, agent.agent.request_timeout_ms),
        clock=shared.clock, rng=shared.rng, metrics=shared.metrics,
    )  # fmt: skip

    async def attempt(cluster: ClusterRuntime, permit: Permit) -> Embeddings:
        result = await _attempt(call, cluster, timeouts)
        permit.success()
        return result

    served.outcome = outcome = await run_plan(plan, attempt)
    record.attempts = outcome.attempts
    result = outcome.result()
    provider = outcome.served_by.cluster.provider if outcome.served_by else "none"
    record.provider, record.prompt_tokens, record.completion_tokens = provider, result.prompt_tokens, 0
    shared.metrics.count_usage(agent.agent.id, provider, Usage(prompt_tokens=result.prompt_tokens))
    return result, call
