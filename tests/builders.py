"""Routing-table objects for unit tests: the `astra_sidecar.compiler.table` dataclasses, with
sensible defaults.

Each builder takes the fields a test cares about as keyword overrides and fills in the rest the
way the compiler would for that provider (wire format, auth style, credentials and request rules
as in compiler/providers.py), so a test reads as what it varies:

    cluster("bedrock", "amazon.nova-lite-v1:0", region=None)
    agent(plan=[cluster("claude", "claude-test")], max_output_tokens=256)

Tests that need a whole compiled table write astra.yml and use `tests.sidecar.harness.compile_yaml`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from astra_sidecar.compiler.table import (
    Agent,
    BreakerPolicy,
    Cluster,
    Credentials,
    RequestRules,
    RetryPolicy,
    Timeouts,
    ToolPolicy,
    cluster_key,
)


@dataclass(frozen=True, slots=True)
class _ProviderDefaults:
    wire: str
    auth: str
    credentials: Credentials
    rules: RequestRules = field(default_factory=RequestRules)
    region: str | None = None


#: What the compiler writes for these provider ids (compiler/providers.py), minus what only the
#: compiler itself reads.
_PROVIDERS: Mapping[str, _ProviderDefaults] = MappingProxyType(
    {
        "openai": _ProviderDefaults("openai", "bearer", Credentials(mode="env", env="OPENAI_API_KEY")),
        "claude": _ProviderDefaults(
            "anthropic",
            "x-api-key",
            Credentials(mode="env", env="ANTHROPIC_API_KEY"),
            RequestRules(temperature_max=1.0, max_choices=1),
        ),
        "gemini": _ProviderDefaults(
            "gemini", "x-goog-api-key", Credentials(mode="env", env="GEMINI_API_KEY")
        ),
        "bedrock": _ProviderDefaults(
            "bedrock",
            "sigv4",
            Credentials(mode="aws", required=False),
            RequestRules(temperature_max=1.0, max_choices=1),
            region="us-east-1",
        ),
        "mock": _ProviderDefaults("mock", "none", Credentials(mode="none", required=False)),
    }
)

#: The base URL a cluster gets when the test does not name one.
DEFAULT_BASE_URLS: Mapping[str, str] = MappingProxyType(
    {
        "openai": "https://api.openai.com/v1",
        "claude": "https://api.anthropic.com",
        "gemini": "https://generativelanguage.googleapis.com",
        "bedrock": "",
        "mock": "mock://local",
    }
)


def cluster(
    provider: str = "openai",
    model_id: str = "gpt-test",
    *,
    base_url: str | None = None,
    headers: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Cluster:
    """A cluster of `provider` (openai, claude, gemini, bedrock or mock) serving `model_id`.

    `key` defaults to the compiler's `provider:modelId:baseUrl`; any other `Cluster` field can be
    overridden by keyword (`credentials=…`, `rules=…`, `region=…`, `vertex=…`, `mock=…`)."""
    defaults = _PROVIDERS[provider]
    url = DEFAULT_BASE_URLS[provider] if base_url is None else base_url
    fields: dict[str, Any] = {
        "key": cluster_key(provider, model_id, url),
        "provider": provider,
        "wire": defaults.wire,
        "model_id": model_id,
        "base_url": url,
        "auth": defaults.auth,
        "credentials": defaults.credentials,
        "base_url_env": None,
        "headers": MappingProxyType(dict(headers or {})),
        "breaker": BreakerPolicy(),
        "rules": defaults.rules,
        "region": defaults.region,
        **overrides,
    }
    return Cluster(**fields)


def agent(
    agent_id: str = "helper",
    *,
    plan: Iterable[Cluster | str] | None = None,
    **overrides: Any,
) -> Agent:
    """An agent with no policy of its own: no limits, prompt or tool rules, default retry and
    timeouts. `plan` takes clusters or cluster keys (default: one default `cluster()`); any other
    `Agent` field can be overridden by keyword."""
    entries = [cluster()] if plan is None else list(plan)
    fields: dict[str, Any] = {
        "id": agent_id,
        "display_name": None,
        "tier": None,
        "plan": tuple(entry if isinstance(entry, str) else entry.key for entry in entries),
        "max_context_tokens": None,
        "max_output_tokens": None,
        "temperature": None,
        "system_prompt": None,
        "tools": ToolPolicy(),
        "retry": RetryPolicy(),
        "timeouts": Timeouts(),
        "request_timeout_ms": 60000,
        **overrides,
    }
    return Agent(**fields)
