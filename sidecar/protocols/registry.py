"""The protocol registry: wire format → what the sidecar has for it.

Each wire format has a folder here with its upstream adapter (`base.Adapter`), and, when clients
may call the sidecar in that API, its ingress codec and optional native pass-through
(`codec.IngressCodec`, `codec.NativePath`). Provider ids map to wire formats in the compiler's
registry (`compiler/providers.py`, copied into each cluster of the table); the sidecar only ever
looks up the wire format here. A new wire format is one folder and one line below.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from astra_sidecar.compiler.table import Cluster
from astra_sidecar.sidecar.protocols.anthropic import ingress as anthropic_ingress
from astra_sidecar.sidecar.protocols.anthropic import native as anthropic_native
from astra_sidecar.sidecar.protocols.anthropic.adapter import AnthropicAdapter
from astra_sidecar.sidecar.protocols.base import Adapter
from astra_sidecar.sidecar.protocols.bedrock import BedrockAdapter
from astra_sidecar.sidecar.protocols.codec import IngressCodec, NativePath
from astra_sidecar.sidecar.protocols.gemini import GeminiAdapter
from astra_sidecar.sidecar.protocols.gemini import ingress as gemini_ingress
from astra_sidecar.sidecar.protocols.gemini import native as gemini_native
from astra_sidecar.sidecar.protocols.openai import ingress as openai_ingress
from astra_sidecar.sidecar.protocols.openai.adapter import OpenAICompatAdapter
from astra_sidecar.sidecar.protocols.responses import ingress as responses_ingress
from astra_sidecar.sidecar.protocols.responses import native as responses_native


@dataclass(frozen=True, slots=True)
class WireProtocol:
    adapter: Adapter
    ingress: IngressCodec | None = None
    native: NativePath | None = None
    #: When set, the native path serves clusters of these providers (of any wire format) instead
    #: of the clusters of this wire format.
    native_providers: frozenset[str] | None = None


_OPENAI = OpenAICompatAdapter()

PROTOCOLS: Mapping[str, WireProtocol] = MappingProxyType(
    {
        "openai": WireProtocol(_OPENAI, openai_ingress.CODEC),
        "mock": WireProtocol(_OPENAI),
        "anthropic": WireProtocol(AnthropicAdapter(), anthropic_ingress.CODEC, anthropic_native.NATIVE),
        "gemini": WireProtocol(GeminiAdapter(), gemini_ingress.CODEC, gemini_native.NATIVE),
        "bedrock": WireProtocol(BedrockAdapter()),
        # Ingress only: OpenAI's own clusters also speak it (their wire is Chat Completions).
        "responses": WireProtocol(
            _OPENAI, responses_ingress.CODEC, responses_native.NATIVE, responses_native.NATIVE_PROVIDERS
        ),
    }
)

ADAPTERS: Mapping[str, Adapter] = MappingProxyType({wire: p.adapter for wire, p in PROTOCOLS.items()})

#: The APIs the sidecar accepts, in the order their routes are registered.
INGRESS: tuple[IngressCodec, ...] = tuple(p.ingress for p in PROTOCOLS.values() if p.ingress is not None)


def native_path(wire: str) -> NativePath | None:
    """The native pass-through for clients of `wire`, if that API has one."""
    protocol = PROTOCOLS.get(wire)
    return protocol.native if protocol is not None else None


def serves_natively(wire: str, cluster: Cluster) -> bool:
    """Whether callers of the `wire` API reach `cluster` through their native path."""
    protocol = PROTOCOLS.get(wire)
    if protocol is None or protocol.native is None:
        return False
    if protocol.native_providers is not None:
        return cluster.provider in protocol.native_providers
    return cluster.wire == wire
