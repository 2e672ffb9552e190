"""OpenAI-compatible ingress: `POST /v1/chat/completions` (`model` names an agent), the same under
`/v1/{openai,cerebras,vllm,ollama,groq,mistral,grok,openrouter}/{agent}/[v1/]chat/completions`
(the agent comes from the path, for SDKs pointed at a provider-specific base URL; the prefix is
only a label), `POST …/embeddings` for embedding agents (`embeddings`, `serving/embeddings.py`),
and `GET …/models[/{id}]` (`models`).

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

from astra_sidecar.sidecar.protocols.base import Body, Failure
from astra_sidecar.sidecar.protocols.codec import IngressCall, RequestSize, Route
from astra_sidecar.sidecar.protocols.openai.models import list_models, retrieve_model
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
    frames_openai_sse = True

    def encode(self, payloads: list[bytes]) -> bytes:
        if len(payloads) == 1:  # the usual event of a translated stream: no generator, no join
            return encode_data(payloads[0])
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
        return IngressCall(
            agent_id=body["model"], body=body, stream=bool(body.get("stream")), inbound=headers
        )

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
        roots = ["/v1"] + [
            f"/v1/{prefix}/{{agent}}{version}" for prefix in PROVIDER_PREFIXES for version in ("", "/v1")
        ]
        routes = []
        for root in roots:
            routes.append(Route("POST", f"{root}/chat/completions"))
            routes.append(Route("POST", f"{root}/embeddings", _embeddings))
            routes.append(Route("GET", f"{root}/models", list_models))
            routes.append(Route("GET", f"{root}/models/{{model}}", retrieve_model))
        return routes


CODEC = OpenAICodec()


async def _embeddings(request: web.Request) -> web.StreamResponse:
    """`POST …/embeddings`: the embeddings flow (`serving/embeddings.py`, which imports this module)."""
    from astra_sidecar.sidecar.protocols.openai.embeddings import FRONT
    from astra_sidecar.sidecar.serving.embeddings import serve_embeddings

    return await serve_embeddings(request, FRONT)
