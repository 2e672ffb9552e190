"""The routing table: the compiled, frozen, secret-free artifact the sidecar serves.

JSON layout (camelCase keys, every default already resolved by the compiler)::

    {"schemaVersion": 1, "sourceSha256": "…", "hash": "sha256:…",
     "settings": {...}, "clusters": {KEY: {...}}, "agents": {ID: {...}}}

A *cluster* is one provider endpoint for one model (`provider:modelId:baseUrl`): it owns the
credentials reference, extra headers, request rules and the circuit-breaker policy. An *agent*
owns the request policy (system prompt, limits, tools, retry, deadline) and its attempt plan: the
ordered cluster keys, primary first, then fallbacks.

`hash` is the SHA-256 of the canonical JSON of everything else, so two tables with the same hash
route identically. Credentials appear only as environment variable names.

Some keys appear only when used, so the tables of configs that do not use them (and their hashes)
stay as they were: an agent's `planLimits` (one `{maxContextTokens}` per plan entry, written when
some entry's context window differs from the agent's `maxContextTokens`), an agent's `kind` (only
`embedding`: absent means chat), a mock's `toolCalls`, a
cluster's `baseUrlRule` (with `baseUrlEnv`) and its credentials' `keylessToken`. A table written
before the last two existed still loads: its env base URL then only loses trailing slashes, and
its keyless clusters send no token.

`astra_sidecar.compiler.table.load` reads and writes the JSON form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from astra_sidecar.compiler.table.fleet import QuotaPolicy, RedisState
from astra_sidecar.compiler.table.pool import Pool

SCHEMA_VERSION = 1

CredentialMode = Literal["env", "passthrough", "none", "aws", "google"]
AgentKind = Literal["chat", "embedding"]
Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Listen:
    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of one cluster attempt. Statuses in `retry_on` and (optionally) network errors retry."""

    max_retries: int = 2
    base_delay_ms: int = 250
    max_delay_ms: int = 8000
    jitter: float = 0.2
    retry_on: tuple[int, ...] = (429, 500, 502, 503, 504)
    retry_network_errors: bool = True
    max_retry_after_ms: int = 30000


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """Closed → open after `failure_threshold` failures within `window_ms`; half-open after
    `cooldown_ms`, where one probe at a time runs and `success_threshold` successes close it."""

    failure_threshold: int = 5
    window_ms: int = 60000
    cooldown_ms: int = 60000
    success_threshold: int = 1


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per attempt: `connect_ms` to open a connection, `attempt_ms` until the whole answer (or a
    stream's first chunk), `stream_idle_ms` between two reads of a streamed body."""

    connect_ms: int = 10000
    attempt_ms: int = 30000
    stream_idle_ms: int = 60000


@dataclass(frozen=True, slots=True)
class Credentials:
    """How the sidecar authenticates to a cluster. `env` names the variable holding the key;
    `passthrough` forwards the caller's own key to this provider only; `aws`/`google` use the
    AWS credential chain or Google Application Default Credentials."""

    mode: CredentialMode = "env"
    env: str | None = None
    required: bool = True
    #: Sent as the bearer when the optional key is unset (vLLM without --api-key); None sends none.
    keyless_token: str | None = None


@dataclass(frozen=True, slots=True)
class RequestRules:
    """OpenAI request parameters this cluster rejects or spells differently."""

    drop_params: tuple[str, ...] = ()
    rename_params: MappingProxyType[str, str] = field(default_factory=lambda: MappingProxyType({}))
    drop_message_keys: tuple[str, ...] = ()
    developer_as_system: bool = False
    max_choices: int | None = None
    temperature_max: float = 2.0


@dataclass(frozen=True, slots=True)
class VertexTarget:
    project: str
    location: str
    credentials_file: str | None = None


@dataclass(frozen=True, slots=True)
class MockToolCall:
    """A tool call the mock answers with: the function's name and its arguments as a JSON string."""

    name: str
    arguments: str = "{}"


@dataclass(frozen=True, slots=True)
class MockBehavior:
    """The built-in `mock` provider: answers locally, and injects faults when asked.

    `status` makes a share (`fail_rate`) of requests fail with that status (seeded by `seed`);
    `cut_after_chunks` ends a stream abruptly after that many chunks; `latency_ms` delays the
    answer; `reply` is the text to answer (default: echo of the last user message); `tool_calls`,
    when set, are returned as the answer's tool calls (finish reason `tool_calls`)."""

    reply: str | None = None
    latency_ms: int = 0
    chunk_delay_ms: int = 0
    status: int | None = None
    fail_rate: float = 1.0
    retry_after_ms: int | None = None
    cut_after_chunks: int | None = None
    seed: int = 0
    tool_calls: tuple[MockToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class BaseUrlRule:
    """How a base URL is normalised before paths are joined onto it (the compiler does it to a
    written endpoint, the sidecar to one read from `baseUrlEnv` at start): trailing slashes go;
    then `strip_suffix` is cut off the end (Anthropic's SDK-style `…/v1`: its adapter appends
    `/v1/messages`), else a bare `scheme://host[:port]` gains `default_path` (OpenAI-compatible
    servers, taken as the OpenAI SDK takes `base_url`: `http://localhost:11434` means `…/v1`)."""

    strip_suffix: str | None = None
    default_path: str | None = None

    def apply(self, url: str) -> str:
        url = url.rstrip("/")
        if self.strip_suffix and url.endswith(self.strip_suffix):
            return url[: -len(self.strip_suffix)]
        if self.default_path and not urlsplit(url).path:
            return url + self.default_path
        return url


@dataclass(frozen=True, slots=True)
class EmbeddingRules:
    """How a cluster of an embedding agent is asked for embeddings: the request `format`
    (`openai`, `gemini`, `titan`, `cohere`), whether it takes token arrays as input, and the
    OpenAI embedding fields it drops or spells differently."""

    format: str
    token_input: bool = False
    drop_params: tuple[str, ...] = ()
    rename_params: MappingProxyType[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class Cluster:
    key: str
    provider: str
    wire: str
    model_id: str
    base_url: str
    auth: str
    credentials: Credentials
    base_url_env: str | None
    headers: MappingProxyType[str, str]
    breaker: BreakerPolicy
    rules: RequestRules
    streaming: bool = True
    tools: bool = True
    region: str | None = None
    vertex: VertexTarget | None = None
    mock: MockBehavior | None = None
    #: Applied to the value of `base_url_env` when that variable is set at start.
    base_url_rule: BaseUrlRule = BaseUrlRule()
    #: The breaker's state is kept in `settings.state.redis` for every replica (`breaker.shared`
    #: in the table, written only when true).
    shared_breaker: bool = False
    #: Set only on clusters of embedding agents.
    embedding: EmbeddingRules | None = None

    def env_base_url(self, value: str) -> str:
        """The base URL to use when `base_url_env` holds `value`."""
        return self.base_url_rule.apply(value)


@dataclass(frozen=True, slots=True)
class ToolPolicy:
    """`allow` None means every tool not denied is allowed; an empty tuple allows none."""

    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] = ()

    def permits(self, name: str) -> bool:
        if name in self.deny:
            return False
        return self.allow is None or name in self.allow

    @property
    def restrictive(self) -> bool:
        """True when some tool name is refused: an allow list is set, or the deny list is not empty."""
        return self.allow is not None or bool(self.deny)


@dataclass(frozen=True, slots=True)
class PromptCache:
    system_prompt: bool = False
    tools: bool = False


@dataclass(frozen=True, slots=True)
class Reasoning:
    """The agent's reasoning default (`model.reasoning`), used when a request sets none: an
    effort level and/or a budget in tokens; `expose` False strips reasoning text from answers."""

    effort: str | None = None
    budget_tokens: int | None = None
    expose: bool = True


@dataclass(frozen=True, slots=True)
class PlanLimits:
    """Limits of one plan entry: the context window of the model it calls (None: no limit)."""

    max_context_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    display_name: str | None
    tier: str | None
    plan: tuple[str, ...]
    max_context_tokens: int | None
    max_output_tokens: int | None
    temperature: float | None
    system_prompt: str | None
    tools: ToolPolicy
    retry: RetryPolicy
    timeouts: Timeouts
    request_timeout_ms: int
    prompt_cache: PromptCache = PromptCache()
    prompt_vars: MappingProxyType[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: Per plan entry (same order as `plan`); empty when every entry has `max_context_tokens`.
    plan_limits: tuple[PlanLimits, ...] = ()
    quota: QuotaPolicy | None = None
    #: Plan entries served by a pool of deployments, by plan key; written only when some are.
    pools: MappingProxyType[str, Pool] = field(default_factory=lambda: MappingProxyType({}))
    #: What the agent serves: `chat` (chat, responses, messages, generateContent) or `embedding`.
    kind: AgentKind = "chat"
    #: `model.reasoning`; None when the agent sets no reasoning default.
    reasoning: Reasoning | None = None

    @property
    def primary(self) -> str:
        return self.plan[0]

    def context_limits(self) -> tuple[int | None, ...]:
        """The context window of each plan entry, primary first."""
        if self.plan_limits:
            return tuple(limit.max_context_tokens for limit in self.plan_limits)
        return (self.max_context_tokens,) * len(self.plan)


@dataclass(frozen=True, slots=True)
class ResponsesStore:
    """`settings.responses.store`: the bound of the response store (`max_entries` 0 turns it off)."""

    max_entries: int = 1000
    max_bytes: int = 64 * 1024 * 1024
    ttl_ms: int = 3_600_000


@dataclass(frozen=True, slots=True)
class Settings:
    listen: Listen = Listen()
    drain_grace_ms: int = 10000
    max_body_bytes: int = 8 * 1024 * 1024
    inbound_token_env: str | None = None
    redis: RedisState | None = None
    #: `settings.limits` as written in the table (camelCase keys); see sidecar/limits.py.
    limits: MappingProxyType[str, int] = field(default_factory=lambda: MappingProxyType({}))
    protect_metrics: bool = False
    responses_store: ResponsesStore = ResponsesStore()


@dataclass(frozen=True, slots=True)
class RoutingTable:
    schema_version: int
    source_sha256: str
    hash: str
    settings: Settings
    clusters: MappingProxyType[str, Cluster]
    agents: MappingProxyType[str, Agent]

    def cluster_plan(self, agent: Agent) -> tuple[Cluster, ...]:
        return tuple(self.clusters[key] for key in agent.plan)


def cluster_key(provider: str, model_id: str, base_url: str) -> str:
    return f"{provider}:{model_id}:{base_url}"
