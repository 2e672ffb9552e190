"""Checks on a schema-valid config that JSON Schema cannot express, before any table is built.

Agent ids (AST201), provider ids and aliases (AST202, AST008), endpoints a provider needs (AST203),
options that do not apply to a provider (AST217), token limits (AST209: maxOutputTokens against the
model's and each written fallback's maxContextTokens), tool lists (AST211) and
systemPrompt templates (AST212, AST213), reasoning defaults (AST230-AST237, `reasoning_checks`).
Checks that need the resolved clusters and plans live in
`build` (fallback chains, cluster conflicts) and `tablecheck` (capabilities, temperature, latency,
environment).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from astra_sidecar.compiler.config import AgentConfig, Config, Target
from astra_sidecar.compiler.diagnostics import Diagnostic, suggestion
from astra_sidecar.compiler.embedding_checks import check_embeddings
from astra_sidecar.compiler.fleet_checks import check_fleet
from astra_sidecar.compiler.limits_check import check_limits
from astra_sidecar.compiler.pool_checks import check_pools, pool_endpoints
from astra_sidecar.compiler.prompts import check_template
from astra_sidecar.compiler.providers import PROVIDERS, ProviderSpec, canonical_provider, known_provider_names
from astra_sidecar.compiler.reasoning_checks import check_reasoning
from astra_sidecar.compiler.yamlpos import Path


def _unknown_provider(name: str) -> str:
    return f"unknown provider '{name}'{suggestion(name, known_provider_names())}"


def _inapplicable(spec: ProviderSpec, options: Mapping[str, Any], vertex: bool) -> Iterator[tuple[str, str]]:
    """(key, reason) for each option in `options` that provider `spec` cannot use."""
    if "region" in options and spec.wire != "bedrock":
        yield "region", f"region applies only to provider 'bedrock', not '{spec.id}'"
    if "vertex" in options and spec.wire != "gemini":
        yield "vertex", f"vertex applies only to provider 'gemini', not '{spec.id}'"
    if "mock" in options and spec.wire != "mock":
        yield "mock", f"mock options apply only to provider 'mock', not '{spec.id}'"
    if "endpoint" in options and spec.wire == "mock":
        yield "endpoint", "provider 'mock' answers locally; endpoint does not apply"
    if "apiKeyEnv" in options and spec.api_key_env is None:
        yield "apiKeyEnv", f"provider '{spec.id}' takes no API key; apiKeyEnv does not apply"
    if options.get("credentials") == "passthrough" and (spec.api_key_env is None or vertex):
        yield "credentials", f"provider '{spec.id}' does not use an API key here; passthrough does not apply"


def _agent_ids(config: Config) -> Iterator[Diagnostic]:
    doc, first_seen = config.doc, dict[str, AgentConfig]()
    for agent in config.agents:
        written = agent.body.get("id")
        if isinstance(agent.path[-1], str) and written is not None and written != agent.id:
            pos = doc.value_pos((*agent.path, "id"))
            yield doc.diag(pos, "AST201", f"id '{written}' differs from the agent's key '{agent.id}'")
        elif agent.id in first_seen:
            line = first_seen[agent.id].name_pos.line
            yield doc.diag(
                agent.name_pos, "AST201", f"duplicate agent id '{agent.id}' (first defined at line {line})"
            )
        first_seen.setdefault(agent.id, agent)


def _provider_section(config: Config) -> Iterator[Diagnostic]:
    doc, seen = config.doc, dict[str, str]()
    for key, options in config.providers.items():
        path: Path = ("providers", key)
        provider = canonical_provider(key)
        if provider is None:
            yield doc.diag(doc.key_pos(path), "AST202", _unknown_provider(key))
            continue
        if provider in seen:
            line = doc.key_pos(("providers", seen[provider])).line
            yield doc.diag(
                doc.key_pos(path),
                "AST008",
                f"duplicate key '{key}': same provider as '{seen[provider]}' (line {line})",
            )
            continue
        seen[provider] = key
        for option, reason in _inapplicable(PROVIDERS[provider], options, vertex="vertex" in options):
            yield doc.diag(doc.key_pos((*path, option)), "AST217", reason)


def _target(config: Config, target: Target) -> Iterator[Diagnostic]:
    doc = config.doc
    provider = canonical_provider(target.provider)
    if provider is None:
        yield doc.diag(doc.value_pos(target.provider_path), "AST202", _unknown_provider(target.provider))
        return
    spec, shared = PROVIDERS[provider], config.provider_settings(provider)
    if spec.endpoint_required and not (target.endpoint or shared.get("endpoint") or pool_endpoints(target)):
        message = f"provider '{provider}' needs an endpoint: set endpoint here or in providers.{provider}"
        yield doc.diag(doc.value_pos(target.provider_path), "AST203", message)
    vertex = target.vertex is not None or "vertex" in shared
    for option, reason in _inapplicable(spec, target.options, vertex=vertex):
        yield doc.diag(doc.key_pos((*target.path, option)), "AST217", reason)


def _token_limits(config: Config, agent: AgentConfig) -> Iterator[Diagnostic]:
    model = agent.model
    output, context = model.get("maxOutputTokens"), model.get("maxContextTokens")
    if output is None:
        return
    if context is not None and output > context:
        pos = config.doc.value_pos((*agent.path, "model", "maxOutputTokens"))
        yield config.doc.diag(
            pos, "AST209", f"maxOutputTokens {output} is larger than maxContextTokens {context}"
        )
    for number, target in enumerate(agent.fallbacks, 1):
        window = target.options.get("maxContextTokens") if isinstance(target, Target) else None
        if window is not None and output > window:
            pos = config.doc.value_pos((*target.path, "maxContextTokens"))
            message = (
                f"maxOutputTokens {output} is larger than fallback {number}'s maxContextTokens {window}: "
                "no answer would fit its window"
            )
            yield config.doc.diag(pos, "AST209", message)


def _tool_lists(config: Config, agent: AgentConfig) -> Iterator[Diagnostic]:
    tools = agent.body.get("tools", {})
    allow, deny = tools.get("allow") or [], tools.get("deny") or []
    for index, name in enumerate(deny):
        if name in allow:
            allowed_at = config.doc.value_pos((*agent.path, "tools", "allow", allow.index(name)))
            pos = config.doc.value_pos((*agent.path, "tools", "deny", index))
            message = f"tool '{name}' is both allowed (line {allowed_at.line}) and denied"
            yield config.doc.diag(pos, "AST211", message)


def _system_prompt(config: Config, agent: AgentConfig) -> Iterator[Diagnostic]:
    source = agent.body.get("systemPrompt")
    if source is None:
        return
    path: Path = (*agent.path, "systemPrompt")
    for problem in check_template(source, agent.body.get("promptVars", {})):
        pos = config.doc.text_pos(path, problem.line, problem.col)
        yield config.doc.diag(pos, problem.code, problem.message)


def check_config(config: Config) -> list[Diagnostic]:
    """Every document-level semantic problem, in no particular order."""
    found = [*_agent_ids(config), *_provider_section(config), *check_limits(config), *check_fleet(config)]
    found.extend(check_embeddings(config))
    found += check_pools(config)
    for agent in config.agents:
        for target in (agent.primary, *agent.fallbacks):
            if isinstance(target, Target):
                found.extend(_target(config, target))
        found.extend(_token_limits(config, agent))
        found.extend(_tool_lists(config, agent))
        found.extend(_system_prompt(config, agent))
        found.extend(check_reasoning(config, agent))
    return found
