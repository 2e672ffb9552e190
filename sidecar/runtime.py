"""Everything the request path needs for one routing table, built once per load or reload.

A `Runtime` is immutable once built and is swapped as a single reference on reload, so a request
holds the runtime it started with until it ends. Mutable state that must outlive a reload lives
in `SharedState`: circuit breakers (kept when the cluster and its policy are unchanged) and the
transports with their connection pools.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from astra_sidecar.compiler.table import Agent, Cluster, Credentials, RoutingTable
from astra_sidecar.sidecar.accesslog import AccessSink, LoggingSink
from astra_sidecar.sidecar.auth import CredentialSource
from astra_sidecar.sidecar.auth.sources import (
    EnvKeySource,
    NoAuthSource,
    PassthroughSource,
)
from astra_sidecar.sidecar.clock import Clock
from astra_sidecar.sidecar.fleet.breaker_store import SharedBreakers
from astra_sidecar.sidecar.fleet.quota import QuotaGate
from astra_sidecar.sidecar.limits import DEFAULT_LIMITS, Limits, limits_from
from astra_sidecar.sidecar.metrics import Metrics
from astra_sidecar.sidecar.policy.agent import AgentPolicy
from astra_sidecar.sidecar.protocols import registry
from astra_sidecar.sidecar.protocols.base import Adapter
from astra_sidecar.sidecar.protocols.mock.transport import MockTransport
from astra_sidecar.sidecar.protocols.openai.models import models_body
from astra_sidecar.sidecar.resilience.breaker import ClusterBreaker
from astra_sidecar.sidecar.resilience.pool import PoolMemberRuntime, PoolRuntime, entry_label, no_in_flight
from astra_sidecar.sidecar.upstream import HttpTransport, Transport

log = logging.getLogger("astra.sidecar")

CredentialFactory = Callable[[Cluster, Mapping[str, str], Clock], CredentialSource]


@dataclass(frozen=True, slots=True)
class ClusterRuntime:
    cluster: Cluster
    adapter: Adapter
    transport: Transport
    credentials: CredentialSource
    breaker: ClusterBreaker


@dataclass(frozen=True, slots=True)
class AgentRuntime:
    agent: Agent
    policy: AgentPolicy
    plan: tuple[ClusterRuntime, ...]
    #: Plan entries that are pools, by plan key (`astra_sidecar.sidecar.resilience.pool`).
    pools: MappingProxyType[str, PoolRuntime] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class Runtime:
    table: RoutingTable
    agents: MappingProxyType[str, AgentRuntime]
    clusters: MappingProxyType[str, ClusterRuntime]
    models_body: bytes
    limits: Limits = DEFAULT_LIMITS


class SharedState:
    """State that survives reloads: breakers, transports, the clock and the random source."""

    def __init__(
        self,
        *,
        metrics: Metrics,
        clock: Clock,
        env: Mapping[str, str] | None = None,
        rng: random.Random | None = None,
        credential_factory: CredentialFactory | None = None,
        access_sink: AccessSink | None = None,
    ) -> None:
        self.metrics = metrics
        self.clock = clock
        self.env: Mapping[str, str] = env if env is not None else os.environ
        self.rng = rng or random.Random()
        self.credential_factory = credential_factory or default_credentials
        self.access_sink: AccessSink = access_sink or LoggingSink()
        self.breakers: dict[str, ClusterBreaker] = {}
        self.http = HttpTransport()
        self.mock = MockTransport(clock)
        self.quotas = QuotaGate(metrics.fleet, clock, self.env)
        self.shared_breakers = SharedBreakers(metrics.fleet, self.env)

    def transport_for(self, cluster: Cluster) -> Transport:
        return self.mock if cluster.wire == "mock" else self.http

    def breaker_for(self, cluster: Cluster) -> ClusterBreaker:
        breaker = self.breakers.get(cluster.key)
        store = self.shared_breakers if cluster.shared_breaker and self.shared_breakers.active else None
        if breaker is None or breaker.policy != cluster.breaker or breaker.store is not store:
            on_change = self._on_breaker(cluster)
            breaker = ClusterBreaker(cluster.key, cluster.breaker, self.clock, on_change, store)
            self.breakers[cluster.key] = breaker
            self.metrics.breaker_state.labels(cluster.key, cluster.provider).set(0)
        return breaker

    def _on_breaker(self, cluster: Cluster) -> Callable[[str, str], None]:
        def changed(old: str, new: str) -> None:
            log.warning(
                "circuit breaker %s → %s",
                old,
                new,
                extra={"cluster": cluster.key, "provider": cluster.provider},
            )
            self.metrics.breaker_changed(cluster.key, cluster.provider, new)

        return changed

    async def forget_except(self, keep: set[str]) -> None:
        for key in [k for k in self.breakers if k not in keep]:
            del self.breakers[key]
        await self.http.retire_except(keep)
        await self.mock.retire_except(keep)

    async def close(self) -> None:
        await self.quotas.close()
        await self.shared_breakers.close()
        self.access_sink.flush()
        await self.http.close()
        await self.mock.close()


def default_credentials(cluster: Cluster, env: Mapping[str, str], clock: Clock) -> CredentialSource:
    """The credential source for a cluster's mode; provider SDK helpers are imported on first use."""
    mode = cluster.credentials.mode
    if mode == "passthrough":
        return PassthroughSource(cluster)
    if mode == "none":
        return NoAuthSource()
    if mode == "env":
        return EnvKeySource(cluster, env)
    if mode == "aws":
        from astra_sidecar.sidecar.auth.aws import AwsCredentialSource

        return AwsCredentialSource(cluster, env)
    if mode == "google":
        from astra_sidecar.sidecar.auth.google import GoogleCredentialSource, require_google_auth

        require_google_auth(cluster.key)  # VertexExtraMissing: a start-up (or reload) error
        credentials_file = cluster.vertex.credentials_file if cluster.vertex else None
        return GoogleCredentialSource(credentials_file, clock=clock)
    raise ValueError(f"unknown credential mode {mode!r}")


def _resolve_gemini(cluster: Cluster, env: Mapping[str, str]) -> Cluster:
    from astra_sidecar.sidecar.auth.google import vertex_target

    target = vertex_target(cluster, env)
    if target is None or target == cluster.vertex:
        return cluster
    return replace(cluster, vertex=target, credentials=Credentials(mode="google", env=None, required=False))


def _resolve_bedrock(cluster: Cluster, env: Mapping[str, str]) -> Cluster:
    from astra_sidecar.sidecar.auth.aws import resolve_cluster as resolve_aws

    return resolve_aws(cluster, env)


#: Start-time resolution that depends on the environment, per wire format.
_RESOLVERS: Mapping[str, Callable[[Cluster, Mapping[str, str]], Cluster]] = MappingProxyType(
    {"gemini": _resolve_gemini, "bedrock": _resolve_bedrock}
)


def resolve_cluster(cluster: Cluster, env: Mapping[str, str]) -> Cluster:
    """What the table leaves to start time: base-URL variables (OLLAMA_BASE_URL), the Vertex AI
    switch for Gemini, the AWS region for Bedrock."""
    if cluster.base_url_env and env.get(cluster.base_url_env):
        base = cluster.env_base_url(env[cluster.base_url_env])
        cluster = replace(cluster, base_url=base)
    resolver = _RESOLVERS.get(cluster.wire)
    return resolver(cluster, env) if resolver else cluster


def build_runtime(table: RoutingTable, shared: SharedState) -> Runtime:
    shared.quotas.configure(table)
    shared.shared_breakers.configure(table)
    clusters: dict[str, ClusterRuntime] = {}
    for key, cluster in table.clusters.items():
        resolved = resolve_cluster(cluster, shared.env)
        credentials = shared.credential_factory(resolved, shared.env, shared.clock)
        missing = getattr(credentials, "missing", None)
        if missing:
            log.warning(
                "no credentials for %s: %s is not set", cluster.provider, missing, extra={"cluster": key}
            )
        clusters[key] = ClusterRuntime(
            cluster=resolved,
            adapter=registry.load_cluster(resolved),
            transport=shared.transport_for(cluster),
            credentials=credentials,
            breaker=shared.breaker_for(cluster),
        )
    agents = {
        agent_id: AgentRuntime(
            agent, AgentPolicy(agent), tuple(clusters[k] for k in agent.plan), _pools(agent, clusters, shared)
        )
        for agent_id, agent in table.agents.items()
    }
    return Runtime(
        table=table,
        agents=MappingProxyType(agents),
        clusters=MappingProxyType(clusters),
        models_body=_models_body(agents),
        limits=limits_from(table.settings.limits),
    )


def _pools(
    agent: Agent, clusters: Mapping[str, ClusterRuntime], shared: SharedState
) -> MappingProxyType[str, PoolRuntime]:
    pools = {}
    for key, pool in agent.pools.items():
        members = tuple(PoolMemberRuntime(m.id, clusters[m.cluster], m.weight) for m in pool.members)
        in_flight = shared.http.in_flight if members[0].cluster.transport is shared.http else no_in_flight
        label = entry_label(agent.plan.index(key))
        pools[key] = PoolRuntime(agent.id, label, pool.strategy, members, in_flight, shared.metrics.fleet)
    return MappingProxyType(pools)


def _models_body(agents: Mapping[str, AgentRuntime]) -> bytes:
    return models_body(agents)
