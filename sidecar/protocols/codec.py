"""The ingress codec protocol: one per API the sidecar accepts (OpenAI, Anthropic, Gemini).

A codec parses its API's request, answers and fails in its API's shape, and offers two paths
for each attempt of the plan:

- **native**, when the cluster speaks the ingress's own wire format (an Anthropic-SDK client
  calling an agent on `claude`): the body passes through with the agent's policy applied in
  that format (`prepare_native`, `native_for_cluster`, `native_request`), and the upstream answer
  or stream goes back to the client byte for byte;
- **translated** otherwise (an Anthropic-SDK client calling an agent on `openai`, or a fallback to
  another format): the body becomes an OpenAI request (`to_openai`), goes through the cluster's
  adapter like any OpenAI call, and the OpenAI answer or chunks come back in the ingress's format
  (`completion_from_openai`, `stream_encoder`).

The OpenAI codec has no native path of its own: OpenAI-wire clusters already pass bytes through
their adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from compiler.table import Agent, Cluster
from sidecar.policy.agent import AgentPolicy
from sidecar.protocols.base import AuthMaterial, Body, Failure, UpstreamRequest, Usage


@dataclass(frozen=True, slots=True)
class IngressCall:
    """One parsed client request. `route` holds path parameters (e.g. Gemini's model/action)."""

    agent_id: str
    body: Body
    stream: bool
    route: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NativePrepared:
    """The native body after the per-request policy (tools filtered, output capped)."""

    body: Body
    removed_tools: tuple[str, ...]


class StreamEncoder(Protocol):
    """Turns OpenAI chunk payloads (JSON bytes) into the ingress API's stream bytes."""

    def encode(self, payloads: list[bytes]) -> bytes: ...

    def close(self) -> bytes:
        """The bytes that end a complete stream (e.g. `data: [DONE]`, `message_stop`)."""
        ...


class IngressCodec(Protocol):
    name: str
    wire: str
    native: bool

    def parse(self, body: Any, route: Mapping[str, str], query: Mapping[str, str]) -> IngressCall:
        """Validate the client's body; raise `ClientError` naming the offending field."""
        ...

    def inbound(self, headers: Mapping[str, str], query: Mapping[str, str]) -> Mapping[str, str]:
        """The caller's headers as credential sources see them (e.g. Gemini's `?key=` folded in
        as `x-goog-api-key`)."""
        ...

    def error_body(self, failure: Failure) -> bytes: ...

    def stream_error(self, failure: Failure) -> bytes:
        """The final in-stream event for a failure after the first byte."""
        ...

    def stream_content_type(self) -> str: ...

    # translated path
    def to_openai(self, call: IngressCall) -> Body: ...

    def completion_from_openai(self, raw: bytes, call: IngressCall) -> bytes: ...

    def stream_encoder(self, call: IngressCall) -> StreamEncoder: ...

    # native path (only called when `native` is true and the cluster's wire equals `wire`)
    def prepare_native(self, call: IngressCall, agent: Agent) -> NativePrepared: ...

    def native_for_cluster(
        self, prepared: NativePrepared, policy: AgentPolicy, cluster: Cluster, call: IngressCall
    ) -> Body: ...

    def native_request(
        self, cluster: Cluster, body: Body, auth: AuthMaterial, call: IngressCall, inbound: Mapping[str, str]
    ) -> UpstreamRequest: ...

    def native_usage(self, raw: bytes) -> Usage | None: ...
