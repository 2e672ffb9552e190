"""Gemini embeddings ingress, for apps on google-genai (`models.embed_content`) or the REST API:

- ``POST /v1/gemini/{agent}/{v1|v1beta}/models/{model}:embedContent`` — `{"content": {"parts":
  [{"text"}]}, "taskType", "outputDimensionality"}`, answered with `{"embedding": {"values"}}`;
- ``POST …/models/{model}:batchEmbedContents`` — `{"requests": [EmbedContentRequest…]}`, answered
  with `{"embeddings": [{"values"}…]}` (https://ai.google.dev/api/embeddings).

Field names are camelCase or snake_case. A content's text parts are joined by a newline; any other
part is refused. Requests of one batch must agree on `taskType` and `outputDimensionality` (one
upstream call serves them). The agent in the path decides; the path's model is not used. Any
embedding agent serves it (a Gemini cluster gets `batchEmbedContents`, others their own API).
Errors are Google's shape (`ingress_errors`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from astra_sidecar.sidecar.protocols.base import Failure
from astra_sidecar.sidecar.protocols.embedding import EmbeddingCall, Embeddings, bad_input
from astra_sidecar.sidecar.protocols.gemini.ingress import inbound_headers
from astra_sidecar.sidecar.protocols.gemini.ingress_errors import error_object

BATCH = "batchEmbedContents"
SINGLE = "embedContent"


def _field(body: Mapping[str, Any], camel: str, snake: str) -> Any:
    return body.get(camel, body.get(snake))


def _text(content: Any, where: str) -> str:
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not parts:
        raise bad_input(f"{where}.parts must be a non-empty array", f"{where}.parts")
    texts = []
    for index, part in enumerate(parts):
        text = part.get("text") if isinstance(part, dict) else None
        if not isinstance(text, str):
            raise bad_input(f"{where}.parts[{index}]: only text parts can be embedded here", f"{where}.parts")
        texts.append(text)
    joined = "\n".join(texts)
    if not joined:
        raise bad_input(f"{where} has no text", f"{where}.parts")
    return joined


def _options(request: Mapping[str, Any], where: str) -> tuple[int | None, str | None]:
    size = _field(request, "outputDimensionality", "output_dimensionality")
    if size is not None and (type(size) is not int or size < 1):
        raise bad_input(
            f"{where}outputDimensionality must be a positive integer", f"{where}outputDimensionality"
        )
    task = _field(request, "taskType", "task_type")
    if task is not None and not isinstance(task, str):
        raise bad_input(f"{where}taskType must be a string", f"{where}taskType")
    return size, task


def _requests(body: Mapping[str, Any], method: str) -> list[Mapping[str, Any]]:
    if method == SINGLE:
        return [body]
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests or not all(isinstance(r, dict) for r in requests):
        raise bad_input("requests must be a non-empty array of EmbedContentRequest objects", "requests")
    return requests


class GeminiEmbeddingFront:
    name = "gemini"

    def parse(
        self, body: Any, route: Mapping[str, str], query: Mapping[str, str], headers: Mapping[str, str]
    ) -> EmbeddingCall:
        if not isinstance(body, dict):
            raise bad_input("the request body must be a JSON object", param="")
        method = route.get("method", SINGLE)
        requests = _requests(body, method)
        options = {_options(r, "" if method == SINGLE else f"requests[{i}].") for i, r in enumerate(requests)}
        if len(options) > 1:
            raise bad_input(
                "every request of a batch must have the same taskType and outputDimensionality", "requests"
            )
        size, task = options.pop()
        where = "content" if method == SINGLE else "requests[{}].content"
        texts = tuple(_text(r.get("content"), where.format(i)) for i, r in enumerate(requests))
        return EmbeddingCall(
            agent_id=route.get("agent", ""),
            inputs=texts,
            dimensions=size,
            task_type=task,
            single=method == SINGLE,
            inbound=inbound_headers(headers, query),
        )

    def answer(self, result: Embeddings, call: EmbeddingCall) -> bytes:
        vectors = [{"values": list(vector)} for vector in result.vectors]
        if call.single:
            return orjson.dumps({"embedding": vectors[0]})
        return orjson.dumps({"embeddings": vectors})

    def error_body(self, failure: Failure) -> bytes:
        return orjson.dumps(error_object(failure))


FRONT = GeminiEmbeddingFront()


async def embed_content(request: web.Request) -> web.Response:
    from astra_sidecar.sidecar.serving.embeddings import serve_embeddings  # the flow imports the protocols

    return await serve_embeddings(request, FRONT)
