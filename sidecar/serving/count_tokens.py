"""Counting a request's input tokens with the provider's own count API, for the count routes of the
Anthropic and Gemini ingress APIs (`protocols/anthropic/ingress_count.py`,
`protocols/gemini/ingress_count.py`).

A count goes to the agent's primary cluster once: no retry and no fallback (it is a side call,
and a fallback's tokenizer would count another model), within the agent's request timeout. Its
failure is that upstream's error, answered in the caller's shape like any other.

Providers with a count API, each a `TokenCounter` in its protocol folder that turns the request
the cluster would get into its count request:

| wire | count API |
|---|---|
| anthropic | `POST /v1/messages/count_tokens` → `input_tokens` |
| gemini | `models/{model}:countTokens` (AI Studio and Vertex AI) → `totalTokens` |
| bedrock | `POST /model/{modelId}/count-tokens` (`CountTokens`, Converse input) → `inputTokens` |

Other providers have none: the caller gets the sidecar's own estimate (`policy/context.py`, the
one the context-window check uses).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from astra_sidecar.compiler.table import Cluster
from astra_sidecar.sidecar.errors import ClientError, DeadlineExceededError
from astra_sidecar.sidecar.protocols import registry
from astra_sidecar.sidecar.protocols.base import AuthMaterial, Body, UpstreamRequest
from astra_sidecar.sidecar.protocols.openai.policy_access import ACCESS as OPENAI_ACCESS
from astra_sidecar.sidecar.protocols.openai.validate import check_chat_body
from astra_sidecar.sidecar.resilience.attempt import upstream_failure
from astra_sidecar.sidecar.serving.embeddings import kind_mismatch
from astra_sidecar.sidecar.upstream import AttemptTimeouts

if TYPE_CHECKING:  # types only: the runtime imports the protocol registry
    from astra_sidecar.sidecar.runtime import AgentRuntime, ClusterRuntime, Runtime


class TokenCounter(Protocol):
    def request(self, cluster: Cluster, built: UpstreamRequest, auth: AuthMaterial) -> UpstreamRequest:
        """The count request for the request `built` for this cluster (same auth, count URL)."""
        ...

    def tokens(self, cluster: Cluster, raw: bytes) -> int:
        """The input tokens of a count answer; `UpstreamMalformedError` when it has none."""
        ...


#: Wire format → its count API, imported with the adapter (`registry.load_cluster`).
COUNTERS: Mapping[str, TokenCounter] = registry.COUNTERS


def chat_agent(runtime: Runtime, agent_id: str) -> AgentRuntime:
    """The agent a count request names: 404 when unknown, 400 when it is no chat agent."""
    agent = runtime.agents.get(agent_id)
    if agent is None:
        raise ClientError(404, f"no agent '{agent_id}' on this sidecar", code="model_not_found")
    if agent.agent.kind != "chat":
        raise kind_mismatch(agent_id, agent.agent.kind)
    return agent


async def send_count(agent: AgentRuntime, cluster: ClusterRuntime, request: UpstreamRequest) -> bytes:
    """One count request to `cluster`; the answer's bytes, or its upstream error."""
    t = agent.agent.timeouts
    timeouts = AttemptTimeouts(connect_s=t.connect_ms / 1000.0, idle_s=t.stream_idle_ms / 1000.0)
    try:
        async with asyncio.timeout(agent.agent.request_timeout_ms / 1000.0):
            async with cluster.transport.open(cluster.cluster, request, timeouts) as response:
                if response.status >= 300:
                    raise await upstream_failure(cluster, response, request)
                return await response.read()
    except TimeoutError as exc:
        raise DeadlineExceededError(agent.agent.request_timeout_ms) from exc


async def native_count(agent: AgentRuntime, request: UpstreamRequest, auth: AuthMaterial) -> bytes:
    """The primary cluster's count answer for a native request already built for it."""
    cluster = agent.plan[0]
    counter = COUNTERS[cluster.cluster.wire]
    return await send_count(agent, cluster, counter.request(cluster.cluster, request, auth))


async def translated_count(
    agent: AgentRuntime, openai_body: Body, inbound: Mapping[str, str] | None = None
) -> int | None:
    """The primary cluster's count for an OpenAI chat body (the agent's policy applied, then the
    cluster's adapter, as an attempt would be built); None when its provider has no count API."""
    cluster = agent.plan[0]
    counter = COUNTERS.get(cluster.cluster.wire)
    if counter is None:
        return None
    body = dict(openai_body)
    body.pop("stream", None)
    body.pop("stream_options", None)
    prepared = agent.policy.prepare(check_chat_body(body), OPENAI_ACCESS)
    sent = agent.policy.for_cluster(prepared, cluster.cluster, OPENAI_ACCESS)
    auth = await cluster.credentials.material(inbound or {})
    built = cluster.adapter.build_request(cluster.cluster, agent.agent, sent, auth)
    raw = await send_count(agent, cluster, counter.request(cluster.cluster, built, auth))
    return counter.tokens(cluster.cluster, raw)
