"""Checks of `quotas` and `settings.state` that the schema cannot express (AST260-AST279).

AST260 quotas on Redis without `onStateUnavailable` (what happens when Redis is down is a choice);
AST261 `store: redis` without `settings.state.redis`; AST262 Redis configured but redis-py missing
(install astra-sidecar[redis]); AST263 `settings.state.redis` names neither or both of url/urlEnv;
AST264 a password in `url` (credentials belong in the environment: urlEnv); AST265 `perKey`
limits that can never apply (no `keyBy`, or `keyBy: {inboundToken: true}`, whose keys are
secrets); AST266 `quotas` that limit nothing.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from astra_sidecar.compiler.config import AgentConfig, Config
from astra_sidecar.compiler.diagnostics import Diagnostic
from astra_sidecar.compiler.fleet_table import default_store
from astra_sidecar.compiler.table import RoutingTable
from astra_sidecar.compiler.yamlpos import Path

_LIMITS = ("requests", "inputTokens", "outputTokens", "concurrentStreams", "budget")
_REDIS: Path = ("settings", "state", "redis")


def redis_client_installed() -> bool:
    return importlib.util.find_spec("redis") is not None


def _redis_state(config: Config) -> Iterator[Diagnostic]:
    redis = (config.settings.get("state") or {}).get("redis")
    if redis is None:
        return
    doc = config.doc
    if ("url" in redis) == ("urlEnv" in redis):
        yield doc.diag(
            doc.key_pos(_REDIS), "AST263", "settings.state.redis needs exactly one of url or urlEnv"
        )
    url = redis.get("url")
    if isinstance(url, str) and urlsplit(url).password:
        yield doc.diag(
            doc.value_pos((*_REDIS, "url")),
            "AST264",
            "the Redis URL carries a password: put the URL in a variable and name it in urlEnv",
        )
    if not redis_client_installed():
        yield doc.diag(
            doc.key_pos(_REDIS), "AST262", "settings.state.redis needs redis-py: install astra-sidecar[redis]"
        )


def _quotas(config: Config, agent: AgentConfig) -> Iterator[Diagnostic]:
    quotas: Mapping[str, Any] | None = agent.body.get("quotas")
    if quotas is None:
        return
    doc, path = config.doc, (*agent.path, "quotas")
    if not any(key in quotas for key in _LIMITS):
        yield doc.diag(doc.key_pos(path), "AST266", f"quotas of agent '{agent.id}' set no limit")
    store = quotas.get("store", default_store(config.settings))
    has_redis = bool((config.settings.get("state") or {}).get("redis"))
    if store == "redis" and not has_redis:
        yield doc.diag(
            doc.value_pos((*path, "store")),
            "AST261",
            "store: redis needs settings.state.redis (url or urlEnv)",
        )
    if store == "redis" and "onStateUnavailable" not in quotas:
        yield doc.diag(
            doc.key_pos(path),
            "AST260",
            f"quotas of agent '{agent.id}' are kept in Redis but onStateUnavailable is not set "
            "(allow or deny when Redis cannot be reached; default allow)",
        )
    key_by = quotas.get("keyBy") or {}
    if quotas.get("perKey") and not key_by.get("header"):
        reason = "keyBy names no header" if not key_by else "inbound tokens are secrets, not config keys"
        yield doc.diag(doc.key_pos((*path, "perKey")), "AST265", f"perKey can never apply: {reason}")


def check_fleet(config: Config) -> list[Diagnostic]:
    found = list(_redis_state(config))
    for agent in config.agents:
        found.extend(_quotas(config, agent))
    return found


def fleet_variables(table: RoutingTable) -> Iterator[tuple[str, Path, str]]:
    """(variable, YAML path, why) of the Redis URL, for `--check-env` (AST215)."""
    redis = table.settings.redis
    if redis is not None and redis.url_env:
        yield redis.url_env, (*_REDIS, "urlEnv"), "URL of the shared Redis"
