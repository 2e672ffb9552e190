"""The table JSON of the fleet settings: an agent's `quotas` and `settings.state` with their
defaults resolved (absent when not configured, so tables without them keep their hash)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from astra_sidecar.compiler.table import Json

_LIMIT_KEYS = ("requests", "inputTokens", "outputTokens", "concurrentStreams", "budget")


def _limits(body: Mapping[str, Any]) -> Json:
    return {key: body[key] for key in _LIMIT_KEYS if key in body}


def default_store(settings: Mapping[str, Any]) -> str:
    """Counters are shared through Redis when the config names one, else kept in-process."""
    return "redis" if (settings.get("state") or {}).get("redis") else "local"


def quotas_json(quotas: Mapping[str, Any] | None, settings: Mapping[str, Any]) -> Json:
    if not quotas:
        return {}
    body: Json = {
        "limits": _limits(quotas),
        "store": quotas.get("store", default_store(settings)),
        "onStateUnavailable": quotas.get("onStateUnavailable", "allow"),
        "keyBy": dict(quotas["keyBy"]) if quotas.get("keyBy") else None,
    }
    if quotas.get("perKey"):
        body["perKey"] = {key: _limits(limits) for key, limits in sorted(quotas["perKey"].items())}
    return {"quotas": body}


def state_json(state: Mapping[str, Any] | None) -> Json:
    redis = (state or {}).get("redis")
    if not redis:
        return {}
    return {
        "state": {
            "redis": {
                "url": redis.get("url"),
                "urlEnv": redis.get("urlEnv"),
                "keyPrefix": redis.get("keyPrefix", "astra"),
                "timeoutMs": redis.get("timeoutMs", 50),
            }
        }
    }
