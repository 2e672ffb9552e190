"""OpenAI Responses API ingress: `POST /v1/responses` (`model` names an agent), and the same under
`/v1/{openai,cerebras,…}/{agent}/[v1/]responses` (the agent comes from the path, as on the chat
route: `sidecar/protocols/openai/ingress.py`, `PROVIDER_PREFIXES`); `GET` and `DELETE`
`…/responses/{response_id}` read and forget stored responses (`routes`).

On clusters of provider `openai` the request passes through natively (`native`: built-in tools
allowed, the answer relayed byte for byte). Everywhere else it is translated to the OpenAI chat
middle form (`request`, `tools`), so the agent's policy, tool guard, context limits, retries,
breakers and fallbacks are those of the chat route, and the answer is translated back
(`response`, `stream`). `previous_response_id` is the sidecar's own on both paths: its response
store (`store`, `turn`) puts the stored conversation before `input`.

Errors are OpenAI's `{"error": {"message", "type", "param", "code"}}`, as OpenAI answers them on
this route; after streaming began, a failure is a final `response.failed` event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from astra_sidecar.sidecar.protocols.base import Body, Failure
from astra_sidecar.sidecar.protocols.codec import IngressCall, RequestSize, Route
from astra_sidecar.sidecar.protocols.openai.ingress import error_payload
from astra_sidecar.sidecar.protocols.responses import ingress_routes
from astra_sidecar.sidecar.protocols.responses.native import relayed_watch
from astra_sidecar.sidecar.protocols.responses.request import bad, chat_body, check_fields, echo_fields
from astra_sidecar.sidecar.protocols.responses.response import response_from_completion
from astra_sidecar.sidecar.protocols.responses.routes import create_handler
from astra_sidecar.sidecar.protocols.responses.stream import ResponsesStreamEncoder, failure_event
from astra_sidecar.sidecar.protocols.responses.tools import tool_names
from astra_sidecar.sidecar.protocols.responses.turn import continue_from, current_turn
from astra_sidecar.sidecar.serving.flow import serve


def _echo(call: IngressCall) -> dict[str, Any]:
    turn = current_turn()
    return echo_fields(call.body, turn is not None and turn.keep)


class ResponsesCodec:
    name = "responses"
    wire = "responses"
    stream_content_type = "text/event-stream"

    def parse(
        self, body: Any, route: Mapping[str, str], query: Mapping[str, str], headers: Mapping[str, str]
    ) -> IngressCall:
        checked = check_fields(body)
        agent = route.get("agent") or checked.get("model")
        if not isinstance(agent, str) or not agent:
            raise bad("'model' must name an agent", "model", "invalid_value")
        checked["model"] = agent
        checked = continue_from(checked, current_turn())
        chat_body(agent, checked, translate=False)  # every refusal but built-in tools before any attempt
        return IngressCall(agent_id=agent, body=checked, stream=bool(checked.get("stream")), inbound=headers)

    def error_body(self, failure: Failure) -> bytes:
        return error_payload(failure)

    def stream_error(self, failure: Failure) -> bytes:
        watch = relayed_watch()
        return watch.failure_event(failure) if watch is not None else failure_event(failure)

    def to_openai(self, call: IngressCall) -> Body:
        return chat_body(call.agent_id, call.body)

    def completion_from_openai(self, raw: bytes, call: IngressCall) -> bytes:
        return response_from_completion(raw, _echo(call), tool_names(call.body.get("tools")))

    def stream_encoder(self, call: IngressCall) -> ResponsesStreamEncoder:
        turn = current_turn()
        on_done = turn.answered if turn is not None else None
        return ResponsesStreamEncoder(_echo(call), tool_names(call.body.get("tools")), on_done)

    def size(self, call: IngressCall) -> RequestSize:
        body = call.body
        items = body.get("input")
        cap = body.get("max_output_tokens")
        return RequestSize(
            conversation=items if isinstance(items, list) else [items],
            system=body.get("instructions"),
            tools=(body.get("tools"),),
            output_cap=cap if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0 else None,
        )

    def routes(self) -> Sequence[Route]:
        """Declared in `ingress_routes`, which the app registers before importing this module."""
        return ingress_routes.responses_routes()


async def _serve(request: web.Request) -> web.StreamResponse:
    return await serve(request, CODEC)


CODEC = ResponsesCodec()
#: `POST …/responses`: the request flow inside this request's store turn (`routes`).
create = create_handler(_serve)
