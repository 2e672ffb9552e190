"""Prometheus metrics, one registry per app (so several apps in one process never collide).

Names (all prefixed `astra_`):
  requests_total{agent,provider,status}           requests answered, by the provider that served
  request_duration_seconds{agent}                 whole request, retries and fallbacks included
  upstream_duration_seconds{provider}             one upstream attempt, to its answer or first chunk
  time_to_first_token_seconds{agent}              streams: request start to first chunk sent
  upstream_attempts_total{agent,provider,outcome} every attempt (ok, error, network, malformed, breaker_open)
  retries_total{agent,provider}                   attempts repeated on the same cluster
  fallbacks_total{agent,provider}                 moves to the next cluster in the plan
  breaker_state{cluster,provider}                 0 closed, 1 half-open, 2 open
  breaker_transitions_total{cluster,provider,to}
  tokens_total{agent,provider,kind}               prompt / completion / cached
  tools_removed_total{agent}                      request tools dropped by the agent's policy
  tool_calls_blocked_total{agent,tool}            answer tool calls blocked by the agent's policy
  table_info{hash,schema_version}                 1 for the table being served
  reloads_total{result}                           ok / failed / unchanged
  in_flight_requests
  admission_refused_total{reason}                 503 over_capacity (maxInFlight): sidecar / agent
  client_stalls_total{agent}                      streams cut: the client accepted no bytes for clientStallMs

No label value is chosen by a client: agents are the table's (an unknown model is answered 404
before any metric), providers and statuses the sidecar's, and tool names (which a model may
invent) fold into `other` past the first `FOLD_AFTER` distinct label sets.

With `astra serve --workers N` one scrape shows the totals of all workers, and the breaker and
table families carry a `worker` label (`astra_sidecar.sidecar.metric_workers`).
"""

from __future__ import annotations

from typing import TypeVar

from prometheus_client import CollectorRegistry, generate_latest

from astra_sidecar.sidecar.fleet.metrics import FleetMetrics
from astra_sidecar.sidecar.metric_families import Counter, CounterChild, Families, Gauge, Histogram
from astra_sidecar.sidecar.metric_workers import WorkerMetrics
from astra_sidecar.sidecar.protocols.base import Usage
from astra_sidecar.sidecar.resilience.breaker import CLOSED, HALF_OPEN, OPEN

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_BREAKER_VALUE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}

F = TypeVar("F", Counter, Gauge, Histogram)

#: Distinct label sets a folded family keeps before new ones fold into `other`.
FOLD_AFTER = 256
OTHER = "other"


class FoldedCounter(Counter):
    """A counter whose last label becomes `other` once `FOLD_AFTER` label sets exist."""

    def labels(self, *values: str) -> CounterChild:
        if values not in self.children and len(self.children) >= FOLD_AFTER:
            values = (*values[:-1], OTHER)
        return super().labels(*values)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.workers: WorkerMetrics | None = None
        self._families = Families()
        self.registry.register(self._families)
        add = self._add
        self.requests = add(Counter("astra_requests", "Requests answered", ["agent", "provider", "status"]))
        self.request_seconds = add(
            Histogram("astra_request_duration_seconds", "Whole request latency", ["agent"], _LATENCY_BUCKETS)
        )
        self.upstream_seconds = add(
            Histogram(
                "astra_upstream_duration_seconds",
                "One upstream attempt, to its answer or first chunk",
                ["provider"],
                _LATENCY_BUCKETS,
            )
        )
        self.ttft_seconds = add(
            Histogram(
                "astra_time_to_first_token_seconds",
                "Streams: time to the first chunk sent",
                ["agent"],
                _LATENCY_BUCKETS,
            )
        )
        self.attempts = add(
            Counter("astra_upstream_attempts", "Upstream attempts", ["agent", "provider", "outcome"])
        )
        self.retries = add(Counter("astra_retries", "Retries on the same cluster", ["agent", "provider"]))
        self.fallbacks = add(Counter("astra_fallbacks", "Moves to a fallback cluster", ["agent", "provider"]))
        self.breaker_state = add(
            Gauge("astra_breaker_state", "0 closed, 1 half-open, 2 open", ["cluster", "provider"])
        )
        self.breaker_transitions = add(
            Counter("astra_breaker_transitions", "Breaker state changes", ["cluster", "provider", "to"])
        )
        self.tokens = add(Counter("astra_tokens", "Tokens by kind", ["agent", "provider", "kind"]))
        self.tools_removed = add(Counter("astra_tools_removed", "Request tools removed by policy", ["agent"]))
        self.tool_calls_blocked = add(
            FoldedCounter("astra_tool_calls_blocked", "Answer tool calls blocked by policy", ["agent", "tool"])
        )
        self.table_info = add(Gauge("astra_table_info", "The table being served", ["hash", "schema_version"]))
        self.reloads = add(Counter("astra_reloads", "Table reloads", ["result"]))
        self.in_flight = add(Gauge("astra_in_flight_requests", "Requests being served"))
        self.admission_refused = add(
            Counter("astra_admission_refused", "Requests refused over maxInFlight", ["reason"])
        )
        self.client_stalls = add(
            Counter("astra_client_stalls", "Streams cut: the client accepted no bytes for clientStallMs", ["agent"])
        )
        self.fleet = FleetMetrics(self._families.add)  # quotas and shared state: astra_sidecar.sidecar.fleet.metrics

    def _add(self, family: F) -> F:
        self._families.add(family)
        return family

    def breaker_changed(self, cluster: str, provider: str, new_state: str) -> None:
        self.breaker_state.labels(cluster, provider).set(_BREAKER_VALUE[new_state])
        self.breaker_transitions.labels(cluster, provider, new_state).inc()

    def count_usage(self, agent: str, provider: str, usage: Usage | None) -> None:
        if usage is None:
            return
        self.tokens.labels(agent, provider, "prompt").inc(usage.prompt_tokens)
        self.tokens.labels(agent, provider, "completion").inc(usage.completion_tokens)
        if usage.cached_tokens:
            self.tokens.labels(agent, provider, "cached").inc(usage.cached_tokens)

    def serving(self, table_hash: str, schema_version: int) -> None:
        self.table_info.clear()
        self.table_info.labels(table_hash, str(schema_version)).set(1)

    def share_with(self, directory: str, worker: int) -> WorkerMetrics:
        """`--workers N`: scrapes show every worker's totals (`astra_sidecar.sidecar.metric_workers`)."""
        self.workers = WorkerMetrics(self._families, directory, worker)
        return self.workers

    def render(self) -> bytes:
        if self.workers is not None:
            return self.workers.render()
        return generate_latest(self.registry)
