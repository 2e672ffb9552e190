"""Gemini `generateContent` ingress, for apps on the google-genai SDK (or Gemini's REST API):
``genai.Client(api_key=…, http_options=HttpOptions(base_url=SIDECAR + "/v1/gemini/AGENT"))``.

Routes (API version `v1`, google-genai's default, or `v1beta`):

- ``POST /v1/gemini/{agent}/{v1|v1beta}/models/{model}:generateContent``
- ``POST /v1/gemini/{agent}/{v1|v1beta}/models/{model}:streamGenerateContent?alt=sse``; without
  ``alt=sse`` (Google's JSON-array stream) the answer is a 400 naming `alt`.
- ``GET  /v1/gemini/{agent}/{v1|v1beta}/models[/{model}]``: the agent, as a Gemini `Model`.

The agent in the path decides everything: the model named in the path is not used (the
agent's cluster model answers, and `modelVersion` says which). The caller's key comes as
``x-goog-api-key`` or ``?key=`` (folded into ``x-goog-api-key`` for `credentials: passthrough`
and the sidecar's inbound token); it is only ever sent to a Gemini cluster in passthrough mode.

Clusters that speak Gemini get the request natively (`gemini_native`), and their answer or
stream goes back byte for byte; any other cluster (the agent's own, or a fallback) gets it
translated to OpenAI (`gemini_translate`) and the answer translated back (`gemini_response`,
`gemini_stream`). Bodies are read by `gemini_request` (camelCase or snake_case field names).

Errors are Google's `{"error": {"code", "message", "status", "details"}}`: `status` is the
upstream Gemini RPC status when there is one, else the one for the HTTP status (400
INVALID_ARGUMENT, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 NOT_FOUND, 429
RESOURCE_EXHAUSTED, 500 INTERNAL, 502/503 UNAVAILABLE, 504 DEADLINE_EXCEEDED). `details` carry the
sidecar's own error code (`ErrorInfo.reason`, domain ``astra-sidecar``), the offending field
(`BadRequest.fieldViolations`) and the retry hint (`RetryInfo.retryDelay`). After streaming
began, a failure is a final ``data: {"error": …}`` event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from compiler.table import Agent, Cluster
from sidecar.app_keys import STATE
from sidecar.errors import ClientError
from sidecar.policy.agent import AgentPolicy
from sidecar.protocols.base import AuthMaterial, Body, Failure, UpstreamRequest, Usage
from sidecar.protocols.codec import IngressCall, NativePrepared
from sidecar.protocols.gemini import native as gemini_native
from sidecar.protocols.gemini.ingress_request import parse_request
from sidecar.protocols.gemini.ingress_response import response_from_openai
from sidecar.protocols.gemini.ingress_stream import GeminiStreamEncoder, encode_event
from sidecar.protocols.gemini.ingress_translate import to_openai_body
from sidecar.runtime import AgentRuntime
from sidecar.serving.flow import error_response, serve

_METHODS = ("generateContent", "streamGenerateContent")
_RPC_TYPE = "type.googleapis.com/google.rpc."
_ERROR_DOMAIN = "astra-sidecar"
_RPC_BY_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
#: Google's canonical RPC status names (an upstream Gemini failure's `code` is one of them).
RPC_STATUSES = frozenset(
    {
        *_RPC_BY_STATUS.values(),
        "FAILED_PRECONDITION",
        "OUT_OF_RANGE",
        "ALREADY_EXISTS",
        "UNKNOWN",
        "DATA_LOSS",
    }
)


# --- errors ---------------------------------------------------------------------------------------


def rpc_status(failure: Failure) -> str:
    if failure.code in RPC_STATUSES:
        return str(failure.code)
    return _RPC_BY_STATUS.get(failure.status, "INVALID_ARGUMENT" if failure.status < 500 else "INTERNAL")


def _details(failure: Failure) -> list[dict[str, Any]]:
    details: list[dict[str, Any]] = []
    if failure.code and failure.code not in RPC_STATUSES and not failure.code.isdigit():
        details.append({"@type": _RPC_TYPE + "ErrorInfo", "reason": failure.code, "domain": _ERROR_DOMAIN})
    if failure.param:
        violation = {"field": failure.param, "description": failure.message}
        details.append({"@type": _RPC_TYPE + "BadRequest", "fieldViolations": [violation]})
    if failure.retry_after_s is not None:
        details.append({"@type": _RPC_TYPE + "RetryInfo", "retryDelay": f"{failure.retry_after_s:g}s"})
    return details


def error_object(failure: Failure) -> dict[str, Any]:
    """Google's RPC status body for a failure."""
    error: dict[str, Any] = {
        "code": failure.status,
        "message": failure.message,
        "status": rpc_status(failure),
    }
    details = _details(failure)
    if details:
        error["details"] = details
    return {"error": error}


# --- the codec ------------------------------------------------------------------------------------


def _target(route: Mapping[str, str]) -> tuple[str, str]:
    """(model, method) from the `{model}:{method}` path segment; 404 for other methods."""
    target = route.get("target", "")
    model, _, method = target.rpartition(":")
    if not model or method not in _METHODS:
        raise ClientError(
            404,
            f"'models/{target}' is not served here: the sidecar answers generateContent and "
            "streamGenerateContent",
            code="method_not_found",
        )
    return model, method


class GeminiCodec:
    name = "gemini"
    wire = "gemini"
    native = True

    def parse(self, body: Any, route: Mapping[str, str], query: Mapping[str, str]) -> IngressCall:
        model, method = _target(route)
        stream = method == "streamGenerateContent"
        if stream and query.get("alt") != "sse":
            raise ClientError(
                400, "streamGenerateContent is served as server-sent events only: add ?alt=sse", param="alt"
            )
        agent = route.get("agent", "")
        info = {"agent": agent, "model": model, "method": method, "version": route.get("version", "")}
        return IngressCall(agent_id=agent, body=parse_request(body), stream=stream, route=info)

    def inbound(self, headers: Mapping[str, str], query: Mapping[str, str]) -> Mapping[str, str]:
        key = query.get("key")
        if not key or headers.get("x-goog-api-key"):
            return headers
        merged = CIMultiDict(headers)
        merged["x-goog-api-key"] = key
        return CIMultiDictProxy(merged)

    def error_body(self, failure: Failure) -> bytes:
        return orjson.dumps(error_object(failure))

    def stream_error(self, failure: Failure) -> bytes:
        return encode_event(error_object(failure))

    def stream_content_type(self) -> str:
        return "text/event-stream"

    def to_openai(self, call: IngressCall) -> Body:
        return to_openai_body(call.body, call.agent_id, call.stream)

    def completion_from_openai(self, raw: bytes, call: IngressCall) -> bytes:
        return response_from_openai(raw)

    def stream_encoder(self, call: IngressCall) -> GeminiStreamEncoder:
        return GeminiStreamEncoder()

    def prepare_native(self, call: IngressCall, agent: Agent) -> NativePrepared:
        return gemini_native.prepare(call.body, agent)

    def native_for_cluster(
        self, prepared: NativePrepared, policy: AgentPolicy, cluster: Cluster, call: IngressCall
    ) -> Body:
        return gemini_native.for_cluster(prepared, policy, cluster)

    def native_request(
        self, cluster: Cluster, body: Body, auth: AuthMaterial, call: IngressCall, inbound: Mapping[str, str]
    ) -> UpstreamRequest:
        return gemini_native.request(cluster, body, auth, stream=call.stream)

    def native_usage(self, raw: bytes) -> Usage | None:
        return gemini_native.usage(raw)


CODEC = GeminiCodec()


# --- routes ---------------------------------------------------------------------------------------


async def generate_content(request: web.Request) -> web.StreamResponse:
    return await serve(request, CODEC)


def _model_resource(name: str, agent: AgentRuntime) -> dict[str, Any]:
    spec = agent.agent
    provider = agent.plan[0].cluster.provider
    resource: dict[str, Any] = {
        "name": f"models/{name}",
        "baseModelId": spec.id,
        "version": "astra",
        "displayName": spec.display_name or spec.id,
        "description": f"astra agent '{spec.id}' (served by {provider})",
        "supportedGenerationMethods": list(_METHODS),
    }
    if spec.max_context_tokens is not None:
        resource["inputTokenLimit"] = spec.max_context_tokens
    if spec.max_output_tokens is not None:
        resource["outputTokenLimit"] = spec.max_output_tokens
    return resource


def _agent_or_404(request: web.Request) -> AgentRuntime | web.Response:
    agent_id = request.match_info["agent"]
    agent = request.app[STATE].runtime.agents.get(agent_id)
    if agent is None:
        failure = ClientError(404, f"no agent '{agent_id}' on this sidecar", code="model_not_found").failure
        return error_response(CODEC, failure)
    return agent


def _json(payload: dict[str, Any]) -> web.Response:
    return web.Response(body=orjson.dumps(payload), content_type="application/json")


async def get_model(request: web.Request) -> web.Response:
    agent = _agent_or_404(request)
    if isinstance(agent, web.Response):
        return agent
    return _json(_model_resource(request.match_info["model"], agent))


async def list_models(request: web.Request) -> web.Response:
    agent = _agent_or_404(request)
    if isinstance(agent, web.Response):
        return agent
    return _json({"models": [_model_resource(agent.agent.id, agent)]})


def add_routes(app: web.Application) -> None:
    """Registers this ingress's routes on the sidecar app."""
    base = "/v1/gemini/{agent}/{version:v1beta|v1}/models"
    app.router.add_post(base + "/{target}", generate_content)
    app.router.add_get(base + "/{model}", get_model)
    app.router.add_get(base, list_models)
