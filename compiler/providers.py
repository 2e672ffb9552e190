"""The provider registry: every provider id the compiler accepts, and the data that makes it work.

Provider differences are data, not code. Each `ProviderSpec` names the wire format its adapter
speaks (`openai`, `anthropic`, `gemini`, `bedrock`, `mock`), its default base URL, how it
authenticates, which credential variable it reads, its temperature range, and the request
parameters it rejects (dropped) or spells differently (renamed). The compiler copies the resolved
values into each cluster of the routing table, so the sidecar never consults this module for
behaviour; it only maps the wire format to an adapter.

Sources for the quirks: the providers' public docs (console.groq.com/docs/openai; Mistral's API
spec, mistralai/platform-docs-public `public/openapi.yaml`; inference-docs.cerebras.ai; Ollama's
`docs/api/openai-compatibility.mdx` in ollama/ollama; vLLM's OpenAI-compatible server docs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from astra_sidecar.compiler.table import BaseUrlRule

Wire = Literal["openai", "anthropic", "gemini", "bedrock", "mock"]
AuthStyle = Literal["bearer", "x-api-key", "x-goog-api-key", "sigv4", "none"]

_NO_RENAMES: MappingProxyType[str, str] = MappingProxyType({})

EmbeddingFormat = Literal["openai", "gemini", "titan", "cohere"]


@dataclass(frozen=True, slots=True)
class EmbeddingSpec:
    """A provider's embeddings API, for agents with `model.kind: embedding`.

    `format` is the request shape the sidecar sends (`POST {base}/embeddings`, Gemini
    `batchEmbedContents`); where it depends on the model (Bedrock InvokeModel), `families` maps a
    model-id fragment to its format and a model matching none is refused (AST253).
    `token_input`: the API takes token arrays as `input`. `drop_params` / `rename_params`: OpenAI
    embedding fields it does not take, or spells differently."""

    format: EmbeddingFormat | None
    token_input: bool = False
    drop_params: tuple[str, ...] = ()
    rename_params: MappingProxyType[str, str] = field(default_factory=lambda: _NO_RENAMES)
    families: tuple[tuple[str, EmbeddingFormat], ...] = ()

    def format_for(self, model_id: str) -> EmbeddingFormat | None:
        """The request format for `model_id`, or None when this API cannot embed with it."""
        if self.format is not None:
            return self.format
        return next((fmt for fragment, fmt in self.families if fragment in model_id), None)


#: OpenAI's own embeddings API: `POST /v1/embeddings` (platform.openai.com/docs/api-reference/embeddings).
_OPENAI_EMBEDDINGS = EmbeddingSpec(format="openai", token_input=True)

#: Placeholder bearer sent to keyless OpenAI-compatible servers (vLLM without --api-key).
KEYLESS_PLACEHOLDER = "astra-no-key"


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """What the compiler needs to know about one provider id."""

    id: str
    wire: Wire
    default_base_url: str
    auth: AuthStyle
    api_key_env: str | None
    key_required: bool = True
    base_url_env: str | None = None
    endpoint_required: bool = False
    temperature_max: float = 2.0
    drop_params: tuple[str, ...] = ()
    rename_params: MappingProxyType[str, str] = field(default_factory=lambda: _NO_RENAMES)
    drop_message_keys: tuple[str, ...] = ()
    developer_as_system: bool = True
    max_choices: int | None = None
    streaming: bool = True
    tools: bool = True
    strip_v1_suffix: bool = False
    default_headers: MappingProxyType[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: The bearer sent when the optional key is unset (`KEYLESS_PLACEHOLDER`), or None for none.
    keyless_token: str | None = None
    #: Its embeddings API, or None when it has none.
    embeddings: EmbeddingSpec | None = None


def _spec(**kwargs: object) -> ProviderSpec:
    return ProviderSpec(**kwargs)  # type: ignore[arg-type]


PROVIDERS: MappingProxyType[str, ProviderSpec] = MappingProxyType(
    {
        spec.id: spec
        for spec in (
            _spec(
                id="openai",
                wire="openai",
                default_base_url="https://api.openai.com/v1",
                auth="bearer",
                api_key_env="OPENAI_API_KEY",
                developer_as_system=False,
                embeddings=_OPENAI_EMBEDDINGS,
            ),
            _spec(
                id="claude",
                wire="anthropic",
                default_base_url="https://api.anthropic.com",
                auth="x-api-key",
                api_key_env="ANTHROPIC_API_KEY",
                temperature_max=1.0,
                max_choices=1,
                strip_v1_suffix=True,
            ),
            _spec(
                id="gemini",
                wire="gemini",
                default_base_url="https://generativelanguage.googleapis.com",
                auth="x-goog-api-key",
                api_key_env="GEMINI_API_KEY",
                # batchEmbedContents (ai.google.dev/api/embeddings); Vertex AI: `:predict`.
                embeddings=EmbeddingSpec(format="gemini"),
            ),
            _spec(
                id="grok",
                wire="openai",
                default_base_url="https://api.x.ai/v1",
                auth="bearer",
                api_key_env="GROK_API_KEY",
            ),
            _spec(
                id="groq",
                wire="openai",
                default_base_url="https://api.groq.com/openai/v1",
                auth="bearer",
                api_key_env="GROQ_API_KEY",
                drop_params=("logprobs", "top_logprobs", "logit_bias"),
                drop_message_keys=("name",),
                max_choices=1,
            ),
            _spec(
                id="mistral",
                wire="openai",
                default_base_url="https://api.mistral.ai/v1",
                auth="bearer",
                api_key_env="MISTRAL_API_KEY",
                temperature_max=1.5,
                drop_params=(
                    "stream_options",
                    "user",
                    "logprobs",
                    "top_logprobs",
                    "logit_bias",
                    "service_tier",
                    "store",
                    "metadata",
                    "safety_identifier",
                    "prompt_cache_key",
                ),
                rename_params=MappingProxyType(
                    {"max_completion_tokens": "max_tokens", "seed": "random_seed"}
                ),
                drop_message_keys=("name",),
                # docs.mistral.ai/api/endpoint/embeddings: strings only, `output_dimension`.
                embeddings=EmbeddingSpec(
                    format="openai",
                    drop_params=("user",),
                    rename_params=MappingProxyType({"dimensions": "output_dimension"}),
                ),
            ),
            _spec(
                id="openrouter",
                wire="openai",
                default_base_url="https://openrouter.ai/api/v1",
                auth="bearer",
                api_key_env="OPENROUTER_API_KEY",
                developer_as_system=False,
                # openrouter.ai/docs: `POST /api/v1/embeddings`, text or token input.
                embeddings=_OPENAI_EMBEDDINGS,
            ),
            _spec(
                id="ollama",
                wire="openai",
                default_base_url="http://localhost:11434/v1",
                auth="none",
                api_key_env=None,
                key_required=False,
                base_url_env="OLLAMA_BASE_URL",
                drop_params=("logit_bias", "user"),
                max_choices=1,
                # ollama/ollama docs/openai.md: `/v1/embeddings` takes strings, not tokens or `user`.
                embeddings=EmbeddingSpec(format="openai", drop_params=("user",)),
            ),
            _spec(
                id="vllm",
                wire="openai",
                default_base_url="",
                auth="bearer",
                api_key_env="VLLM_API_KEY",
                key_required=False,
                endpoint_required=True,
                keyless_token=KEYLESS_PLACEHOLDER,
                # vLLM's OpenAI-compatible server: `/v1/embeddings` for pooling models, tokens too.
                embeddings=_OPENAI_EMBEDDINGS,
            ),
            _spec(
                id="bedrock",
                wire="bedrock",
                default_base_url="",
                auth="sigv4",
                api_key_env=None,
                key_required=False,
                temperature_max=1.0,
                max_choices=1,
                # InvokeModel (docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html,
                # …/model-parameters-embed.html): Titan Text Embeddings, Cohere Embed.
                embeddings=EmbeddingSpec(
                    format=None,
                    families=(("amazon.titan-embed-text", "titan"), ("cohere.embed-", "cohere")),
                ),
            ),
            _spec(
                id="cerebras",
                wire="openai",
                default_base_url="https://api.cerebras.ai/v1",
                auth="bearer",
                api_key_env="CEREBRAS_API_KEY",
                drop_params=(
                    "frequency_penalty",
                    "presence_penalty",
                    "logit_bias",
                    "parallel_tool_calls",
                    "service_tier",
                ),
            ),
            _spec(
                id="mock",
                wire="mock",
                default_base_url="mock://local",
                auth="none",
                api_key_env=None,
                key_required=False,
                developer_as_system=False,
            ),
        )
    }
)

ALIASES: MappingProxyType[str, str] = MappingProxyType({"anthropic": "claude", "xai": "grok"})


def canonical_provider(name: str) -> str | None:
    """The registry id for `name` (aliases resolved), or None when it is unknown."""
    name = ALIASES.get(name, name)
    return name if name in PROVIDERS else None


def known_provider_names() -> tuple[str, ...]:
    """Every spelling the compiler accepts, for suggestions and the JSON Schema enum."""
    return tuple(sorted({*PROVIDERS, *ALIASES}))


def base_url_rule(spec: ProviderSpec) -> BaseUrlRule:
    """How this provider's base URLs are normalised (see `astra_sidecar.compiler.table.BaseUrlRule`).

    OpenAI-compatible endpoints are taken as the OpenAI SDK takes `base_url`; a bare
    `scheme://host[:port]` gains `/v1` (so `http://localhost:11434` and `…:11434/v1` agree).
    Anthropic's SDK-style base URL drops a trailing `/v1`: its adapter appends `/v1/messages`.
    """
    return BaseUrlRule(
        strip_suffix="/v1" if spec.strip_v1_suffix else None,
        default_path="/v1" if spec.wire == "openai" else None,
    )


def normalise_base_url(spec: ProviderSpec, url: str) -> str:
    """The base URL as the sidecar joins paths onto it, with no trailing slash."""
    return base_url_rule(spec).apply(url)
