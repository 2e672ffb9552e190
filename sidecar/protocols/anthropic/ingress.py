"""Anthropic Messages ingress: apps on the official `anthropic` SDK change only their base URL, to
`http://sidecar/v1/anthropic/{agent}`.

Routes: `POST /v1/anthropic/{agent}/v1/messages` (and `…/{agent}/messages`), `GET …/v1/models`
(and `…/models`) listing the agent in Anthropic's list shape, `POST …/v1/messages/count_tokens`,
and `HEAD /v1/anthropic/{agent}[/v1]` (the probe coding agents send: 200 for a known agent, 404
otherwise); anything else under the prefix is a 404 in Anthropic's shape naming the route. The
agent comes from the path; the body's `model`, whatever it names, is ignored.

`count_tokens`: the agent's provider counts (Anthropic natively, Gemini and Bedrock through their
count APIs), else the sidecar's estimate (`ingress_count`). Every field of a request an agent
translates is honoured, translated or refused with a 400 naming it (`ingress_fields`); natively
the body goes to Anthropic as it came (policy applied), with the caller's `anthropic-version` and
`anthropic-beta` (`native`).
Credentials arrive as `x-api-key` or `Authorization: Bearer` (current SDKs send the latter, with
a newer `anthropic-version`); with `credentials: passthrough` that key goes to the agent's
Anthropic cluster only (see `astra_sidecar.sidecar.auth`).

Agents on `claude` are served natively (`astra_sidecar.sidecar.protocols.anthropic.native.NATIVE`): the body passes
through with the agent's policy applied, and the answer or SSE stream comes back byte for byte.
Agents on any other provider, and fallbacks to one, are translated both ways
(`astra_sidecar.sidecar.protocols.anthropic.ingress_translate`, `astra_sidecar.sidecar.protocols.anthropic.ingress_stream`). Retries, breakers and
fallbacks are the same as for every route (`astra_sidecar.sidecar.serving.flow`).

Errors are Anthropic's `{"type": "error", "error": {"type", "message"}}`, the type chosen by the
status the sidecar returns (`wire.error_type`): 400 invalid_request_error, 401
authentication_error, 402 billing_error, 403 permission_error, 404 not_found_error, 413
request_too_large, 429 rate_limit_error, 500 api_error, 503/529 overloaded_error, 504
timeout_error; any other 4xx is an invalid_request_error and any other 5xx an api_error. After the
first streamed byte, a failure is a final `event: error` with the same data (preceded by a blank
line, see `stream_error`).

The size estimate (`size`) reads `messages`, `system`, `tools` and `max_tokens`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from astra_sidecar.sidecar.accesslog import with_error_code
from astra_sidecar.sidecar.app_keys import STATE
from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.protocols.anthropic import ingress_routes
from astra_sidecar.sidecar.protocols.anthropic.ingress_count import count_route
from astra_sidecar.sidecar.protocols.anthropic.ingress_fields import check_translatable
from astra_sidecar.sidecar.protocols.anthropic.ingress_stream import AnthropicStreamEncoder
from astra_sidecar.sidecar.protocols.anthropic.ingress_translate import (
    message_from_completion,
    openai_request,
)
from astra_sidecar.sidecar.protocols.anthropic.ingress_validate import check_messages_body
from astra_sidecar.sidecar.protocols.anthropic.wire import error_type
from astra_sidecar.sidecar.protocols.base import Body, Failure
from astra_sidecar.sidecar.protocols.codec import IngressCall, RequestSize, Route
from astra_sidecar.sidecar.serving import unrouted
from astra_sidecar.sidecar.sse import encode_event

#: `created_at` for agents in the models list (they have no release date).
_EPOCH = "1970-01-01T00:00:00Z"


def error_payload(failure: Failure) -> bytes:
    return orjson.dumps(
        {"type": "error", "error": {"type": error_type(failure.status), "message": failure.message}}
    )


class AnthropicCodec:
    name = "anthropic"
    wire = "anthropic"
    stream_content_type = "text/event-stream"

    def parse(
        self,
        body: Any,
        route: Mapping[str, str],
        query: Mapping[str, str],
        headers: Mapping[str, str],
    ) -> IngressCall:
        checked = check_messages_body(body)
        return IngressCall(
            agent_id=route["agent"], body=checked, stream=bool(checked.get("stream")), inbound=headers
        )

    def size(self, call: IngressCall) -> RequestSize:
        body = call.body
        cap = body.get("max_tokens")
        return RequestSize(
            conversation=body.get("messages"),
            system=body.get("system"),
            tools=(body.get("tools"),),
            output_cap=cap if isinstance(cap, int) and not isinstance(cap, bool) else None,
        )

    def routes(self) -> list[Route]:
        """Declared in `ingress_routes`, which the app registers before importing this module."""
        return ingress_routes.anthropic_routes()

    def error_body(self, failure: Failure) -> bytes:
        return error_payload(failure)

    def stream_error(self, failure: Failure) -> bytes:
        # The leading newline ends a half-relayed line of a native stream cut mid-event, so the
        # client's SSE parser still reads `event: error`; after a whole event it is a no-op.
        return b"\n" + encode_event("error", error_payload(failure))

    def to_openai(self, call: IngressCall) -> Body:
        check_translatable(call.body)
        return openai_request(call.agent_id, call.body)

    def completion_from_openai(self, raw: bytes, call: IngressCall) -> bytes:
        return message_from_completion(raw)

    def stream_encoder(self, call: IngressCall) -> AnthropicStreamEncoder:
        return AnthropicStreamEncoder()


CODEC = AnthropicCodec()
#: `POST …/v1/messages/count_tokens` (`ingress_count`).
count_tokens = count_route(CODEC)


def _not_found(message: str) -> web.Response:
    failure = ClientError(404, message, code="not_found").failure
    return web.Response(status=404, body=error_payload(failure), content_type="application/json")


async def list_models(request: web.Request) -> web.Response:
    agent_id = request.match_info["agent"]
    runtime = request.app[STATE].runtime.agents.get(agent_id)
    if runtime is None:
        return with_error_code(_not_found(f"no agent '{agent_id}' on this sidecar"), "model_not_found")
    agent = runtime.agent
    if agent.kind != "chat":  # an embedding agent serves no Messages call: none listed
        empty = {"data": [], "has_more": False, "first_id": None, "last_id": None}
        return web.Response(body=orjson.dumps(empty), content_type="application/json")
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


#: Any other request under the prefix: 404, or 405 for a path served with another method
#: (answered in this API's shape by the app's guard).
unknown_route = unrouted.unknown_route


async def probe(request: web.Request) -> web.Response:
    """`HEAD /v1/anthropic/{agent}`: whether the base URL names an agent of this sidecar. Any
    other method on the bare base URL is an unknown route, in this API's shape."""
    if request.method != "HEAD":
        await unknown_route(request)
    if request.match_info["agent"] in request.app[STATE].runtime.agents:
        return web.Response(status=200)
    return with_error_code(web.Response(status=404), "model_not_found")
