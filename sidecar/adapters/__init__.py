"""Adapter registry: wire format → adapter. Provider ids map to wire formats in the compiler's
registry (`compiler.providers`); the sidecar only ever looks up the wire format here."""

from __future__ import annotations

from types import MappingProxyType

from sidecar.adapters.anthropic import AnthropicAdapter
from sidecar.adapters.base import Adapter
from sidecar.adapters.bedrock import BedrockAdapter
from sidecar.adapters.gemini import GeminiAdapter
from sidecar.adapters.openai_compat import OpenAICompatAdapter

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
