"""The protocol registry: wire format → what the sidecar has for it.

Each wire format has a folder here with its upstream adapter (`base.Adapter`), and, when clients
may call the sidecar in that API, its ingress codec and optional native pass-through
(`codec.IngressCodec`, `codec.NativePath`). Provider ids map to wire formats in the compiler's
registry (`compiler/providers.py`, copied into each cluster of the table); the sidecar only ever
looks up the wire format here. A new wire format is one folder, its factories and one line below.

Only OpenAI's modules load with this one (issue 15, the footprint). A wire format's adapter, its
count API and the embedder of an embedding cluster are imported when a table has a cluster of it
(`load_cluster`, at runtime build: no request pays it). The other ingress APIs are `LazyIngress`
codecs (each API's `ingress_routes`), imported at their first request with their native path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, TypeVar

from astra_sidecar.compiler.table import Cluster
from astra_sidecar.sidecar.protocols.anthropic.ingress_routes import ANTHROPIC
from astra_sidecar.sidecar.protocols.base import Adapter
from astra_sidecar.sidecar.protocols.codec import IngressCodec, NativePath
from astra_sidecar.sidecar.protocols.embedding import Embedder
from astra_sidecar.sidecar.protocols.gemini.ingress_routes import GEMINI
from astra_sidecar.sidecar.protocols.openai import ingress as openai_ingress
from astra_sidecar.sidecar.protocols.openai.adapter import OpenAICompatAdapter
from astra_sidecar.sidecar.protocols.responses.ingress_routes import RESPONSES

if TYPE_CHECKING:  # types only: the count flow reads `COUNTERS`
    from astra_sidecar.sidecar.serving.count_tokens import TokenCounter

V = TypeVar("V")


class LoadedOnUse(Mapping[str, V]):
    """A mapping whose values are made by their factories at their first lookup, then kept."""

    def __init__(self, factories: Mapping[str, Callable[[], V]]) -> None:
        self._factories = factories
        self._made: dict[str, V] = {}

    def __getitem__(self, key: str) -> V:
        try:
            return self._made[key]
        except KeyError:
            value = self._made[key] = self._factories[key]()  # KeyError for an unknown key
            return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._factories)

    def __len__(self) -> int:
        return len(self._factories)


@dataclass(frozen=True, slots=True)
class Native:
    path: NativePath
    #: When set, the native path serves clusters of these providers (of any wire format) instead
    #: of the clusters of its own wire format.
    providers: frozenset[str] | None = None


_OPENAI = OpenAICompatAdapter()


def _anthropic() -> Adapter:
    from astra_sidecar.sidecar.protocols.anthropic.adapter import AnthropicAdapter

    return AnthropicAdapter()


def _gemini() -> Adapter:
    from astra_sidecar.sidecar.protocols.gemini.adapter import GeminiAdapter

    return GeminiAdapter()


def _bedrock() -> Adapter:
    from astra_sidecar.sidecar.protocols.bedrock.adapter import BedrockAdapter

    return BedrockAdapter()


def _anthropic_native() -> Native:
    from astra_sidecar.sidecar.protocols.anthropic.native import NATIVE

    return Native(NATIVE)


def _gemini_native() -> Native:
    from astra_sidecar.sidecar.protocols.gemini.native import NATIVE

    return Native(NATIVE)


def _responses_native() -> Native:
    from astra_sidecar.sidecar.protocols.responses.native import NATIVE, NATIVE_PROVIDERS

    return Native(NATIVE, NATIVE_PROVIDERS)


def _anthropic_counter() -> TokenCounter:
    from astra_sidecar.sidecar.protocols.anthropic.count import COUNTER

    return COUNTER


def _gemini_counter() -> TokenCounter:
    from astra_sidecar.sidecar.protocols.gemini.count import COUNTER

    return COUNTER


def _bedrock_counter() -> TokenCounter:
    from astra_sidecar.sidecar.protocols.bedrock.count import COUNTER

    return COUNTER


@dataclass(frozen=True, slots=True)
class WireProtocol:
    adapter: Callable[[], Adapter]
    ingress: IngressCodec | None = None
    native: Callable[[], Native] | None = None
    #: The provider's count API (`serving/count_tokens.py`), when it has one.
    counter: Callable[[], TokenCounter] | None = None


PROTOCOLS: Mapping[str, WireProtocol] = MappingProxyType(
    {
        "openai": WireProtocol(lambda: _OPENAI, openai_ingress.CODEC),
        "mock": WireProtocol(lambda: _OPENAI),
        "anthropic": WireProtocol(
            _anthropic, ANTHROPIC, _anthropic_native, _anthropic_counter
        ),
        "gemini": WireProtocol(_gemini, GEMINI, _gemini_native, _gemini_counter),
        "bedrock": WireProtocol(_bedrock, counter=_bedrock_counter),
        # Ingress only: OpenAI's own clusters also speak it (their wire is Chat Completions).
        "responses": WireProtocol(lambda: _OPENAI, RESPONSES, _responses_native),
    }
)

ADAPTERS: Mapping[str, Adapter] = LoadedOnUse({wire: p.adapter for wire, p in PROTOCOLS.items()})
COUNTERS: Mapping[str, TokenCounter] = LoadedOnUse(
    {wire: p.counter for wire, p in PROTOCOLS.items() if p.counter is not None}
)

#: The APIs the sidecar accepts, in the order their routes are registered.
INGRESS: tuple[IngressCodec, ...] = tuple(p.ingress for p in PROTOCOLS.values() if p.ingress is not None)


def _openai_embedder() -> Embedder:
    from astra_sidecar.sidecar.protocols.openai.embeddings import EMBEDDER

    return EMBEDDER


def _gemini_embedder() -> Embedder:
    from astra_sidecar.sidecar.protocols.gemini.embeddings import EMBEDDER

    return EMBEDDER


def _titan_embedder() -> Embedder:
    from astra_sidecar.sidecar.protocols.bedrock.embeddings import TITAN

    return TITAN


def _cohere_embedder() -> Embedder:
    from astra_sidecar.sidecar.protocols.bedrock.embeddings import COHERE

    return COHERE


#: Embedding request format (`Cluster.embedding.format`) → its embedder.
EMBEDDERS: Mapping[str, Embedder] = LoadedOnUse(
    {
        "openai": _openai_embedder,
        "gemini": _gemini_embedder,
        "titan": _titan_embedder,
        "cohere": _cohere_embedder,
    }
)


def load_cluster(cluster: Cluster) -> Adapter:
    """The adapter of `cluster`, its count API and its embedder imported with it, so that the
    request path finds them loaded."""
    COUNTERS.get(cluster.wire)
    if cluster.embedding is not None:
        EMBEDDERS.get(cluster.embedding.format)
    return ADAPTERS[cluster.wire]


#: Native paths by ingress wire format, None for an API without one (looked up on every request).
_natives: dict[str, Native | None] = {}


def _native(wire: str) -> Native | None:
    try:
        return _natives[wire]
    except KeyError:
        protocol = PROTOCOLS.get(wire)
        load = protocol.native if protocol is not None else None
        native = _natives[wire] = load() if load is not None else None
        return native


def native_path(wire: str) -> NativePath | None:
    """The native pass-through for clients of `wire`, if that API has one (imported at the
    first lookup: the API's first request)."""
    native = _native(wire)
    return native.path if native is not None else None


def serves_natively(wire: str, cluster: Cluster) -> bool:
    """Whether callers of the `wire` API reach `cluster` through their native path."""
    native = _native(wire)
    if native is None:
        return False
    if native.providers is not None:
        return cluster.provider in native.providers
    return cluster.wire == wire
