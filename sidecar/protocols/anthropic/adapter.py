"""Anthropic Messages API adapter (provider `claude`, wire `anthropic`): OpenAI-format callers on
Anthropic clusters (`astra_sidecar.sidecar.protocols.base.Adapter`).

Each step lives in its own module, with the quirks it handles in its docstring:

- the request: `upstream_request` (envelope, sampling, JSON schema), `upstream_messages` (system
  and turns), `upstream_tools` (tools, tool_choice, JSON-mode emulation), `wire` (URL, headers);
- the whole answer: `upstream_response`;
- the stream: `upstream_stream` (`AnthropicStreamTranslator`), reading `upstream_events`;
- errors: `upstream_errors`.

Mappings shared with the Anthropic ingress (stop reasons, error types, usage) are in `wire`.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from astra_sidecar.compiler.table import Agent, Cluster
from astra_sidecar.sidecar.protocols.anthropic.upstream_errors import classify_raw
from astra_sidecar.sidecar.protocols.anthropic.upstream_request import messages_body
from astra_sidecar.sidecar.protocols.anthropic.upstream_response import parse_message
from astra_sidecar.sidecar.protocols.anthropic.upstream_stream import AnthropicStreamTranslator
from astra_sidecar.sidecar.protocols.anthropic.wire import messages_url, request_headers
from astra_sidecar.sidecar.protocols.base import AuthMaterial, Body, Completion, Failure, UpstreamRequest


class AnthropicAdapter:
    """The `anthropic` wire format for OpenAI chat bodies."""

    def build_request(
        self, cluster: Cluster, agent: Agent, body: Body, auth: AuthMaterial
    ) -> UpstreamRequest:
        payload = messages_body(cluster, agent, body)
        return UpstreamRequest(
            url=messages_url(cluster),
            headers=request_headers(cluster, auth),
            body=orjson.dumps(payload),
            stream=bool(payload.get("stream")),
        )

    def parse_response(self, cluster: Cluster, request: Body, raw: bytes) -> Completion:
        return parse_message(cluster, request, raw)

    def stream_translator(self, cluster: Cluster, request: Body) -> AnthropicStreamTranslator:
        return AnthropicStreamTranslator(cluster, request)

    def classify_error(
        self, cluster: Cluster, status: int, headers: Mapping[str, str], raw: bytes
    ) -> Failure:
        del cluster
        return classify_raw(status, headers, raw)
