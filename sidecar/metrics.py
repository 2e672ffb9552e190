"""Prometheus metrics, one registry per app (so several apps in one process never collide).

Names (all prefixed `astra_`):
  requests_total{agent,provider,status}           requests answered, by the provider that served
  request_duration_seconds{agent}                 whole request, retries and fallbacks included
  upstream_duration_seconds{provider}             one upstream attempt, to its answer or first chunk
  time_to_first_token_seconds{agent}              streams: request start to first chunk sent
  upstream_attempts_total{agent,provider,outcome} every attempt (ok, error, network, breaker_open)
  retries_total{agent,provider}                   attempts repeated on the same cluster
  fallbacks_total{agent,provider}                 moves to the next cluster in the plan
  breaker_state{cluster,provider}                 0 closed, 1 half-open, 2 open
  breaker_transitions_total{cluster,provider,to}
  tokens_total{agent,provider,kind}               prompt / completion / cached
  tools_removed_total{agent}                      request tools dropped by the agent's policy
  table_info{hash,schema_version}                 1 for the table being served
  reloads_total{result}                           ok / failed
  in_flight_requests
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from sidecar.adapters.base import Usage
from sidecar.breaker import CLOSED, HALF_OPEN, OPEN

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_BREAKER_VALUE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "astra_requests", "Requests answered", ["agent", "provider", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "astra_request_duration_seconds",
            "Whole request latency",
            ["agent"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_seconds = Histogram(
            "astra_upstream_duration_seconds",
            "One upstream attempt, to its answer or first chunk",
            ["provider"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft_seconds = Histogram(
            "astra_time_to_first_token_seconds",
            "Streams: time to the first chunk sent",
            ["agent"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.attempts = Counter(
            "astra_upstream_attempts", "Upstream attempts", ["agent", "provider", "outcome"], registry=r
        )
        self.retries = Counter(
            "astra_retries", "Retries on the same cluster", ["agent", "provider"], registry=r
        )
        self.fallbacks = Counter(
            "astra_fallbacks", "Moves to a fallback cluster", ["agent", "provider"], registry=r
        )
        self.breaker_state = Gauge(
            "astra_breaker_state", "0 closed, 1 half-open, 2 open", ["cluster", "provider"], registry=r
        )
        self.breaker_transitions = Counter(
            "astra_breaker_transitions", "Breaker state changes", ["cluster", "provider", "to"], registry=r
        )
        self.tokens = Counter("astra_tokens", "Tokens by kind", ["agent", "provider", "kind"], registry=r)
        self.tools_removed = Counter(
            "astra_tools_removed", "Request tools removed by policy", ["agent"], registry=r
        )
        self.table_info = Gauge(
            "astra_table_info", "The table being served", ["hash", "schema_version"], registry=r
        )
        self.reloads = Counter("astra_reloads", "Table reloads", ["result"], registry=r)
        self.in_flight = Gauge("astra_in_flight_requests", "Requests being served", registry=r)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, memoised: the hot path skips prometheus_client's lock and checks."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def breaker_changed(self, cluster: str, provider: str, new_state: str) -> None:
        self.breaker_state.labels(cluster, provider).set(_BREAKER_VALUE[new_state])
        self.breaker_transitions.labels(cluster, provider, new_state).inc()

    def count_usage(self, agent: str, provider: str, usage: Usage | None) -> None:
        if usage is None:
            return
        self.child(self.tokens, agent, provider, "prompt").inc(usage.prompt_tokens)
        self.child(self.tokens, agent, provider, "completion").inc(usage.completion_tokens)
        if usage.cached_tokens:
            self.child(self.tokens, agent, provider, "cached").inc(usage.cached_tokens)

    def serving(self, table_hash: str, schema_version: int) -> None:
        self.table_info.clear()
        self.table_info.labels(table_hash, str(schema_version)).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
