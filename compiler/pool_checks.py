"""Checks of pools and shared breakers that the schema cannot express (AST267-AST272).

AST267 a member of weight 0 (never chosen); AST268 two members with the same endpoint and API key
variable (one deployment counted twice); AST269 a pool of one member (warning: nothing to
balance); AST270 weights under `least-in-flight`, which ignores them (warning); AST271 two
members with one `id` (metrics and `x-astra-pool-member` could not tell them apart); AST272
`circuitBreaker.shared` without `settings.state.redis`. Missing member key variables are AST215
under `--check-env` (`astra_sidecar.compiler.tablecheck`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from astra_sidecar.compiler.config import AgentConfig, Config, Target
from astra_sidecar.compiler.diagnostics import Diagnostic
from astra_sidecar.compiler.pool_table import MemberSpec, members_of
from astra_sidecar.compiler.providers import PROVIDERS, canonical_provider
from astra_sidecar.compiler.yamlpos import Path


def _identity(config: Config, target: Target, member: MemberSpec) -> tuple[str, str]:
    """(endpoint, key variable) a member resolves to, as written (trailing slashes aside)."""
    provider = canonical_provider(target.provider)
    shared = config.provider_settings(provider) if provider else {}
    endpoint = member.endpoint or target.endpoint or shared.get("endpoint") or ""
    default_env = PROVIDERS[provider].api_key_env if provider else None
    env = member.api_key_env or shared.get("apiKeyEnv") or default_env or ""
    return endpoint.rstrip("/"), env


def _members(config: Config, target: Target, pool: Mapping[str, Any]) -> Iterator[Diagnostic]:
    doc = config.doc
    members = list(members_of(target.path, pool))
    seen: dict[tuple[str, str], int] = {}
    ids: dict[str, int] = {}
    for number, member in enumerate(members, 1):
        if member.weight == 0:
            yield doc.diag(
                doc.value_pos((*member.path, "weight")),
                "AST267",
                f"pool member '{member.id}' has weight 0 and would never be chosen: remove it",
            )
        identity = _identity(config, target, member)
        if identity in seen:
            yield doc.diag(
                doc.value_pos(member.path),
                "AST268",
                f"pool member {number} ('{member.id}') repeats member {seen[identity]} "
                f"(endpoint {identity[0] or 'default'}, key {identity[1] or 'none'})",
            )
        seen.setdefault(identity, number)
        if member.id in ids:
            yield doc.diag(
                doc.value_pos((*member.path, "id")),
                "AST271",
                f"pool member id '{member.id}' is also member {ids[member.id]}'s",
            )
        ids.setdefault(member.id, number)


def _pool(config: Config, target: Target) -> Iterator[Diagnostic]:
    pool: Mapping[str, Any] | None = target.options.get("pool")
    if pool is None:
        return
    doc, path = config.doc, (*target.path, "pool")
    yield from _members(config, target, pool)
    if len(pool["members"]) == 1:
        yield doc.diag(
            doc.key_pos(path), "AST269", "a pool of one member balances nothing: write it as the entry"
        )
    weighted = [i for i, m in enumerate(pool["members"]) if "weight" in m]
    if pool.get("strategy") == "least-in-flight" and weighted:
        yield doc.diag(
            doc.key_pos((*path, "members", weighted[0], "weight")),
            "AST270",
            "strategy least-in-flight ignores weights (use strategy weighted, or drop them)",
        )


def _at(data: Any, path: Path) -> Any:
    for step in path:
        in_dict = isinstance(data, dict) and step in data
        in_list = isinstance(data, list) and isinstance(step, int) and step < len(data)
        if not (in_dict or in_list):
            return None
        data = data[step]
    return data


def _breaker_paths(config: Config, agent: AgentConfig) -> Iterator[Path]:
    yield ("settings", "circuitBreaker")
    for name in config.providers:
        yield ("providers", name, "circuitBreaker")
    yield (*agent.path, "circuitBreaker")


def _shared_breakers(config: Config) -> Iterator[Diagnostic]:
    if (config.settings.get("state") or {}).get("redis"):
        return
    doc, reported = config.doc, set[Path]()
    for agent in config.agents:
        for path in _breaker_paths(config, agent):
            if path not in reported and _at(doc.data, (*path, "shared")) is True:
                reported.add(path)
                yield doc.diag(
                    doc.value_pos((*path, "shared")),
                    "AST272",
                    "circuitBreaker.shared needs settings.state.redis (url or urlEnv)",
                )


def check_pools(config: Config) -> list[Diagnostic]:
    found = list(_shared_breakers(config))
    for agent in config.agents:
        for target in (agent.primary, *agent.fallbacks):
            if isinstance(target, Target):
                found.extend(_pool(config, target))
    return found


def pool_endpoints(target: Target) -> bool:
    """True when the entry is a pool whose every member names its endpoint (AST203 is then met)."""
    pool: Mapping[str, Any] | None = target.options.get("pool")
    return pool is not None and all(m.get("endpoint") for m in pool["members"])
