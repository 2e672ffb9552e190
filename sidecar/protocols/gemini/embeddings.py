"""Gemini embeddings upstream (request format `gemini`).

- AI Studio: `POST {base}/v1beta/models/{model}:batchEmbedContents` with one request per input
  (`content.parts[].text`, `outputDimensionality`, `taskType`), answered with
  `{"embeddings": [{"values": […]}]}` (https://ai.google.dev/api/embeddings). That answer has no
  token count: `usage` is then the sidecar's estimate, ceil(characters / 4) per input.
- Vertex AI (`cluster.vertex`): `POST …/publishers/google/models/{model}:predict` with
  `instances[].content` and `parameters.outputDimensionality`, answered with
  `predictions[].embeddings.values` and `statistics.token_count`
  (https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/text-embeddings-api).

Token arrays are refused before any attempt (`Cluster.embedding.tokenInput` is false).
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from astra_sidecar.compiler.table import Cluster
from astra_sidecar.sidecar.errors import UpstreamMalformedError
from astra_sidecar.sidecar.protocols.base import AuthMaterial, UpstreamRequest
from astra_sidecar.sidecar.protocols.embedding import EmbeddingCall, Embeddings, UpstreamAnswer, float_vector
from astra_sidecar.sidecar.protocols.gemini.request import auth_headers, model_url


def estimated_tokens(texts: list[str]) -> int:
    return sum(math.ceil(len(text) / 4) for text in texts)


def _url(cluster: Cluster) -> str:
    return model_url(cluster, "batchEmbedContents" if cluster.vertex is None else "predict")


def _studio_body(cluster: Cluster, call: EmbeddingCall) -> dict[str, Any]:
    requests = []
    for text in call.texts():
        entry: dict[str, Any] = {"model": f"models/{cluster.model_id.removeprefix('models/')}"}
        entry["content"] = {"parts": [{"text": text}]}
        if call.dimensions is not None:
            entry["outputDimensionality"] = call.dimensions
        if call.task_type is not None:
            entry["taskType"] = call.task_type
        requests.append(entry)
    return {"requests": requests}


def _vertex_body(call: EmbeddingCall) -> dict[str, Any]:
    instances = []
    for text in call.texts():
        instance: dict[str, Any] = {"content": text}
        if call.task_type is not None:
            instance["task_type"] = call.task_type
        instances.append(instance)
    body: dict[str, Any] = {"instances": instances}
    if call.dimensions is not None:
        body["parameters"] = {"outputDimensionality": call.dimensions}
    return body


def _malformed(cluster: Cluster, what: str) -> UpstreamMalformedError:
    return UpstreamMalformedError(what, cluster.key, cluster.provider)


class GeminiEmbedder:
    def requests(self, cluster: Cluster, call: EmbeddingCall, auth: AuthMaterial) -> list[UpstreamRequest]:
        payload = _vertex_body(call) if cluster.vertex is not None else _studio_body(cluster, call)
        headers = {"Content-Type": "application/json", **cluster.headers, **auth_headers(cluster, auth)}
        return [UpstreamRequest(url=_url(cluster), headers=headers, body=orjson.dumps(payload), stream=False)]

    def parse(self, cluster: Cluster, call: EmbeddingCall, answers: list[UpstreamAnswer]) -> Embeddings:
        try:
            data = orjson.loads(answers[0].body)
        except orjson.JSONDecodeError as exc:
            raise _malformed(cluster, "not JSON") from exc
        if not isinstance(data, dict):
            raise _malformed(cluster, "not an embeddings answer")
        if cluster.vertex is not None:
            vectors, tokens = _predictions(cluster, data)
        else:
            vectors, tokens = _studio(cluster, data), estimated_tokens(call.texts())
        if len(vectors) != len(call.inputs):
            raise _malformed(cluster, "an embeddings answer of another length")
        return Embeddings(tuple(vectors), tokens, cluster.model_id.removeprefix("models/"))


def _studio(cluster: Cluster, data: dict[str, Any]) -> list[list[float]]:
    items = data.get("embeddings")
    if not isinstance(items, list):
        raise _malformed(cluster, "no 'embeddings' list")
    vectors = [float_vector(item.get("values")) if isinstance(item, dict) else None for item in items]
    if any(v is None for v in vectors):
        raise _malformed(cluster, "an embedding without 'values'")
    return [v for v in vectors if v is not None]


def _predictions(cluster: Cluster, data: dict[str, Any]) -> tuple[list[list[float]], int]:
    items = data.get("predictions")
    if not isinstance(items, list):
        raise _malformed(cluster, "no 'predictions' list")
    vectors: list[list[float]] = []
    tokens = 0
    for item in items:
        embedding = item.get("embeddings") if isinstance(item, dict) else None
        vector = float_vector(embedding.get("values")) if isinstance(embedding, dict) else None
        if vector is None or not isinstance(embedding, dict):
            raise _malformed(cluster, "a prediction without 'embeddings.values'")
        vectors.append(vector)
        stats = embedding.get("statistics")
        count = stats.get("token_count") if isinstance(stats, dict) else None
        tokens += int(count) if isinstance(count, int | float) else 0
    return vectors, tokens


EMBEDDER = GeminiEmbedder()
