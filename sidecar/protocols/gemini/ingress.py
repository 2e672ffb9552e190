"""Gemini `generateContent` ingress, for apps on the google-genai SDK (or Gemini's REST API):
``genai.Client(api_key=…, http_options=HttpOptions(base_url=SIDECAR + "/v1/gemini/AGENT"))``.

Routes (API version `v1`, google-genai's default, or `v1beta`):

- ``POST /v1/gemini/{agent}/{v1|v1beta}/models/{model}:generateContent``
- ``POST /v1/gemini/{agent}/{v1|v1beta}/models/{model}:streamGenerateContent?alt=sse``; without
  ``alt=sse`` (Google's JSON-array stream) the answer is a 400 naming `alt`.
- ``GET  /v1/gemini/{agent}/{v1|v1beta}/models[/{model}]``: the agent, as a Gemini `Model`.
- ``POST …/models/{model}:countTokens``: the provider's count, or the estimate (`ingress_count`).
- ``POST …/models/{model}:embedContent`` and ``:batchEmbedContents`` on embedding agents
  (`embeddings_ingress`).
- anything else under ``/v1/gemini/``: 404 (405 for a known path), in Google's error shape.

The agent in the path decides everything: the model named in the path is not used (the
agent's cluster model answers, and `modelVersion` says which). The caller's key comes as
``x-goog-api-key`` or ``?key=`` (folded into ``x-goog-api-key`` for `credentials: passthrough`
and the sidecar's inbound token); it is only ever sent to a Gemini cluster in passthrough mode.

Clusters that speak Gemini get the request natively (`native`, the policy applied through
`policy_access`), and their answer or stream goes back byte for byte; any other cluster (the
agent's own, or a fallback) gets it translated to OpenAI (`ingress_translate`) and the answer
translated back (`ingress_response`, `ingress_stream`). Bodies are read by `ingress_request`
(camelCase or snake_case field names); the model routes are `ingress_models`.

Errors are Google's `{"error": {"code", "message", "status", "details"}}` (`ingress_errors`).
After streaming began, a failure is a final ``data: {"error": …}`` event.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.protocols.base import Body, Failure
from astra_sidecar.sidecar.protocols.codec import IngressCall, RequestSize, Route
from astra_sidecar.sidecar.protocols.gemini import ingress_routes
from astra_sidecar.sidecar.protocols.gemini.ingress_count import count_route
from astra_sidecar.sidecar.protocols.gemini.ingress_errors import error_object
from astra_sidecar.sidecar.protocols.gemini.ingress_request import parse_request
from astra_sidecar.sidecar.protocols.gemini.ingress_response import response_from_openai
from astra_sidecar.sidecar.protocols.gemini.ingress_stream import GeminiStreamEncoder, encode_event
from astra_sidecar.sidecar.protocols.gemini.ingress_translate import shows_thoughts, to_openai_body
from astra_sidecar.sidecar.protocols.gemini.wire import GENERATE_METHODS
from astra_sidecar.sidecar.serving import unrouted

_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


def _target(route: Mapping[str, str]) -> tuple[str, str]:
    """(model, method) from the `{model}:{method}` path segment; 404 for other methods."""
    target = route.get("target", "")
    model, _, method = target.rpartition(":")
    if not model or method not in GENERATE_METHODS:
        raise ClientError(
            404,
            f"'models/{target}' is not served here: the sidecar answers generateContent, "
            "streamGenerateContent and countTokens (embedContent on embedding agents)",
            code="method_not_found",
        )
    return model, method


def inbound_headers(headers: Mapping[str, str], query: Mapping[str, str]) -> Mapping[str, str]:
    """The caller's headers as credential sources see them: `?key=` folded in as
    `x-goog-api-key` (a key in the header wins)."""
    key = query.get("key")
    if not key or headers.get("x-goog-api-key"):
        return headers
    merged = CIMultiDict(headers)
    merged["x-goog-api-key"] = key
    return CIMultiDictProxy(merged)


def _output_cap(body: Body) -> int | None:
    """The caller's `maxOutputTokens`, when it is a positive integer."""
    config = body.get("generationConfig")
    cap = config.get("maxOutputTokens") if isinstance(config, dict) else None
    return cap if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0 else None


class GeminiCodec:
    name = "gemini"
    wire = "gemini"
    stream_content_type: str = "text/event-stream"

    def parse(
        self,
        body: Any,
        route: Mapping[str, str],
        query: Mapping[str, str],
        headers: Mapping[str, str] = _NO_HEADERS,
    ) -> IngressCall:
        model, method = _target(route)
        stream = method == "streamGenerateContent"
        if stream and query.get("alt") != "sse":
            raise ClientError(
                400, "streamGenerateContent is served as server-sent events only: add ?alt=sse", param="alt"
            )
        agent = route.get("agent", "")
        info = {"agent": agent, "model": model, "method": method, "version": route.get("version", "")}
        return IngressCall(
            agent_id=agent,
            body=parse_request(body),
            stream=stream,
            route=info,
            inbound=inbound_headers(headers, query),
        )

    def error_body(self, failure: Failure) -> bytes:
        return orjson.dumps(error_object(failure))

    def stream_error(self, failure: Failure) -> bytes:
        return encode_event(error_object(failure))

    def to_openai(self, call: IngressCall) -> Body:
        return to_openai_body(call.body, call.agent_id, call.stream)

    def completion_from_openai(self, raw: bytes, call: IngressCall) -> bytes:
        return response_from_openai(raw, shows_thoughts(call.body))

    def stream_encoder(self, call: IngressCall) -> GeminiStreamEncoder:
        return GeminiStreamEncoder(shows_thoughts(call.body))

    def size(self, call: IngressCall) -> RequestSize:
        body = call.body
        return RequestSize(
            conversation=body.get("contents"),
            system=body.get("systemInstruction"),
            tools=(body.get("tools"),),
            output_cap=_output_cap(body),
        )

    def routes(self) -> list[Route]:
        """Declared in `ingress_routes`, which the app registers before importing this module."""
        return ingress_routes.gemini_routes()


CODEC = GeminiCodec()
#: `POST …/models/{model}:countTokens` (`ingress_count`).
count_tokens = count_route(CODEC, inbound_headers)


#: Any other request under ``/v1/gemini/``: 404, or 405 for a path served with another method,
#: answered in Google's shape by the app's guard.
unknown_route = unrouted.unknown_route
