"""OpenAI-compatible ingress: `POST /v1/chat/completions` (`model` names an agent), the same under
`/v1/{openai,cerebras,vllm,ollama}/{agent}/[v1/]chat/completions` (the agent comes from the path,
for SDKs pointed at a provider-specific base URL), and `GET …/models`.

Answers carry headers that say what happened: x-astra-agent, x-astra-provider (who served),
x-astra-attempts (upstream attempts, retries and fallbacks included), x-astra-tools-removed
(request tools the policy removed), x-request-id. Errors are OpenAI's
`{"error": {"message", "type", "param", "code"}}`; a failure after streaming began is a final
`data: {"error": …}` event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from compiler.table import Agent, Cluster
from sidecar.app_keys import STATE
from sidecar.errors import ClientError
from sidecar.policy.agent import AgentPolicy, check_chat_body
from sidecar.protocols.base import AuthMaterial, Body, Failure, UpstreamRequest, Usage
from sidecar.protocols.codec import IngressCall, NativePrepared
from sidecar.serving.flow import serve
from sidecar.sse import DONE, encode_data

#: Path prefixes of OpenAI-compatible provider base URLs an SDK may be pointed at.
PROVIDER_PREFIXES = ("openai", "cerebras", "vllm", "ollama", "groq", "mistral", "grok", "openrouter")


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


class OpenAICodec:
    name = "openai"
    wire = "openai"
    native = False

    def parse(self, body: Any, route: Mapping[str, str], query: Mapping[str, str]) -> IngressCall:
        agent = route.get("agent")
        if agent is not None and isinstance(body, dict):
            body = {**body, "model": agent}
        body = check_chat_body(body)
        return IngressCall(agent_id=body["model"], body=body, stream=bool(body.get("stream")))

    def inbound(self, headers: Mapping[str, str], query: Mapping[str, str]) -> Mapping[str, str]:
        return headers

    def error_body(self, failure: Failure) -> bytes:
        return error_payload(failure)

    def stream_error(self, failure: Failure) -> bytes:
        return encode_data(error_payload(failure))

    def stream_content_type(self) -> str:
        return "text/event-stream"

    def to_openai(self, call: IngressCall) -> Body:
        return call.body

    def completion_from_openai(self, raw: bytes, call: IngressCall) -> bytes:
        return raw

    def stream_encoder(self, call: IngressCall) -> _OpenAIStream:
        return _STREAM

    def prepare_native(self, call: IngressCall, agent: Agent) -> NativePrepared:
        raise NotImplementedError("OpenAI calls go through the OpenAI adapter path")

    def native_for_cluster(
        self, prepared: NativePrepared, policy: AgentPolicy, cluster: Cluster, call: IngressCall
    ) -> Body:
        raise NotImplementedError("OpenAI calls go through the OpenAI adapter path")

    def native_request(
        self, cluster: Cluster, body: Body, auth: AuthMaterial, call: IngressCall, inbound: Mapping[str, str]
    ) -> UpstreamRequest:
        raise NotImplementedError("OpenAI calls go through the OpenAI adapter path")

    def native_usage(self, raw: bytes) -> Usage | None:
        return None


CODEC = OpenAICodec()


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await serve(request, CODEC)


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


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)
    for prefix in PROVIDER_PREFIXES:
        for version in ("", "/v1"):
            app.router.add_post(f"/v1/{prefix}/{{agent}}{version}/chat/completions", chat_completions)
            app.router.add_get(f"/v1/{prefix}/{{agent}}{version}/models", list_models)
