"""Responses callers on OpenAI's own clusters (provider `openai`): the body goes to
`{base_url}/responses` as it came, with the agent's policy applied (`policy_access.ACCESS`), and
the answer comes back byte for byte (`NATIVE`, a `astra_sidecar.sidecar.protocols.codec.NativePath`).
Built-in tools, `include`, `reasoning` and every other field the ingress accepts reach OpenAI
unchanged; only `previous_response_id` is the sidecar's own (its store fills `input` before:
`ingress`).

Answers are only looked at: `validate` reads the usage of a whole Response (a `failed` one is an
upstream error, anything that is not a Response is malformed); `watch` follows a stream's typed
events for its usage, a `response.failed` or `error` event, and a cut before the last event
(`response.completed`, `response.incomplete` or `response.failed`). The final Response object
is handed to the running request's store turn (`turn`). A failure after the client got the first
events (a cut, the deadline) is one more `response.failed` event, numbered after the last one
relayed (`failure_event`): the watch of the running request is found through a context variable.

Reference: https://platform.openai.com/docs/api-reference/responses,
https://platform.openai.com/docs/api-reference/responses-streaming
"""

from __future__ import annotations

import contextvars
from typing import Any

import orjson

from astra_sidecar.compiler.table import Cluster
from astra_sidecar.sidecar.errors import (
    UpstreamMalformedError,
    UpstreamStatusError,
    UpstreamStreamError,
    network_failure,
)
from astra_sidecar.sidecar.large_json import answer_json
from astra_sidecar.sidecar.protocols.base import AuthMaterial, Body, Failure, UpstreamRequest, Usage
from astra_sidecar.sidecar.protocols.codec import IngressCall, NativePath, PolicyAccess
from astra_sidecar.sidecar.protocols.openai.adapter import auth_headers
from astra_sidecar.sidecar.protocols.openai.wire import TRANSIENT_STATUSES, openai_error_type
from astra_sidecar.sidecar.protocols.responses.policy_access import ACCESS
from astra_sidecar.sidecar.protocols.responses.turn import current_turn
from astra_sidecar.sidecar.sse import SseDecoder, SseEvent, encode_event

Json = dict[str, Any]

#: The providers whose clusters serve the Responses API natively.
NATIVE_PROVIDERS = frozenset({"openai"})
_ENDS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def responses_usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    cached = (raw.get("input_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (raw.get("output_tokens_details") or {}).get("reasoning_tokens") or 0
    return Usage(
        int(raw.get("input_tokens") or 0), int(raw.get("output_tokens") or 0), int(cached), int(reasoning)
    )


def failed(error: Any, cluster: str) -> Failure:
    """The failure of a `failed` Response or an `error` event (`code` is OpenAI's string)."""
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    transient = code in ("server_error", "rate_limit_exceeded")
    status = 429 if code == "rate_limit_exceeded" else 502
    return Failure(
        status=status,
        error_type=openai_error_type(status),
        message=str(error.get("message") or f"OpenAI reported a failed response on {cluster}"),
        code=str(code) if code is not None else None,
        retryable=transient or status in TRANSIENT_STATUSES,
        breaker_counts=transient,
    )


class ResponsesStreamWatch:
    """Follows a native Responses stream as it is relayed (a `StreamWatch`)."""

    def __init__(self, cluster: Cluster) -> None:
        self.usage: Usage | None = None
        self._cluster = cluster.key
        self._decoder = SseDecoder()
        self._seen_event = False
        self._refused = False
        self._done = False
        self._sequence = -1
        self._response: Json = {}
        _CURRENT.set(self)

    @property
    def relayed(self) -> bool:
        """True once this stream's first events went to the client (its attempt won)."""
        return self._seen_event and not self._refused

    def feed(self, data: bytes) -> bool:
        first = not self._seen_event
        try:
            self._read(self._decoder.feed(data))
        except Exception:
            self._refused = first  # failed in its first events: the attempt failed, nothing relayed
            raise
        return self._seen_event

    def failure_event(self, failure: Failure) -> bytes:
        """The `response.failed` event that ends this stream after `failure`."""
        error = {"code": failure.code or failure.error_type, "message": failure.message}
        response = {**self._response, "status": "failed", "error": error}
        payload = {"type": "response.failed", "sequence_number": self._sequence + 1, "response": response}
        return b"\n" + encode_event("response.failed", orjson.dumps(payload))

    def finish(self) -> None:
        self._read(self._decoder.flush())
        if not self._done:
            raise UpstreamStreamError(
                network_failure("OpenAI stream ended before its last event"), self._cluster
            )

    def _read(self, events: list[SseEvent]) -> None:
        self._seen_event = self._seen_event or bool(events)
        for event in events:
            if self._done:
                return
            try:
                data = orjson.loads(event.data)
            except orjson.JSONDecodeError as exc:
                raise UpstreamMalformedError("an event that is not JSON", self._cluster, "openai") from exc
            if isinstance(data, dict):
                self._event(str(data.get("type") or event.event or ""), data)

    def _event(self, kind: str, data: Json) -> None:
        if isinstance(data.get("sequence_number"), int):
            self._sequence = data["sequence_number"]
        if isinstance(data.get("response"), dict):
            self._response = data["response"]
        if kind == "error":
            raise UpstreamStreamError(failed(data, self._cluster), self._cluster)
        if kind not in _ENDS:
            return
        self._done = True
        found = data.get("response")
        response: Json = found if isinstance(found, dict) else {}
        self.usage = responses_usage(response.get("usage"))
        if kind == "response.failed":
            raise UpstreamStreamError(failed(response.get("error"), self._cluster), self._cluster)
        turn = current_turn()
        if turn is not None:
            turn.answered(response)


class ResponsesNativePath:
    access: PolicyAccess = ACCESS

    def request(self, cluster: Cluster, body: Body, auth: AuthMaterial, call: IngressCall) -> UpstreamRequest:
        stream = bool(body.get("stream"))
        headers = {"Content-Type": "application/json", **cluster.headers, **auth_headers(cluster, auth)}
        if stream:
            headers["Accept"] = "text/event-stream"
        return UpstreamRequest(
            url=cluster.base_url + "/responses", headers=headers, body=orjson.dumps(body), stream=stream
        )

    def validate(self, cluster: Cluster, raw: bytes) -> Usage | None:
        try:
            answer = answer_json(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamMalformedError("not JSON", cluster.key, cluster.provider) from exc
        if (
            not isinstance(answer, dict)
            or answer.get("object") != "response"
            or not isinstance(answer.get("output"), list)
        ):
            raise UpstreamMalformedError(
                "not a Response (object 'response' with an output list)", cluster.key, cluster.provider
            )
        if answer.get("status") == "failed":
            raise UpstreamStatusError(failed(answer.get("error"), cluster.key), cluster.key)
        return responses_usage(answer.get("usage"))

    def watch(self, cluster: Cluster) -> ResponsesStreamWatch:
        return ResponsesStreamWatch(cluster)


NATIVE: NativePath = ResponsesNativePath()
_CURRENT: contextvars.ContextVar[ResponsesStreamWatch | None] = contextvars.ContextVar(
    "astra_responses_watch", default=None
)


def relayed_watch() -> ResponsesStreamWatch | None:
    """The native stream the running request is relaying, if it is one."""
    watch = _CURRENT.get()
    return watch if watch is not None and watch.relayed else None
