"""Anthropic Messages ingress: apps on the official `anthropic` SDK change only their base URL, to
`http://sidecar/v1/anthropic/{agent}`.

Routes: `POST /v1/anthropic/{agent}/v1/messages` (and `…/{agent}/messages`), `GET …/v1/models`
(and `…/models`) listing the agent in Anthropic's list shape; anything else under the prefix is a
404 in Anthropic's shape. The agent comes from the path; the body's `model` is ignored.
Credentials arrive as `x-api-key` or `Authorization: Bearer` (current SDKs send the latter, with
a newer `anthropic-version`); with `credentials: passthrough` that key goes to the agent's
Anthropic cluster only (see `sidecar.auth`).

Agents on `claude` are served natively (`sidecar.protocols.anthropic.native`): the body passes
through with the agent's policy applied, and the answer or SSE stream comes back byte for byte.
Agents on any other provider, and fallbacks to one, are translated both ways
(`sidecar.protocols.anthropic.ingress_translate`, `sidecar.protocols.anthropic.ingress_stream`). Retries, breakers and
fallbacks are the same as for every route (`sidecar.serving.flow`).

Errors are Anthropic's `{"type": "error", "error": {"type", "message"}}`, the type chosen by the
status the sidecar returns: 400 invalid_request_error, 401 authentication_error, 402
billing_error, 403 permission_error, 404 not_found_error, 413 request_too_large, 429
rate_limit_error, 500 api_error, 503/529 overloaded_error, 504 timeout_error; any other 4xx is an
invalid_request_error and any other 5xx an api_error. After the first streamed byte, a failure is
a final `event: error` with the same data (preceded by a blank line, see `stream_error`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from compiler.table import Agent, Cluster
from sidecar.app_keys import STATE
from sidecar.errors import ClientError
from sidecar.policy.agent import AgentPolicy
from sidecar.protocols.anthropic import native
from sidecar.protocols.anthropic.ingress_stream import AnthropicStreamEncoder
from sidecar.protocols.anthropic.ingress_translate import message_from_completion, openai_request
from sidecar.protocols.anthropic.ingress_validate import check_messages_body
from sidecar.protocols.base import AuthMaterial, Body, Failure, UpstreamRequest, Usage
from sidecar.protocols.codec import IngressCall, NativePrepared
from sidecar.serving.flow import error_response, serve
from sidecar.sse import encode_event

PREFIX = "/v1/anthropic/{agent}"

ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

#: `created_at` for agents in the models list (they have no release date).
_EPOCH = "1970-01-01T00:00:00Z"


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")


def error_payload(failure: Failure) -> bytes:
    return orjson.dumps(
        {"type": "error", "error": {"type": error_type(failure.status), "message": failure.message}}
    )


class AnthropicCodec:
    name = "anthropic"
    wire = "anthropic"
    native = True

    def parse(self, body: Any, route: Mapping[str, str], query: Mapping[str, str]) -> IngressCall:
        checked = check_messages_body(body)
        return IngressCall(agent_id=route["agent"], body=checked, stream=bool(checked.get("stream")))

    def inbound(self, headers: Mapping[str, str], query: Mapping[str, str]) -> Mapping[str, str]:
        return headers

    def error_body(self, failure: Failure) -> bytes:
        return error_payload(failure)

    def stream_error(self, failure: Failure) -> bytes:
        # The leading newline ends a half-relayed line of a native stream cut mid-event, so the
        # client's SSE parser still reads `event: error`; after a whole event it is a no-op.
        return b"\n" + encode_event("error", error_payload(failure))

    def stream_content_type(self) -> str:
        return "text/event-stream"

    def to_openai(self, call: IngressCall) -> Body:
        return openai_request(call.agent_id, call.body)

    def completion_from_openai(self, raw: bytes, call: IngressCall) -> bytes:
        return message_from_completion(raw)

    def stream_encoder(self, call: IngressCall) -> AnthropicStreamEncoder:
        return AnthropicStreamEncoder()

    def prepare_native(self, call: IngressCall, agent: Agent) -> NativePrepared:
        return native.prepare(call.body, agent)

    def native_for_cluster(
        self, prepared: NativePrepared, policy: AgentPolicy, cluster: Cluster, call: IngressCall
    ) -> Body:
        return native.for_cluster(prepared, policy, cluster)

    def native_request(
        self, cluster: Cluster, body: Body, auth: AuthMaterial, call: IngressCall, inbound: Mapping[str, str]
    ) -> UpstreamRequest:
        return native.upstream_request(cluster, body, auth, inbound)

    def native_usage(self, raw: bytes) -> Usage | None:
        return native.usage(raw)


CODEC = AnthropicCodec()


async def messages(request: web.Request) -> web.StreamResponse:
    return await serve(request, CODEC)


def _not_found(message: str) -> web.Response:
    return error_response(CODEC, ClientError(404, message, code="not_found").failure)


async def list_models(request: web.Request) -> web.Response:
    agent_id = request.match_info["agent"]
    runtime = request.app[STATE].runtime.agents.get(agent_id)
    if runtime is None:
        return _not_found(f"no agent '{agent_id}' on this sidecar")
    agent = runtime.agent
    info: dict[str, Any] = {
        "type": "model",
        "id": agent.id,
        "display_name": agent.display_name or agent.id,
        "created_at": _EPOCH,
        "lifecycle": "active",
        "max_input_tokens": agent.max_context_tokens,
        "max_tokens": agent.max_output_tokens,
    }
    body = {"data": [info], "has_more": False, "first_id": agent.id, "last_id": agent.id}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def unknown_route(request: web.Request) -> web.Response:
    return _not_found(f"no such route: {request.method} {request.path}")


def add_routes(app: web.Application) -> None:
    """Registers this ingress's routes on the sidecar app."""
    for version in ("/v1", ""):
        app.router.add_post(f"{PREFIX}{version}/messages", messages)
        app.router.add_get(f"{PREFIX}{version}/models", list_models)
    app.router.add_route("*", PREFIX + "/{tail:.*}", unknown_route)
