"""The fleet's Prometheus families (registered on the app's `Metrics`).

quota_checks_total{agent,result}                 admitted / refused / budget_exhausted / unavailable_allowed / unavailable_denied
quota_usage_total{agent,kind}                    units charged: requests, input_tokens, output_tokens
quota_state_errors_total{op}                     Redis calls that failed (admit, settle)
quota_state_seconds{op}                          Redis call latency
quota_state_available                            1 while the shared state answers, 0 while it does not
background_failures_total{task}                  lost background writes: quota_settle, response_store
pool_selections_total{agent,pool,member}         attempts sent to each pool member (pool: primary, fallback1, …)
pool_skips_total{agent,pool,member,reason}       members passed over: breaker_open
breaker_state_errors_total{op}                   shared-breaker calls to Redis that failed (read, record)
breaker_state_available                          1 while the shared breaker state answers, 0 on the local fallback
"""

from __future__ import annotations

from collections.abc import Callable

from astra_sidecar.sidecar.metric_families import Counter, Gauge, Histogram

_REDIS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)


class FleetMetrics:
    def __init__(self, register: Callable[[Counter | Gauge | Histogram], object]) -> None:
        self.checks = Counter("astra_quota_checks", "Quota decisions", ["agent", "result"])
        self.usage = Counter("astra_quota_usage", "Units charged to quotas", ["agent", "kind"])
        self.state_errors = Counter("astra_quota_state_errors", "Shared-state calls that failed", ["op"])
        self.state_seconds = Histogram(
            "astra_quota_state_seconds", "Shared-state call latency", ["op"], _REDIS_BUCKETS
        )
        self.state_available = Gauge("astra_quota_state_available", "1 while the shared state answers")
        self.background_failures = Counter(
            "astra_background_failures", "Background tasks that failed", ["task"]
        )
        self.pool_selections = Counter(
            "astra_pool_selections", "Attempts sent to a pool member", ["agent", "pool", "member"]
        )
        self.pool_skips = Counter(
            "astra_pool_skips", "Pool members passed over", ["agent", "pool", "member", "reason"]
        )
        self.breaker_state_errors = Counter(
            "astra_breaker_state_errors", "Shared-breaker calls that failed", ["op"]
        )
        self.breaker_state_available = Gauge(
            "astra_breaker_state_available", "1 while the shared breaker state answers"
        )
        families = (self.checks, self.usage, self.state_errors, self.state_seconds, self.state_available)
        pools = (
            self.pool_selections,
            self.pool_skips,
            self.breaker_state_errors,
            self.breaker_state_available,
        )
        for family in (*families, self.background_failures, *pools):
            register(family)
