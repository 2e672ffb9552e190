"""Checks on the built, frozen table: what each plan's clusters can do, and what they need.

Fallback capabilities (AST208), temperature against each cluster's maximum (AST210), worst-case
latency against the deadline (AST214) and, with --check-env, credential variables (AST215).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from astra_sidecar.compiler.build import Origins
from astra_sidecar.compiler.diagnostics import Diagnostic
from astra_sidecar.compiler.fleet_checks import fleet_variables
from astra_sidecar.compiler.table import Agent, Cluster, RoutingTable
from astra_sidecar.compiler.table.retry import attempt_budget, unreachable_from
from astra_sidecar.compiler.yamlpos import Path, YamlDocument


def _needs(agent: Agent, primary: Cluster) -> dict[str, bool]:
    allow = agent.tools.allow
    return {"tools": bool(allow) or (allow is None and primary.tools), "streaming": primary.streaming}


def _capabilities(
    doc: YamlDocument, table: RoutingTable, agent: Agent, origins: Origins
) -> Iterator[Diagnostic]:
    plan = table.cluster_plan(agent)
    needs = _needs(agent, plan[0])
    for number, (cluster, entry) in enumerate(zip(plan[1:], origins.plans[agent.id][1:], strict=True), 1):
        missing = [name for name, needed in needs.items() if needed and not getattr(cluster, name)]
        if missing:
            message = (
                f"fallback {number} ({cluster.key}) lacks {' and '.join(missing)}, which agent "
                f"'{agent.id}' may need"
            )
            yield doc.diag(doc.value_pos(entry.path), "AST208", message)


def _temperature(
    doc: YamlDocument, table: RoutingTable, agent: Agent, origins: Origins
) -> Iterator[Diagnostic]:
    if agent.temperature is None:
        return
    pos = doc.value_pos((*origins.agents[agent.id].path, "model", "temperature"))
    for number, cluster in enumerate(table.cluster_plan(agent)):
        limit = cluster.rules.temperature_max
        if agent.temperature > limit:
            role = "the primary" if number == 0 else f"fallback {number}"
            message = (
                f"temperature {agent.temperature} is above {limit}, the maximum of provider "
                f"'{cluster.provider}' ({role}: {cluster.key})"
            )
            yield doc.diag(pos, "AST210", message)


def _latency(doc: YamlDocument, agent: Agent, origins: Origins) -> Iterator[Diagnostic]:
    budget = attempt_budget(agent.retry, agent.timeouts)
    index = unreachable_from(len(agent.plan), budget, agent.request_timeout_ms)
    if index is None:
        return
    message = (
        f"worst case, each plan entry takes {budget.total_ms} ms ({budget.tries} tries of "
        f"{budget.attempt_ms} ms attemptMs + {budget.backoff_ms} ms backoff), so fallback {index} "
        f"({agent.plan[index]}) starts after {index * budget.total_ms} ms, past requestTimeoutMs "
        f"{agent.request_timeout_ms}: later fallbacks may never be reached"
    )
    yield doc.diag(origins.agents[agent.id].name_pos, "AST214", message)


#: Variables that stand in for another one (the AWS SDKs read either region variable).
_ALTERNATIVES: Mapping[str, tuple[str, ...]] = {"AWS_REGION": ("AWS_DEFAULT_REGION",)}


def _required_variables(table: RoutingTable, origins: Origins) -> Iterator[tuple[str, Path, str]]:
    """(variable, YAML path, why) for each credential variable, in file order."""
    token = table.settings.inbound_token_env
    if token:
        yield token, ("settings", "inboundAuth", "tokenEnv"), "inbound bearer token"
    yield from fleet_variables(table)
    for key, path in origins.clusters.items():
        cluster = table.clusters[key]
        credentials = cluster.credentials
        if credentials.mode == "env" and credentials.required and credentials.env:
            yield credentials.env, origins.key_paths.get(key, (*path, "provider")), f"API key of {key}"
        if credentials.mode == "aws" and not cluster.region and not cluster.base_url:
            yield (
                "AWS_REGION",
                (*path, "provider"),
                f"bedrock model {cluster.model_id} has no region configured",
            )


def check_env(
    doc: YamlDocument, table: RoutingTable, origins: Origins, env: Mapping[str, str]
) -> Iterator[Diagnostic]:
    """AST215 once per variable that is unset or empty in `env`."""
    seen: set[str] = set()
    for name, path, why in _required_variables(table, origins):
        if name not in seen and not any(env.get(n) for n in (name, *_ALTERNATIVES.get(name, ()))):
            seen.add(name)
            yield doc.diag(doc.value_pos(path), "AST215", f"environment variable {name} is not set ({why})")


def check_table(doc: YamlDocument, table: RoutingTable, origins: Origins) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for agent in table.agents.values():
        found.extend(_capabilities(doc, table, agent, origins))
        found.extend(_temperature(doc, table, agent, origins))
        found.extend(_latency(doc, agent, origins))
    return found
