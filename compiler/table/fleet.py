"""The fleet part of the routing table: an agent's quotas and where their counters live.

`quotas` in astra.yml compiles to `QuotaPolicy` (limits for the agent, optionally per caller key);
`settings.state.redis` to `RedisState`. The sidecar's `astra_sidecar.sidecar.fleet` enforces them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

Json = dict[str, Any]
BudgetPeriod = Literal["day", "month"]
OnUnavailable = Literal["allow", "deny"]
Store = Literal["local", "redis"]


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `limit` units (requests or tokens) per `window_ms`, replenished evenly (GCRA)."""

    limit: int
    window_ms: int


@dataclass(frozen=True, slots=True)
class Budget:
    """At most `tokens` (input + output) per calendar day or month (UTC)."""

    tokens: int
    period: BudgetPeriod


@dataclass(frozen=True, slots=True)
class QuotaLimits:
    requests: Rate | None = None
    input_tokens: Rate | None = None
    output_tokens: Rate | None = None
    concurrent_streams: int | None = None
    budget: Budget | None = None


@dataclass(frozen=True, slots=True)
class KeyBy:
    """Which caller attribute splits the quota: a header's value, or the inbound bearer token."""

    header: str | None = None
    inbound_token: bool = False


@dataclass(frozen=True, slots=True)
class QuotaPolicy:
    limits: QuotaLimits
    store: Store = "local"
    on_state_unavailable: OnUnavailable = "allow"
    key_by: KeyBy | None = None
    per_key: MappingProxyType[str, QuotaLimits] = field(default_factory=lambda: MappingProxyType({}))

    def limits_for(self, key: str) -> QuotaLimits:
        return self.per_key.get(key, self.limits)


@dataclass(frozen=True, slots=True)
class RedisState:
    """`url` or the variable that holds it (credentials stay in the environment)."""

    url: str | None
    url_env: str | None
    key_prefix: str = "astra"
    timeout_ms: int = 50


def _rate(d: Json | None) -> Rate | None:
    return Rate(limit=d["limit"], window_ms=d["windowMs"]) if d else None


def limits_from(d: Json) -> QuotaLimits:
    budget = d.get("budget")
    return QuotaLimits(
        requests=_rate(d.get("requests")),
        input_tokens=_rate(d.get("inputTokens")),
        output_tokens=_rate(d.get("outputTokens")),
        concurrent_streams=d.get("concurrentStreams"),
        budget=Budget(tokens=budget["tokens"], period=budget["period"]) if budget else None,
    )


def quota_from(d: Json | None) -> QuotaPolicy | None:
    if not d:
        return None
    key_by = d.get("keyBy")
    return QuotaPolicy(
        limits=limits_from(d["limits"]),
        store=d["store"],
        on_state_unavailable=d["onStateUnavailable"],
        key_by=KeyBy(header=key_by.get("header"), inbound_token=bool(key_by.get("inboundToken")))
        if key_by
        else None,
        per_key=MappingProxyType({k: limits_from(v) for k, v in sorted(d.get("perKey", {}).items())}),
    )


def redis_state_from(d: Json | None) -> RedisState | None:
    redis = (d or {}).get("redis")
    if not redis:
        return None
    return RedisState(
        url=redis.get("url"),
        url_env=redis.get("urlEnv"),
        key_prefix=redis["keyPrefix"],
        timeout_ms=redis["timeoutMs"],
    )
