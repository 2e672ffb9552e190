"""The built routing table: defaults, clusters, credentials, plans, hashes."""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from typing import Any

import pytest

from astra_sidecar.compiler.schemas import TABLE_SCHEMA, validator
from astra_sidecar.compiler.table import (
    BreakerPolicy,
    Listen,
    RetryPolicy,
    Settings,
    Timeouts,
    content_hash,
    table_from_json,
)
from tests.compiler.helpers import compile_text

MINIMAL = "agents:\n  - id: a\n    model: {provider: openai, modelId: m}\n"
OPENAI = "openai:m:https://api.openai.com/v1"


def _camel(data: dict[str, Any]) -> dict[str, Any]:
    def camel(name: str) -> str:
        head, *rest = name.split("_")
        return head + "".join(part.capitalize() for part in rest)

    return {camel(k): list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def test_every_default_is_resolved_and_matches_the_table_model() -> None:
    table = compile_text(MINIMAL)
    agent, cluster = table["agents"]["a"], table["clusters"][OPENAI]
    assert agent["retry"] == _camel(asdict(RetryPolicy()))
    assert agent["timeouts"] == _camel(asdict(Timeouts()))
    assert cluster["breaker"] == _camel(asdict(BreakerPolicy()))
    assert table["settings"] == {
        "listen": _camel(asdict(Listen())),
        "drainGraceMs": Settings().drain_grace_ms,
        "maxBodyBytes": Settings().max_body_bytes,
        "inboundTokenEnv": None,
    }
    assert agent == {
        "displayName": None, "tier": None, "plan": [OPENAI], "maxContextTokens": None, "maxOutputTokens": None,
        "temperature": None, "systemPrompt": None, "promptVars": {}, "tools": {"allow": None, "deny": []},
        "retry": agent["retry"], "timeouts": agent["timeouts"], "requestTimeoutMs": 120000,
        "promptCache": {"systemPrompt": False, "tools": False},
    }


def test_openai_cluster_in_full() -> None:
    assert compile_text(MINIMAL)["clusters"][OPENAI] == {
        "provider": "openai", "wire": "openai", "modelId": "m", "baseUrl": "https://api.openai.com/v1",
        "baseUrlEnv": None, "auth": "bearer",
        "credentials": {"mode": "env", "env": "OPENAI_API_KEY", "required": True},
        "headers": {}, "breaker": _camel(asdict(BreakerPolicy())),
        "rules": {"dropParams": [], "renameParams": {}, "dropMessageKeys": [], "developerAsSystem": False,
                  "maxChoices": None, "temperatureMax": 2.0},
        "streaming": True, "tools": True, "region": None, "vertex": None, "mock": None,
    }


def test_table_hashes_and_schema() -> None:
    table = compile_text(MINIMAL)
    assert table["schemaVersion"] == 1
    assert table["sourceSha256"] == hashlib.sha256(MINIMAL.encode()).hexdigest()
    assert table["hash"] == content_hash(table)
    assert list(validator(TABLE_SCHEMA).iter_errors(table)) == []
    assert table_from_json(table).agents["a"].plan == (OPENAI,)


def test_both_agent_forms_give_the_same_routes() -> None:
    as_list = compile_text(
        "agents:\n  - id: a\n    tier: pro\n    model: {provider: claude, modelId: c}\n"
        "  - id: b\n    model: {provider: mock, modelId: e}\n"
    )
    as_map = compile_text(
        "agents:\n  a:\n    tier: pro\n    model: {provider: anthropic, modelId: c}\n"
        "  b:\n    model: {provider: mock, modelId: e}\n"
    )
    for table in (as_list, as_map):
        del table["sourceSha256"], table["hash"]
    assert as_list == as_map


def test_agents_share_clusters() -> None:
    table = compile_text(MINIMAL + "  - id: b\n    model: {provider: openai, modelId: m, temperature: 1}\n")
    assert list(table["clusters"]) == [OPENAI]
    assert table["agents"]["b"]["plan"] == [OPENAI]
    assert table["agents"]["b"]["temperature"] == 1.0


def test_endpoints_are_normalised() -> None:
    table = compile_text(
        "agents:\n"
        "  - id: a\n    model: {provider: ollama, modelId: l, endpoint: 'http://gpu:11434/'}\n"
        "  - id: b\n    model: {provider: claude, modelId: c, endpoint: 'https://proxy.example/v1'}\n"
        "  - id: c\n    model: {provider: ollama, modelId: l}\n"
    )
    ollama_custom = table["clusters"]["ollama:l:http://gpu:11434/v1"]
    assert (ollama_custom["baseUrl"], ollama_custom["baseUrlEnv"]) == ("http://gpu:11434/v1", None)
    assert table["clusters"]["claude:c:https://proxy.example"]["baseUrl"] == "https://proxy.example"
    ollama_default = table["clusters"]["ollama:l:http://localhost:11434/v1"]
    assert (ollama_default["baseUrlEnv"], ollama_default["credentials"]) == (
        "OLLAMA_BASE_URL", {"mode": "none", "env": None, "required": False})
    assert ollama_default["baseUrlRule"] == {"stripSuffix": None, "defaultPath": "/v1"}
    assert "baseUrlRule" not in ollama_custom, "written only where a variable can replace the URL"


@pytest.mark.parametrize(
    "url", ["http://gpu:11434", "http://gpu:11434/", "http://gpu:11434/v1/", "https://proxy.example/ollama/v1"]
)
def test_the_sidecar_normalises_an_env_base_url_as_the_compiler_does_an_endpoint(url: str) -> None:
    default = table_from_json(compile_text("agents:\n  a: {model: {provider: ollama, modelId: l}}\n"))
    written = compile_text(f"agents:\n  a: {{model: {{provider: ollama, modelId: l, endpoint: '{url}'}}}}\n")
    (cluster,) = default.clusters.values()
    (expected,) = written["clusters"].values()
    assert cluster.env_base_url(url) == expected["baseUrl"]


def test_a_table_without_a_base_url_rule_only_drops_trailing_slashes() -> None:
    data = compile_text("agents:\n  a: {model: {provider: ollama, modelId: l}}\n")
    (cluster,) = data["clusters"].values()
    del cluster["baseUrlRule"]
    (frozen,) = table_from_json(data).clusters.values()
    assert frozen.env_base_url("http://gpu:11434/") == "http://gpu:11434"


def test_bedrock_urls_and_regions() -> None:
    table = compile_text(
        "providers:\n  bedrock: {region: eu-west-1}\n"
        "agents:\n"
        "  - id: a\n    model: {provider: bedrock, modelId: x}\n"
        "  - id: b\n    model: {provider: bedrock, modelId: y, region: us-east-1}\n"
        "  - id: c\n    model: {provider: bedrock, modelId: z, endpoint: 'https://vpce.example'}\n"
    )
    clusters = {c["modelId"]: c for c in table["clusters"].values()}
    assert (clusters["x"]["baseUrl"], clusters["x"]["region"]) == ("https://bedrock-runtime.eu-west-1.amazonaws.com", "eu-west-1")
    assert (clusters["y"]["baseUrl"], clusters["y"]["region"]) == ("https://bedrock-runtime.us-east-1.amazonaws.com", "us-east-1")
    assert (clusters["z"]["baseUrl"], clusters["z"]["region"]) == ("https://vpce.example", "eu-west-1")
    assert clusters["x"]["credentials"] == {"mode": "aws", "env": None, "required": False}


def test_bedrock_without_region_leaves_it_to_the_environment() -> None:
    cluster = compile_text("agents:\n  - id: a\n    model: {provider: bedrock, modelId: x}\n")["clusters"]["bedrock:x:"]
    assert (cluster["baseUrl"], cluster["region"], cluster["auth"]) == ("", None, "sigv4")


def test_gemini_ai_studio_and_vertex() -> None:
    table = compile_text(
        "agents:\n"
        "  - id: a\n    model: {provider: gemini, modelId: g}\n"
        "  - id: b\n    model: {provider: gemini, modelId: g, vertex: {project: p, location: global}}\n"
        "  - id: c\n    model: {provider: gemini, modelId: g, vertex: {project: p, location: us-central1, credentialsFile: /k.json}}\n"
    )
    studio = table["clusters"]["gemini:g:https://generativelanguage.googleapis.com"]
    assert studio["credentials"] == {"mode": "env", "env": "GEMINI_API_KEY", "required": True}
    vertex_global = table["clusters"]["gemini:g:https://aiplatform.googleapis.com"]
    assert vertex_global["credentials"] == {"mode": "google", "env": None, "required": False}
    assert vertex_global["vertex"] == {"project": "p", "location": "global", "credentialsFile": None}
    regional = table["clusters"]["gemini:g:https://us-central1-aiplatform.googleapis.com"]
    assert regional["vertex"]["credentialsFile"] == "/k.json"


def test_vertex_multi_region_hosts() -> None:
    table = compile_text("agents:\n  - id: a\n    model: {provider: gemini, modelId: g, vertex: {project: p, location: eu}}\n")
    assert list(table["clusters"]) == ["gemini:g:https://aiplatform.eu.rep.googleapis.com"]


def test_provider_overrides_credentials_headers_and_breakers() -> None:
    table = compile_text(
        "settings:\n  circuitBreaker: {failureThreshold: 7, cooldownMs: 1000}\n"
        "providers:\n"
        "  openrouter:\n    headers: {HTTP-Referer: 'https://x.example', X-Title: Demo}\n"
        "    circuitBreaker: {windowMs: 5000}\n"
        "  openai: {apiKeyEnv: TEAM_KEY}\n"
        "  xai: {credentials: passthrough}\n"
        "agents:\n"
        "  - id: a\n    model: {provider: openrouter, modelId: r}\n    circuitBreaker: {successThreshold: 2}\n"
        "  - id: b\n    model: {provider: openai, modelId: m}\n"
        "  - id: c\n    model: {provider: grok, modelId: g}\n"
        "  - id: d\n    model: {provider: vllm, modelId: v, endpoint: 'http://gpu:8000'}\n"
    )
    router = table["clusters"]["openrouter:r:https://openrouter.ai/api/v1"]
    assert router["headers"] == {"HTTP-Referer": "https://x.example", "X-Title": "Demo"}
    assert router["breaker"] == {"failureThreshold": 7, "windowMs": 5000, "cooldownMs": 1000, "successThreshold": 2}
    assert table["clusters"][OPENAI]["credentials"] == {"mode": "env", "env": "TEAM_KEY", "required": True}
    assert table["clusters"]["grok:g:https://api.x.ai/v1#passthrough"]["credentials"] == {
        "mode": "passthrough", "env": None, "required": False}
    assert table["clusters"]["vllm:v:http://gpu:8000/v1"]["credentials"] == {
        "mode": "env", "env": "VLLM_API_KEY", "required": False, "keylessToken": "astra-no-key"}


def test_mock_behaviour_and_keys() -> None:
    table = compile_text(
        "agents:\n"
        "  - id: plain\n    model: {provider: mock, modelId: m}\n"
        "  - id: same\n    model: {provider: mock, modelId: m, mock: {failRate: 1, seed: 0}}\n"
        "  - id: broken\n    model: {provider: mock, modelId: m, mock: {status: 503, failRate: 0.5, cutAfterChunks: 2}}\n"
    )
    plain, same, broken = (table["agents"][a]["plan"][0] for a in ("plain", "same", "broken"))
    assert plain == same == "mock:m:mock://local"
    assert broken.startswith("mock:m:mock://local#") and len(broken) == len(plain) + 9
    assert table["clusters"][plain]["mock"] == {
        "reply": None, "latencyMs": 0, "chunkDelayMs": 0, "status": None, "failRate": 1.0,
        "retryAfterMs": None, "cutAfterChunks": None, "seed": 0,
    }
    assert table["clusters"][broken]["mock"]["status"] == 503
    assert table["clusters"][broken]["baseUrl"] == "mock://local"


def test_agent_overrides_merge_over_settings() -> None:
    table = compile_text(
        "settings:\n  retry: {maxRetries: 4, jitter: 0}\n  timeouts: {attemptMs: 1000}\n  requestTimeoutMs: 9000\n"
        "agents:\n  - id: a\n    model: {provider: openai, modelId: m}\n"
        "    retry: {baseDelayMs: 10, retryOn: [503]}\n    timeouts: {connectMs: 50}\n    requestTimeoutMs: 5000\n"
    )
    agent = table["agents"]["a"]
    assert agent["retry"] == {"maxRetries": 4, "baseDelayMs": 10, "maxDelayMs": 8000, "jitter": 0.0,
                              "retryOn": [503], "retryNetworkErrors": True, "maxRetryAfterMs": 30000}
    assert agent["timeouts"] == {"connectMs": 50, "attemptMs": 1000, "streamIdleMs": 60000}
    assert agent["requestTimeoutMs"] == 5000


def test_fallback_to_an_agent_splices_its_plan() -> None:
    table = compile_text(
        "settings:\n  timeouts: {attemptMs: 1000}\n"
        "agents:\n"
        "  front:\n    model:\n      provider: groq\n      modelId: g\n"
        "      fallback: [{agent: main}, {provider: mock, modelId: last}]\n"
        "  main:\n    model:\n      provider: openai\n      modelId: m\n"
        "      fallback: [{provider: groq, modelId: g}, {provider: claude, modelId: c}]\n"
    )
    assert table["agents"]["front"]["plan"] == [
        "groq:g:https://api.groq.com/openai/v1", OPENAI, "claude:c:https://api.anthropic.com", "mock:last:mock://local"]
    assert table["agents"]["main"]["plan"] == [
        OPENAI, "groq:g:https://api.groq.com/openai/v1", "claude:c:https://api.anthropic.com"]


def test_settings_in_full() -> None:
    table = compile_text(
        "settings:\n  listen: {host: 0.0.0.0}\n  drainGraceMs: 500\n  maxBodyBytes: 2048\n"
        "  inboundAuth: {tokenEnv: GATE}\n" + MINIMAL
    )
    assert table["settings"] == {"listen": {"host": "0.0.0.0", "port": 8080}, "drainGraceMs": 500,
                                 "maxBodyBytes": 2048, "inboundTokenEnv": "GATE"}


def test_agent_policy_fields() -> None:
    table = compile_text(
        "agents:\n  - id: a\n    displayName: A\n    tier: gold\n"
        "    model: {provider: openai, modelId: m, maxContextTokens: 100, maxOutputTokens: 10, temperature: 0}\n"
        "    systemPrompt: 'Hi {{ vars.x }}'\n    promptVars: {x: y}\n"
        "    tools: {allow: [s], deny: [t]}\n    promptCache: {tools: true}\n"
    )
    agent = table["agents"]["a"]
    assert (agent["displayName"], agent["tier"], agent["maxContextTokens"], agent["maxOutputTokens"]) == ("A", "gold", 100, 10)
    assert (agent["temperature"], agent["systemPrompt"], agent["promptVars"]) == (0.0, "Hi {{ vars.x }}", {"x": "y"})
    assert agent["tools"] == {"allow": ["s"], "deny": ["t"]}
    assert agent["promptCache"] == {"systemPrompt": False, "tools": True}


def test_registry_rules_are_copied() -> None:
    table = compile_text("agents:\n  - id: a\n    model: {provider: mistral, modelId: s}\n")
    rules = table["clusters"]["mistral:s:https://api.mistral.ai/v1"]["rules"]
    assert rules["renameParams"] == {"max_completion_tokens": "max_tokens", "seed": "random_seed"}
    assert (rules["temperatureMax"], rules["developerAsSystem"], rules["dropMessageKeys"]) == (1.5, True, ["name"])


def test_passthrough_clusters_are_never_shared_with_env_ones() -> None:
    table = compile_text(
        "agents:\n"
        "  a: {model: {provider: openai, modelId: m}}\n"
        "  b: {model: {provider: openai, modelId: m, credentials: passthrough}}\n"
    )
    assert table["agents"]["a"]["plan"] == [OPENAI]
    assert table["agents"]["b"]["plan"] == [OPENAI + "#passthrough"]
    modes = {key: cluster["credentials"]["mode"] for key, cluster in table["clusters"].items()}
    assert modes == {OPENAI: "env", OPENAI + "#passthrough": "passthrough"}


def test_keyless_token_is_frozen_for_vllm_only() -> None:
    table = table_from_json(compile_text(
        "agents:\n  a:\n    model: {provider: vllm, modelId: v, endpoint: 'http://gpu:8000', "
        "fallback: {provider: openai, modelId: m}}\n"
    ))
    tokens = {c.provider: c.credentials.keyless_token for c in table.clusters.values()}
    assert tokens == {"vllm": "astra-no-key", "openai": None}
