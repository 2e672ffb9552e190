"""OpenAI Responses API ingress: `POST /v1/responses` (`model` names an agent), and the same under
`/v1/{openai,cerebras,…}/{agent}/[v1/]responses` (the agent comes from the path, as on the chat
route: `sidecar/protocols/openai/ingress.py`, `PROVIDER_PREFIXES`).

Every cluster is reached through Chat Completions: the request is translated to the OpenAI chat
middle form (`request`), so the agent's policy, tool guard, context limits, retries, breakers and
fallbacks are those of the chat route, and the answer is translated back (`response`, `stream`).
There is no native pass-through: no cluster of this sidecar speaks the Responses wire format
(provider `openai` is configured by its Chat Completions endpoint), so built-in tools, stored
responses and `previous_response_id` are refused with a 400 (see `request`).

Errors are OpenAI's `{"error": {"message", "type", "param", "code"}}`, as OpenAI answers them on
this route; after streaming began, a failure is a final `response.failed` event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from astra_sidecar.sidecar.protocols.base import Body, Failure
from astra_sidecar.sidecar.protocols.codec import IngressCall, RequestSize, Route
from astra_sidecar.sidecar.protocols.openai.ingress import PROVIDER_PREFIXES, error_payload
from astra_sidecar.sidecar.protocols.responses.request import bad, chat_body, check_fields, echo_fields
from astra_sidecar.sidecar.protocols.responses.response import response_from_completion
from astra_sidecar.sidecar.protocols.responses.stream import ResponsesStreamEncoder, failure_event


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
        chat_body(agent, checked)  # every refusal before any attempt
        return IngressCall(agent_id=agent, body=checked, stream=bool(checked.get("stream")), inbound=headers)

    def error_body(self, failure: Failure) -> bytes:
        return error_payload(failure)

    def stream_error(self, failure: Failure) -> bytes:
        return failure_event(failure)

    def to_openai(self, call: IngressCall) -> Body:
        return chat_body(call.agent_id, call.body)

    def completion_from_openai(self, raw: bytes, call: IngressCall) -> bytes:
        return response_from_completion(raw, echo_fields(call.body))

    def stream_encoder(self, call: IngressCall) -> ResponsesStreamEncoder:
        return ResponsesStreamEncoder(echo_fields(call.body))

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
        routes = [Route("POST", "/v1/responses")]
        for prefix in PROVIDER_PREFIXES:
            for version in ("", "/v1"):
                routes.append(Route("POST", f"/v1/{prefix}/{{agent}}{version}/responses"))
        return routes


CODEC = ResponsesCodec()
