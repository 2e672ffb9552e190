"""Anthropic Messages callers on Anthropic clusters: the body goes upstream as it came, with the
agent's policy applied (`policy_access.ACCESS`), and the answer comes back byte for byte
(`NATIVE`, a `astra_sidecar.sidecar.protocols.codec.NativePath`).

Upstream (`request`): `{base_url}/v1/messages` with the cluster's auth and headers (see
`astra_sidecar.sidecar.protocols.anthropic.wire`), the caller's `anthropic-version` when it sent one and its
`anthropic-beta` flags (added to the cluster's own). No other caller header is forwarded.

Answers are only looked at: `validate` reads the usage of a whole Message (an error object in a
200 is an upstream error, anything else that is not a Message is malformed); `watch` follows a
stream's events for its usage, an `event: error`, and a cut before `message_stop`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from astra_sidecar.compiler.table import Cluster
from astra_sidecar.sidecar.protocols.anthropic.policy_access import ACCESS
from astra_sidecar.sidecar.protocols.anthropic.upstream_events import (
    UsageTally,
    error_event,
    named_events,
    stream_cut,
)
from astra_sidecar.sidecar.protocols.anthropic.upstream_response import load_answer, malformed
from astra_sidecar.sidecar.protocols.anthropic.wire import messages_url, request_headers, usage_from
from astra_sidecar.sidecar.protocols.base import AuthMaterial, Body, UpstreamRequest, Usage
from astra_sidecar.sidecar.protocols.codec import IngressCall, NativePath, PolicyAccess
from astra_sidecar.sidecar.sse import SseDecoder, SseEvent

Json = dict[str, Any]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value.strip() if value and value.strip() else None


def _merged_betas(own: str | None, caller: str) -> str:
    flags: list[str] = []
    for flag in f"{own or ''},{caller}".split(","):
        if flag.strip() and flag.strip() not in flags:
            flags.append(flag.strip())
    return ",".join(flags)


def upstream_request(
    cluster: Cluster, body: Body, auth: AuthMaterial, inbound: Mapping[str, str]
) -> UpstreamRequest:
    headers = request_headers(cluster, auth)
    version = _header(inbound, "anthropic-version")
    if version is not None:
        headers["anthropic-version"] = version
    beta = _header(inbound, "anthropic-beta")
    if beta is not None:
        headers["anthropic-beta"] = _merged_betas(headers.get("anthropic-beta"), beta)
    return UpstreamRequest(
        url=messages_url(cluster),
        headers=headers,
        body=orjson.dumps(body),
        stream=bool(body.get("stream")),
    )


class AnthropicStreamWatch:
    """Follows a native stream as it is relayed (a `StreamWatch`): usage, errors, the end."""

    def __init__(self, cluster: Cluster) -> None:
        self.usage: Usage | None = None
        self._cluster = cluster.key
        self._decoder = SseDecoder()
        self._tally = UsageTally()
        self._seen_event = False
        self._done = False

    def feed(self, data: bytes) -> bool:
        self._read(self._decoder.feed(data))
        return self._seen_event

    def finish(self) -> None:
        self._read(self._decoder.flush())
        if not self._done:
            raise stream_cut(self._cluster)

    def _read(self, events: list[SseEvent]) -> None:
        self._seen_event = self._seen_event or bool(events)
        if self._done:
            return
        for name, data in named_events(events, self._cluster):
            self._event(name, data)
            if self._done:
                return

    def _event(self, name: str, data: Json) -> None:
        if name == "message_start":
            message = data.get("message")
            self._count(message.get("usage") if isinstance(message, dict) else None)
        elif name == "message_delta":
            self._count(data.get("usage"))
        elif name == "message_stop":
            self._done = True
            self.usage = self._tally.total()
        elif name == "error":
            raise error_event(data, self._cluster)

    def _count(self, raw: Any) -> None:
        if self._tally.add(raw):
            self.usage = self._tally.total()


class AnthropicNativePath:
    access: PolicyAccess = ACCESS

    def request(self, cluster: Cluster, body: Body, auth: AuthMaterial, call: IngressCall) -> UpstreamRequest:
        return upstream_request(cluster, body, auth, call.inbound)

    def validate(self, cluster: Cluster, raw: bytes) -> Usage | None:
        message = load_answer(cluster, raw)
        if message.get("type") != "message" or not isinstance(message.get("content"), list):
            raise malformed(cluster, "not a Message (type 'message' with a content list)")
        found = message.get("usage")
        return usage_from(found) if isinstance(found, dict) else None

    def watch(self, cluster: Cluster) -> AnthropicStreamWatch:
        return AnthropicStreamWatch(cluster)


NATIVE: NativePath = AnthropicNativePath()
