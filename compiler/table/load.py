"""The routing table's JSON form: the canonical bytes its hash is taken over, the on-disk text,
the loader that freezes a (schema-checked) document into `astra_sidecar.compiler.table.model` dataclasses, and
`TableLoadError`, what a table loader raises when a file gives no table.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from astra_sidecar.compiler.table.fleet import quota_from, redis_state_from
from astra_sidecar.compiler.table.model import (
    Agent,
    BaseUrlRule,
    BreakerPolicy,
    Cluster,
    Credentials,
    EmbeddingRules,
    Json,
    Listen,
    MockBehavior,
    MockToolCall,
    PlanLimits,
    PromptCache,
    Reasoning,
    RequestRules,
    ResponsesStore,
    RetryPolicy,
    RoutingTable,
    Settings,
    Timeouts,
    ToolPolicy,
    VertexTarget,
)
from astra_sidecar.compiler.table.pool import pools_from


class TableLoadError(Exception):
    """A file could not be turned into a routing table. `reasons` says why, one line each (the
    compiler's `file:line:col: severity CODE message`); the sidecar logs them and keeps serving
    what it had. `astra_sidecar.compiler.loader.CompileError` is one."""

    def __init__(self, reasons: Sequence[str], message: str | None = None) -> None:
        self.reasons = tuple(reasons)
        super().__init__(message if message is not None else "; ".join(self.reasons))


def _frozen_map(value: Mapping[str, Any] | None) -> MappingProxyType[str, Any]:
    return MappingProxyType(dict(value or {}))


def canonical_json(data: Json) -> bytes:
    """The bytes the content hash is taken over: sorted keys, no whitespace."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def content_hash(data: Json) -> str:
    body = {k: v for k, v in data.items() if k != "hash"}
    return "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()


def dump_table_json(data: Json) -> str:
    """Deterministic on-disk form: sorted keys, two-space indent, trailing newline."""
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _retry_from(d: Json) -> RetryPolicy:
    return RetryPolicy(
        max_retries=d["maxRetries"],
        base_delay_ms=d["baseDelayMs"],
        max_delay_ms=d["maxDelayMs"],
        jitter=d["jitter"],
        retry_on=tuple(d["retryOn"]),
        retry_network_errors=d["retryNetworkErrors"],
        max_retry_after_ms=d["maxRetryAfterMs"],
    )


def _breaker_from(d: Json) -> BreakerPolicy:
    return BreakerPolicy(
        failure_threshold=d["failureThreshold"],
        window_ms=d["windowMs"],
        cooldown_ms=d["cooldownMs"],
        success_threshold=d["successThreshold"],
    )


def _mock_from(d: Json | None) -> MockBehavior | None:
    if d is None:
        return None
    return MockBehavior(
        reply=d.get("reply"),
        latency_ms=d["latencyMs"],
        chunk_delay_ms=d["chunkDelayMs"],
        status=d.get("status"),
        fail_rate=d["failRate"],
        retry_after_ms=d.get("retryAfterMs"),
        cut_after_chunks=d.get("cutAfterChunks"),
        seed=d["seed"],
        tool_calls=tuple(MockToolCall(c["name"], c["arguments"]) for c in d.get("toolCalls", ())),
    )


def _credentials_from(d: Json) -> Credentials:
    return Credentials(
        mode=d["mode"], env=d.get("env"), required=d["required"], keyless_token=d.get("keylessToken")
    )


def _base_url_rule_from(d: Json | None) -> BaseUrlRule:
    if d is None:
        return BaseUrlRule()
    return BaseUrlRule(strip_suffix=d["stripSuffix"], default_path=d["defaultPath"])


def _cluster_from(key: str, d: Json) -> Cluster:
    rules = d["rules"]
    vertex = d.get("vertex")
    return Cluster(
        key=key,
        provider=d["provider"],
        wire=d["wire"],
        model_id=d["modelId"],
        base_url=d["baseUrl"],
        base_url_env=d.get("baseUrlEnv"),
        auth=d["auth"],
        credentials=_credentials_from(d["credentials"]),
        headers=_frozen_map(d["headers"]),
        breaker=_breaker_from(d["breaker"]),
        rules=RequestRules(
            drop_params=tuple(rules["dropParams"]),
            rename_params=_frozen_map(rules["renameParams"]),
            drop_message_keys=tuple(rules["dropMessageKeys"]),
            developer_as_system=rules["developerAsSystem"],
            max_choices=rules.get("maxChoices"),
            temperature_max=rules["temperatureMax"],
        ),
        streaming=d["streaming"],
        tools=d["tools"],
        region=d.get("region"),
        vertex=VertexTarget(vertex["project"], vertex["location"], vertex.get("credentialsFile"))
        if vertex
        else None,
        mock=_mock_from(d.get("mock")),
        base_url_rule=_base_url_rule_from(d.get("baseUrlRule")),
        shared_breaker=bool(d["breaker"].get("shared", False)),
        embedding=_embedding_from(d.get("embedding")),
    )


def _embedding_from(d: Json | None) -> EmbeddingRules | None:
    if d is None:
        return None
    return EmbeddingRules(
        format=d["format"],
        token_input=d["tokenInput"],
        drop_params=tuple(d["dropParams"]),
        rename_params=_frozen_map(d["renameParams"]),
    )


def _reasoning_from(d: Json | None) -> Reasoning | None:
    if d is None:
        return None
    return Reasoning(effort=d.get("effort"), budget_tokens=d.get("budgetTokens"), expose=d.get("expose", True))


def _agent_from(agent_id: str, d: Json) -> Agent:
    tools = d["tools"]
    timeouts = d["timeouts"]
    cache = d["promptCache"]
    return Agent(
        id=agent_id,
        display_name=d.get("displayName"),
        tier=d.get("tier"),
        plan=tuple(d["plan"]),
        max_context_tokens=d.get("maxContextTokens"),
        max_output_tokens=d.get("maxOutputTokens"),
        temperature=d.get("temperature"),
        system_prompt=d.get("systemPrompt"),
        tools=ToolPolicy(
            allow=tuple(tools["allow"]) if tools.get("allow") is not None else None,
            deny=tuple(tools["deny"]),
        ),
        retry=_retry_from(d["retry"]),
        timeouts=Timeouts(
            connect_ms=timeouts["connectMs"],
            attempt_ms=timeouts["attemptMs"],
            stream_idle_ms=timeouts["streamIdleMs"],
        ),
        request_timeout_ms=d["requestTimeoutMs"],
        prompt_cache=PromptCache(system_prompt=cache["systemPrompt"], tools=cache["tools"]),
        prompt_vars=_frozen_map(d.get("promptVars")),
        plan_limits=tuple(PlanLimits(limit.get("maxContextTokens")) for limit in d.get("planLimits", ())),
        quota=quota_from(d.get("quotas")),
        pools=pools_from(d.get("pools")),
        kind=d.get("kind", "chat"),
        reasoning=_reasoning_from(d.get("reasoning")),
    )


def _settings_from(d: Json) -> Settings:
    return Settings(
        listen=Listen(host=d["listen"]["host"], port=d["listen"]["port"]),
        drain_grace_ms=d["drainGraceMs"],
        max_body_bytes=d["maxBodyBytes"],
        inbound_token_env=d.get("inboundTokenEnv"),
        redis=redis_state_from(d.get("state")),
        limits=MappingProxyType(dict(d.get("limits", {}))),
        protect_metrics=bool(d.get("protectMetrics", False)),
        responses_store=_responses_store_from(d.get("responses")),
    )


def _responses_store_from(d: Json | None) -> ResponsesStore:
    store = (d or {}).get("store")
    if not store:
        return ResponsesStore()
    return ResponsesStore(max_entries=store["maxEntries"], max_bytes=store["maxBytes"], ttl_ms=store["ttlMs"])


def table_from_json(data: Json) -> RoutingTable:
    """Freeze a routing-table document (already validated against its schema)."""
    return RoutingTable(
        schema_version=data["schemaVersion"],
        source_sha256=data["sourceSha256"],
        hash=data["hash"],
        settings=_settings_from(data["settings"]),
        clusters=MappingProxyType({k: _cluster_from(k, v) for k, v in sorted(data["clusters"].items())}),
        agents=MappingProxyType({k: _agent_from(k, v) for k, v in data["agents"].items()}),
    )
