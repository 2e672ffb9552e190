"""Freeze a checked config into routing-table JSON: clusters, agent plans, every default resolved.

Clusters are keyed by `table.cluster_key(provider, modelId, baseUrl)` and shared by every agent
that resolves to the same key; the first definition in file order wins, and a later one that
disagrees on cluster-level settings gets AST216. Mock clusters whose options differ get distinct
keys (`mock://local#<hash>`), so fault drills with several mocks need no extra naming, and a
cluster that forwards the caller's key is never shared with one that uses the sidecar's
(`…#passthrough`): their credentials, breakers and connection pools stay apart.

Plans are the primary, then the fallbacks in order. A fallback `{agent: ID}` splices in that
agent's whole plan, skipping clusters already in the plan; cycles (AST206) and unknown agents
(AST207) are errors, as are written entries that repeat the primary (AST204) or an earlier
entry (AST205).

Each plan entry has a context window: a fallback's own `maxContextTokens`, else that of the agent
that lists it (spliced entries keep their own agent's). The agent JSON carries them as
`planLimits` only when some entry's window differs from the agent's `maxContextTokens`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from astra_sidecar.compiler.config import AgentConfig, AgentRef, Config, Target
from astra_sidecar.compiler.diagnostics import Diagnostic, suggestion
from astra_sidecar.compiler.embedding_checks import embedding_json
from astra_sidecar.compiler.fleet_table import quotas_json, state_json
from astra_sidecar.compiler.pool_table import MemberSpec, key_suffix, members_of, pool_json
from astra_sidecar.compiler.providers import (
    PROVIDERS,
    ProviderSpec,
    base_url_rule,
    canonical_provider,
    normalise_base_url,
)
from astra_sidecar.compiler.schemas import schema_defaults
from astra_sidecar.compiler.table import SCHEMA_VERSION, Json, canonical_json, cluster_key, content_hash
from astra_sidecar.compiler.yamlpos import Path

_FLOATS = ("jitter", "failRate")


def _layer(pointer: str, *overrides: Mapping[str, Any] | None) -> Json:
    """Schema defaults at `pointer`, overridden by each mapping in turn (floats kept floats)."""
    merged = schema_defaults(pointer)
    for override in overrides:
        merged.update(override or {})
    return {k: float(v) if k in _FLOATS else v for k, v in merged.items()}


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


# --- clusters -----------------------------------------------------------------------------------


def _mock(options: Mapping[str, Any] | None) -> Json:
    nullable = {"reply": None, "status": None, "retryAfterMs": None, "cutAfterChunks": None}
    mock = {**nullable, **_layer("$defs/mock", options)}
    calls = mock.pop("toolCalls", None)
    if calls:
        mock["toolCalls"] = [_mock_tool_call(call) for call in calls]
    return mock


def _mock_tool_call(call: Mapping[str, Any]) -> Json:
    """{name, arguments}: the arguments mapping becomes the JSON string a tool call carries."""
    arguments = json.dumps(call.get("arguments", {}), ensure_ascii=False, separators=(",", ":"))
    return {"name": call["name"], "arguments": arguments}


def _key_suffix(mock: Json | None) -> str:
    """ "#<hash>" for a mock with non-default options, so each behaviour is its own cluster."""
    if mock is None or mock == _mock(None):
        return ""
    return "#" + hashlib.sha256(canonical_json(mock)).hexdigest()[:8]


def _vertex(vertex: Mapping[str, Any] | None) -> Json | None:
    if vertex is None:
        return None
    return {
        "project": vertex["project"],
        "location": vertex["location"],
        "credentialsFile": vertex.get("credentialsFile"),
    }


def vertex_base_url(location: str) -> str:
    """The Vertex AI host for `location`: global, the us/eu multi-regions, or a regional host."""
    if location == "global":
        return "https://aiplatform.googleapis.com"
    if location in ("us", "eu"):
        return f"https://aiplatform.{location}.rep.googleapis.com"
    return f"https://{location}-aiplatform.googleapis.com"


def _base_url(spec: ProviderSpec, endpoint: str | None, region: str | None, vertex: Json | None) -> str:
    if endpoint:
        return normalise_base_url(spec, endpoint)
    if spec.wire == "bedrock":
        return f"https://bedrock-runtime.{region}.amazonaws.com" if region else ""
    if vertex is not None:
        return vertex_base_url(vertex["location"])
    return spec.default_base_url


def _credentials(spec: ProviderSpec, mode: str, shared: Mapping[str, Any], vertex: Json | None) -> Json:
    if spec.auth == "sigv4":
        return {"mode": "aws", "env": None, "required": False}
    if vertex is not None:
        return {"mode": "google", "env": None, "required": False}
    if spec.auth == "none":
        return {"mode": "none", "env": None, "required": False}
    if mode == "passthrough":
        return {"mode": "passthrough", "env": None, "required": False}
    variable = shared.get("apiKeyEnv") or spec.api_key_env
    from_env: Json = {"mode": "env", "env": variable, "required": spec.key_required}
    if spec.keyless_token and not spec.key_required:
        from_env["keylessToken"] = spec.keyless_token
    return from_env


def _base_url_rule(spec: ProviderSpec, base_url_env: str | None) -> Json:
    """`{"baseUrlRule": …}` for a cluster whose base URL may come from `base_url_env`, else {}."""
    if base_url_env is None:
        return {}
    rule = base_url_rule(spec)
    return {"baseUrlRule": {"stripSuffix": rule.strip_suffix, "defaultPath": rule.default_path}}


def _rules(spec: ProviderSpec) -> Json:
    return {
        "dropParams": list(spec.drop_params),
        "renameParams": dict(spec.rename_params),
        "dropMessageKeys": list(spec.drop_message_keys),
        "developerAsSystem": spec.developer_as_system,
        "maxChoices": spec.max_choices,
        "temperatureMax": float(spec.temperature_max),
    }


def resolve_cluster(
    config: Config, target: Target, agent_breaker: Mapping[str, Any] | None, member: MemberSpec | None = None
) -> tuple[str, Json]:
    """The cluster key and JSON for one written target (its provider is known), or for one member
    of its pool (`astra_sidecar.compiler.pool_table`)."""
    spec = PROVIDERS[canonical_provider(target.provider) or ""]
    shared = config.provider_settings(spec.id)
    entry_env = shared.get("apiKeyEnv") or spec.api_key_env
    member_env = member.api_key_env if member else None
    if member_env:
        shared = {**shared, "apiKeyEnv": member_env}
    endpoint = (member.endpoint if member else None) or target.endpoint or shared.get("endpoint")
    region = (target.region or shared.get("region")) if spec.wire == "bedrock" else None
    vertex = _vertex(target.vertex or shared.get("vertex")) if spec.wire == "gemini" else None
    base_url = _base_url(spec, endpoint, region, vertex)
    mock = _mock(target.mock) if spec.wire == "mock" else None
    breaker = _layer(
        "$defs/circuitBreaker",
        config.settings.get("circuitBreaker"),
        shared.get("circuitBreaker"),
        agent_breaker,
    )
    if not breaker.get("shared"):
        breaker.pop("shared", None)  # written only when true: other tables keep their hash
    mode = target.credentials or shared.get("credentials") or "env"
    base_url_env = None if endpoint else spec.base_url_env
    cluster: Json = {
        "provider": spec.id,
        "wire": spec.wire,
        "modelId": target.model_id,
        "baseUrl": base_url,
        "baseUrlEnv": base_url_env,
        **_base_url_rule(spec, base_url_env),
        "auth": spec.auth,
        "credentials": _credentials(spec, mode, shared, vertex),
        "headers": {**spec.default_headers, **shared.get("headers", {})},
        "breaker": breaker,
        "rules": _rules(spec),
        "streaming": spec.streaming and target.capabilities.get("streaming", True),
        "tools": spec.tools and target.capabilities.get("tools", True),
        "region": region,
        "vertex": vertex,
        "mock": mock,
    }
    suffix = _key_suffix(mock) + ("#passthrough" if cluster["credentials"]["mode"] == "passthrough" else "")
    if cluster["credentials"]["mode"] == "env":
        suffix += key_suffix(member_env, entry_env)
    return cluster_key(spec.id, target.model_id, base_url + suffix), cluster


# --- the build ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlanEntry:
    """One cluster of an agent's plan, the YAML path that put it there, and its context window."""

    key: str
    path: Path
    context_tokens: int | None = None
    #: The entry's pool (`astra_sidecar.compiler.pool_table.pool_json`), when it is one.
    pool: Json | None = None


@dataclass(slots=True)
class Origins:
    """Where table entries came from, so checks after the build can point into the YAML."""

    agents: dict[str, AgentConfig] = field(default_factory=dict)
    clusters: dict[str, Path] = field(default_factory=dict)
    plans: dict[str, list[PlanEntry]] = field(default_factory=dict)
    #: Where a pool member's API key variable is written, by its cluster key (for --check-env).
    key_paths: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BuildResult:
    table: Json
    origins: Origins
    diagnostics: list[Diagnostic]


@dataclass(slots=True)
class _Builder:
    config: Config
    clusters: dict[str, Json] = field(default_factory=dict)
    origins: Origins = field(default_factory=Origins)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    own: dict[str, tuple[PlanEntry, list[PlanEntry | AgentRef]]] = field(default_factory=dict)

    def report(self, path: Path, code: str, message: str) -> None:
        doc = self.config.doc
        self.diagnostics.append(doc.diag(doc.value_pos(path), code, message))

    def add_cluster(self, agent: AgentConfig, target: Target) -> PlanEntry:
        pool = target.options.get("pool")
        if pool is None:
            return PlanEntry(self.add_member(agent, target, None), target.path, _context_tokens(agent, target))
        members = [(m, self.add_member(agent, target, m)) for m in members_of(target.path, pool)]
        return PlanEntry(members[0][1], target.path, _context_tokens(agent, target), pool_json(pool, members))

    def add_member(self, agent: AgentConfig, target: Target, member: MemberSpec | None) -> str:
        key, cluster = resolve_cluster(self.config, target, agent.body.get("circuitBreaker"), member)
        cluster.update(embedding_json(agent, target))
        if member is not None and member.api_key_env:
            self.origins.key_paths.setdefault(key, (*member.path, "apiKeyEnv"))
        first = self.clusters.setdefault(key, cluster)
        self.origins.clusters.setdefault(key, target.path)
        if first is not cluster and first != cluster:
            fields = ", ".join(k for k in {**first, **cluster} if cluster.get(k) != first.get(k))
            line = self.config.doc.value_pos(self.origins.clusters[key]).line
            self.report(
                target.path,
                "AST216",
                f"cluster {key} is also defined at line {line} with different "
                f"{fields}; the first definition is used",
            )
        return key

    def collect(self, agent: AgentConfig) -> None:
        primary = self.add_cluster(agent, agent.primary)
        fallbacks = [f if isinstance(f, AgentRef) else self.add_cluster(agent, f) for f in agent.fallbacks]
        self.own.setdefault(agent.id, (primary, fallbacks))
        self.origins.agents.setdefault(agent.id, agent)

    def _splice(self, plan: list[PlanEntry], ref: AgentRef, stack: list[str]) -> None:
        if ref.agent_id not in self.own:
            message = f"fallback names unknown agent '{ref.agent_id}'{suggestion(ref.agent_id, self.own)}"
            self.report((*ref.path, "agent"), "AST207", message)
        elif ref.agent_id in stack:
            loop = " → ".join([*stack[stack.index(ref.agent_id) :], ref.agent_id])
            self.report((*ref.path, "agent"), "AST206", f"fallback cycle: {loop}")
        else:
            taken = {entry.key for entry in plan}
            plan.extend(
                PlanEntry(e.key, ref.path, e.context_tokens, e.pool)
                for e in self.plan(ref.agent_id, stack)
                if e.key not in taken
            )

    def _append(self, plan: list[PlanEntry], entry: PlanEntry) -> None:
        keys = [e.key for e in plan]
        if entry.key == keys[0]:
            self.report(entry.path, "AST204", f"fallback is the same as the primary ({entry.key})")
        elif entry.key in keys:
            where = self.config.doc.value_pos(plan[keys.index(entry.key)].path).line
            self.report(entry.path, "AST205", f"fallback {entry.key} is already in the plan (line {where})")
        else:
            plan.append(entry)

    def plan(self, agent_id: str, stack: list[str]) -> list[PlanEntry]:
        """The agent's expanded plan (memoised); reports chain problems once."""
        if agent_id in self.origins.plans:
            return self.origins.plans[agent_id]
        stack.append(agent_id)
        primary, fallbacks = self.own[agent_id]
        plan = [primary]
        for entry in fallbacks:
            if isinstance(entry, AgentRef):
                self._splice(plan, entry, stack)
            else:
                self._append(plan, entry)
        stack.pop()
        self.origins.plans[agent_id] = plan
        return plan


def _context_tokens(agent: AgentConfig, target: Target) -> int | None:
    """A target's context window: its own `maxContextTokens`, else its agent's (the primary's)."""
    own = target.options.get("maxContextTokens")
    return own if own is not None else agent.model.get("maxContextTokens")


def _plan_limits(agent: AgentConfig, plan: list[PlanEntry]) -> Json:
    """`{"planLimits": […]}` when some entry's window differs from the agent's, else {}."""
    windows = [entry.context_tokens for entry in plan]
    if all(window == agent.model.get("maxContextTokens") for window in windows):
        return {}
    return {"planLimits": [{"maxContextTokens": window} for window in windows]}


def _pools_json(plan: list[PlanEntry]) -> Json:
    """`{"pools": {plan key: pool}}` when some entry is a pool, else {}."""
    pools = {entry.key: entry.pool for entry in plan if entry.pool is not None}
    return {"pools": pools} if pools else {}


def _agent_json(config: Config, agent: AgentConfig, plan: list[PlanEntry]) -> Json:
    body, model, settings = agent.body, agent.model, config.settings
    tools = body.get("tools", {})
    return {
        **_plan_limits(agent, plan),
        "displayName": body.get("displayName"),
        "tier": body.get("tier"),
        "plan": [entry.key for entry in plan],
        "maxContextTokens": model.get("maxContextTokens"),
        "maxOutputTokens": model.get("maxOutputTokens"),
        "temperature": _optional_float(model.get("temperature")),
        "systemPrompt": body.get("systemPrompt"),
        "promptVars": dict(body.get("promptVars", {})),
        "tools": {"allow": tools.get("allow"), "deny": _layer("$defs/agent/properties/tools", tools)["deny"]},
        "retry": _layer("$defs/retry", settings.get("retry"), body.get("retry")),
        "timeouts": _layer("$defs/timeouts", settings.get("timeouts"), body.get("timeouts")),
        "requestTimeoutMs": body.get("requestTimeoutMs")
        or _layer("$defs/settings", settings)["requestTimeoutMs"],
        "promptCache": _layer("$defs/agent/properties/promptCache", body.get("promptCache")),
        **quotas_json(body.get("quotas"), settings),
        **_pools_json(plan),
        **({"kind": "embedding"} if model.get("kind") == "embedding" else {}),
        **_reasoning_json(model.get("reasoning")),
    }


def _reasoning_json(reasoning: Mapping[str, Any] | None) -> Json:
    """`{"reasoning": …}` when the agent sets a default (absent otherwise, so tables keep their hash)."""
    if not reasoning:
        return {}
    written = {"effort": reasoning.get("effort"), "budgetTokens": reasoning.get("budgetTokens")}
    return {"reasoning": {**written, "expose": reasoning.get("expose", True)}}


def _settings_json(settings: Mapping[str, Any]) -> Json:
    gateway = _layer("$defs/settings", settings)
    return {
        "listen": _layer("$defs/settings/properties/listen", settings.get("listen")),
        "drainGraceMs": gateway["drainGraceMs"],
        "maxBodyBytes": gateway["maxBodyBytes"],
        "inboundTokenEnv": settings.get("inboundAuth", {}).get("tokenEnv"),
        **state_json(settings.get("state")),
        **_limits_json(settings),
    }


def _limits_json(settings: Mapping[str, Any]) -> Json:
    """`limits` (defaults filled) and `protectMetrics`, only when set: other tables keep their hash."""
    out: Json = {}
    if "limits" in settings:
        out["limits"] = _layer("$defs/settings/properties/limits", settings["limits"])
    if settings.get("inboundAuth", {}).get("protectMetrics"):
        out["protectMetrics"] = True
    if "responses" in settings:
        store = _layer("$defs/settings/properties/responses/properties/store", settings["responses"].get("store"))
        out["responses"] = {"store": store}
    return out


def build_table(config: Config, source_sha256: str) -> BuildResult:
    """The routing-table JSON for a config that passed the document checks, with its hash."""
    builder = _Builder(config)
    for agent in config.agents:
        builder.collect(agent)
    agents = {
        agent_id: _agent_json(config, agent, builder.plan(agent_id, []))
        for agent_id, agent in builder.origins.agents.items()
    }
    table: Json = {
        "schemaVersion": SCHEMA_VERSION,
        "sourceSha256": source_sha256,
        "settings": _settings_json(config.settings),
        "clusters": builder.clusters,
        "agents": agents,
    }
    table["hash"] = content_hash(table)
    return BuildResult(table, builder.origins, builder.diagnostics)
