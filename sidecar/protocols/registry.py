"""Adapter registry: wire format → adapter. Provider ids map to wire formats in the compiler's
registry (`compiler.providers`); the sidecar only ever looks up the wire format here."""

from __future__ import annotations

from types import MappingProxyType

from sidecar.protocols.anthropic.adapter import AnthropicAdapter
from sidecar.protocols.base import Adapter
from sidecar.protocols.bedrock import BedrockAdapter
from sidecar.protocols.gemini import GeminiAdapter
from sidecar.protocols.openai.adapter import OpenAICompatAdapter

_OPENAI = OpenAICompatAdapter()

ADAPTERS: MappingProxyType[str, Adapter] = MappingProxyType(
    {
        "openai": _OPENAI,
        "mock": _OPENAI,
        "anthropic": AnthropicAdapter(),
        "gemini": GeminiAdapter(),
        "bedrock": BedrockAdapter(),
    }
)
