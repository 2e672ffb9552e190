"""Anthropic Messages ingress: apps on the official `anthropic` SDK change only their base URL, to
`http://sidecar/v1/anthropic/{agent}`.

Routes: `POST /v1/anthropic/{agent}/v1/messages` (and `…/{agent}/messages`), `GET …/v1/models`
(and `…/models`) listing the agent in Anthropic's list shape, `POST …/v1/messages/count_tokens`,
and `HEAD /v1/anthropic/{agent}[/v1]` (the probe coding agents send: 200 for a known agent, 404
otherwise); anything else under the prefix is a 404 in Anthropic's shape naming the route. The
agent comes from the path; the body's `model`, whatever it names, is ignored.

`count_tokens` (https://docs.anthropic.com/en/api/messages-count-tokens): on an agent whose
primary cluster is Anthropic's, the body (the agent's system prompt and tool policy applied, only
the fields that endpoint takes) goes to `{base_url}/v1/messages/count_tokens` once — no retry or
fallback, it is a side call — and the answer comes back byte for byte; on any other agent the
answer is `{"input_tokens": n}` with the sidecar's own estimate (`sidecar/policy/context.py`,
the one the context-window check uses).
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

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from astra_sidecar.sidecar.accesslog import AccessRecord
from astra_sidecar.sidecar.app_keys import STATE
from astra_sidecar.sidecar.errors import AstraError, ClientError, DeadlineExceededError
from astra_sidecar.sidecar.policy.context import estimate_tokens
from astra_sidecar.sidecar.protocols.anthropic.ingress_stream import AnthropicStreamEncoder
from astra_sidecar.sidecar.protocols.anthropic.ingress_translate import (
    message_from_completion,
    openai_request,
)
from astra_sidecar.sidecar.protocols.anthropic.ingress_validate import beta_flags, check_messages_body
from astra_sidecar.sidecar.protocols.anthropic.native import upstream_request
from astra_sidecar.sidecar.protocols.anthropic.policy_access import ACCESS
from astra_sidecar.sidecar.protocols.anthropic.wire import error_type
from astra_sidecar.sidecar.protocols.base import Body, Failure
from astra_sidecar.sidecar.protocols.codec import IngressCall, RequestSize, Route
from astra_sidecar.sidecar.resilience.attempt import upstream_failure
from astra_sidecar.sidecar.serving.common import read_json, request_id
from astra_sidecar.sidecar.sse import encode_event
from astra_sidecar.sidecar.upstream import AttemptTimeouts

if TYPE_CHECKING:
    from astra_sidecar.sidecar.runtime import AgentRuntime

PREFIX = "/v1/anthropic/{agent}"
_VERSIONS = ("/v1", "")
#: Everything else under the API's prefix, an empty agent included: a 404 in Anthropic's shape.
_CATCH_ALL = r"/v1/anthropic/{tail:[\s\S]*}"

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
        checked = check_messages_body(body, beta_flags(headers.get("anthropic-beta")))
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
        """Messages (served by the flow), the models list, and a catch-all 404 in this API's shape."""
        routes: list[Route] = []
        for version in _VERSIONS:
            routes.append(Route("POST", f"{PREFIX}{version}/messages"))
            routes.append(Route("POST", f"{PREFIX}{version}/messages/count_tokens", count_tokens))
            routes.append(Route("GET", f"{PREFIX}{version}/models", list_models))
            routes.append(Route("*", f"{PREFIX}{version}", probe))
        routes.append(Route("*", _CATCH_ALL, unknown_route))
        return routes

    def error_body(self, failure: Failure) -> bytes:
        return error_payload(failure)

    def stream_error(self, failure: Failure) -> bytes:
        # The leading newline ends a half-relayed line of a native stream cut mid-event, so the
        # client's SSE parser still reads `event: error`; after a whole event it is a no-op.
        return b"\n" + encode_event("error", error_payload(failure))

    def to_openai(self, call: IngressCall) -> Body:
        return openai_request(call.agent_id, call.body)

    def completion_from_openai(self, raw: bytes, call: IngressCall) -> bytes:
        return message_from_completion(raw)

    def stream_encoder(self, call: IngressCall) -> AnthropicStreamEncoder:
        return AnthropicStreamEncoder()


CODEC = AnthropicCodec()


def _not_found(message: str) -> web.Response:
    failure = ClientError(404, message, code="not_found").failure
    return web.Response(status=404, body=error_payload(failure), content_type="application/json")


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
    record = AccessRecord(
        request_id=request_id(request), route=CODEC.name, method=request.method, path=request.path,
        status=404, error_code="route_not_found",
    )  # fmt: skip
    record.emit(request.app[STATE].shared.access_sink)
    return _not_found(f"no such route: {request.method} {request.path}")


async def probe(request: web.Request) -> web.Response:
    """`HEAD /v1/anthropic/{agent}`: whether the base URL names an agent of this sidecar. Any
    other method on the bare base URL is an unknown route, in this API's shape."""
    if request.method != "HEAD":
        return await unknown_route(request)
    known = request.match_info["agent"] in request.app[STATE].runtime.agents
    return web.Response(status=200 if known else 404)


#: The fields Anthropic's count_tokens endpoint takes.
_COUNT_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers")


def _error(failure: Failure) -> web.Response:
    return web.Response(status=failure.status, body=error_payload(failure), content_type="application/json")


async def count_tokens(request: web.Request) -> web.Response:
    """`POST …/v1/messages/count_tokens` (see the module docstring)."""
    runtime = request.app[STATE].runtime
    try:
        raw = await read_json(request, runtime.table.settings.max_body_bytes)
        call = CODEC.parse(raw, request.match_info, request.query, request.headers)
        agent = runtime.agents.get(call.agent_id)
        if agent is None:
            return _not_found(f"no agent '{call.agent_id}' on this sidecar")
        if agent.plan[0].cluster.wire == CODEC.wire:
            return await _native_count(agent, call)
    except AstraError as exc:
        return _error(exc.failure)
    tokens = estimate_tokens(CODEC.size(call), agent.agent.system_prompt)
    return web.Response(body=orjson.dumps({"input_tokens": tokens}), content_type="application/json")


async def _native_count(agent: AgentRuntime, call: IngressCall) -> web.Response:
    cluster = agent.plan[0]
    prepared = agent.policy.prepare(call.body, ACCESS)
    sent = agent.policy.for_cluster(prepared, cluster.cluster, ACCESS)
    body = {key: sent[key] for key in _COUNT_FIELDS if key in sent}
    built = upstream_request(cluster.cluster, body, await cluster.credentials.material(call.inbound), call.inbound)
    built = replace(built, url=built.url + "/count_tokens", stream=False)
    t = agent.agent.timeouts
    timeouts = AttemptTimeouts(connect_s=t.connect_ms / 1000.0, idle_s=t.stream_idle_ms / 1000.0)
    try:
        async with asyncio.timeout(agent.agent.request_timeout_ms / 1000.0):
            async with cluster.transport.open(cluster.cluster, built, timeouts) as response:
                if response.status >= 300:
                    raise await upstream_failure(cluster, response, built)
                answer = await response.read()
    except TimeoutError as exc:
        raise DeadlineExceededError(agent.agent.request_timeout_ms) from exc
    return web.Response(body=answer, content_type="application/json")
