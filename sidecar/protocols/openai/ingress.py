"""OpenAI-compatible ingress: `POST /v1/chat/completions` (`model` names an agent), the same under
`/v1/{openai,cerebras,vllm,ollama,groq,mistral,grok,openrouter}/{agent}/[v1/]chat/completions`
(the agent comes from the path, for SDKs pointed at a provider-specific base URL; the prefix is
only a label), and `GET …/models`.

Answers carry headers that say what happened: x-astra-agent, x-astra-provider (who served),
x-astra-attempts (upstream attempts, retries and fallbacks included), x-astra-tools-removed
(request tools the policy removed), x-request-id. Errors are OpenAI's
`{"error": {"message", "type", "param", "code"}}`; a failure after streaming began is a final
`data: {"error": …}` event. Every cluster is reached through its adapter (OpenAI-wire clusters
pass the bytes through it), so this API has no separate native path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from aiohttp import web

from astra_sidecar.sidecar.app_keys import STATE
from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.protocols.base import Body, Failure
from astra_sidecar.sidecar.protocols.codec import IngressCall, RequestSize, Route
from astra_sidecar.sidecar.protocols.openai.validate import OUTPUT_CAPS, check_chat_body
from astra_sidecar.sidecar.sse import DONE, encode_data


def error_payload(failure: Failure) -> bytes:
    return orjson.dumps(
        {
            "error": {
                "message": failure.message,
                "type": failure.error_type,
                "param": failure.param,
                "code": failure.code,
            }
        }
    )


class _OpenAIStream:
    __slots__ = ()

    def encode(self, payloads: list[bytes]) -> bytes:
        return b"".join(encode_data(p) for p in payloads)

    def close(self) -> bytes:
        return DONE


_STREAM = _OpenAIStream()


#: Path prefixes of OpenAI-compatible provider base URLs an SDK may be pointed at (not those of
#: another API's routes: `/v1/anthropic/…` and `/v1/gemini/…` answer in their own shapes).
PROVIDER_PREFIXES = ("openai", "cerebras", "vllm", "ollama", "groq", "mistral", "grok", "openrouter")


def _requested_output(body: Body) -> int | None:
    sizes = [n for key in OUTPUT_CAPS if type(n := body.get(key)) is int and n > 0]
    return min(sizes) if sizes else None


class OpenAICodec:
    name = "openai"
    wire = "openai"
    stream_content_type = "text/event-stream"

    def parse(
        self, body: Any, route: Mapping[str, str], query: Mapping[str, str], headers: Mapping[str, str]
    ) -> IngressCall:
        agent = route.get("agent")
        if agent is not None and isinstance(body, dict):
            body = {**body, "model": agent}
        body = check_chat_body(body)
        return IngressCall(agent_id=body["model"], body=body, stream=bool(body.get("stream")), inbound=headers)

    def error_body(self, failure: Failure) -> bytes:
        return error_payload(failure)

    def stream_error(self, failure: Failure) -> bytes:
        return encode_data(error_payload(failure))

    def to_openai(self, call: IngressCall) -> Body:
        return call.body

    def completion_from_openai(self, raw: bytes, call: IngressCall) -> bytes:
        return raw

    def stream_encoder(self, call: IngressCall) -> _OpenAIStream:
        return _STREAM

    def size(self, call: IngressCall) -> RequestSize:
        body = call.body
        return RequestSize(
            conversation=body.get("messages"),
            tools=(body.get("tools"), body.get("functions")),
            output_cap=_requested_output(body),
        )

    def routes(self) -> Sequence[Route]:
        routes = [Route("POST", "/v1/chat/completions"), Route("GET", "/v1/models", list_models)]
        for prefix in PROVIDER_PREFIXES:
            for version in ("", "/v1"):
                routes.append(Route("POST", f"/v1/{prefix}/{{agent}}{version}/chat/completions"))
                routes.append(Route("GET", f"/v1/{prefix}/{{agent}}{version}/models", list_models))
        return routes


CODEC = OpenAICodec()


async def list_models(request: web.Request) -> web.Response:
    runtime = request.app[STATE].runtime
    agent = request.match_info.get("agent")
    if agent is None:
        return web.Response(body=runtime.models_body, content_type="application/json")
    if agent not in runtime.agents:
        failure = ClientError(404, f"no agent '{agent}' on this sidecar", code="model_not_found").failure
        return web.Response(status=404, body=error_payload(failure), content_type="application/json")
    owner = runtime.agents[agent].plan[0].cluster.provider
    data = [{"id": agent, "object": "model", "created": 0, "owned_by": f"astra:{owner}"}]
    return web.json_response({"object": "list", "data": data}, dumps=lambda v: orjson.dumps(v).decode())
