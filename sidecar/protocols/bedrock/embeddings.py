"""Bedrock embeddings through InvokeModel (`POST {base}/model/{modelId}/invoke`, SigV4 as Converse).

- **Titan Text Embeddings** (request format `titan`, e.g. `amazon.titan-embed-text-v2:0`): one
  call per input, `{"inputText", "dimensions"}`, answered with `{"embedding": […],
  "inputTextTokenCount": n}`
  (https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html).
- **Cohere Embed** (`cohere`, e.g. `cohere.embed-english-v3`): up to 96 texts per call,
  `{"texts", "input_type": "search_document"}`, answered with `{"embeddings": [[…]]}`; the token
  count is the `X-Amzn-Bedrock-Input-Token-Count` header
  (https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-embed.html). Cohere v3
  has no output size, so `dimensions` is refused with a 400.
"""

from __future__ import annotations

from typing import Any

import orjson

from astra_sidecar.compiler.table import Cluster
from astra_sidecar.sidecar.errors import UpstreamMalformedError
from astra_sidecar.sidecar.protocols.base import AuthMaterial, UpstreamRequest
from astra_sidecar.sidecar.protocols.bedrock.signing import authorized_request, model_url
from astra_sidecar.sidecar.protocols.embedding import (
    EmbeddingCall,
    Embeddings,
    UpstreamAnswer,
    bad_input,
    float_vector,
)

COHERE_BATCH = 96
TOKEN_COUNT_HEADER = "X-Amzn-Bedrock-Input-Token-Count"
COHERE_INPUT_TYPE = "search_document"


def invoke_url(cluster: Cluster) -> str:
    return model_url(cluster, "invoke")


def _signed(cluster: Cluster, payload: dict[str, Any], auth: AuthMaterial) -> UpstreamRequest:
    return authorized_request(cluster, invoke_url(cluster), orjson.dumps(payload), auth)


def _json(cluster: Cluster, answer: UpstreamAnswer) -> dict[str, Any]:
    try:
        data = orjson.loads(answer.body)
    except orjson.JSONDecodeError as exc:
        raise UpstreamMalformedError("not JSON", cluster.key, "bedrock") from exc
    if not isinstance(data, dict):
        raise UpstreamMalformedError("not an InvokeModel answer", cluster.key, "bedrock")
    return data


class TitanEmbedder:
    def requests(self, cluster: Cluster, call: EmbeddingCall, auth: AuthMaterial) -> list[UpstreamRequest]:
        out = []
        for text in call.texts():
            payload: dict[str, Any] = {"inputText": text}
            if call.dimensions is not None:
                payload["dimensions"] = call.dimensions
            out.append(_signed(cluster, payload, auth))
        return out

    def parse(self, cluster: Cluster, call: EmbeddingCall, answers: list[UpstreamAnswer]) -> Embeddings:
        vectors, tokens = [], 0
        for answer in answers:
            data = _json(cluster, answer)
            vector = float_vector(data.get("embedding"))
            if vector is None:
                raise UpstreamMalformedError("a Titan answer without 'embedding'", cluster.key, "bedrock")
            vectors.append(vector)
            count = data.get("inputTextTokenCount")
            tokens += count if isinstance(count, int) else 0
        return Embeddings(tuple(vectors), tokens, cluster.model_id)


class CohereEmbedder:
    def requests(self, cluster: Cluster, call: EmbeddingCall, auth: AuthMaterial) -> list[UpstreamRequest]:
        if call.dimensions is not None:
            raise bad_input(
                f"'{cluster.model_id}' has a fixed output size: 'dimensions' does not apply", "dimensions"
            )
        texts = call.texts()
        batches = [texts[i : i + COHERE_BATCH] for i in range(0, len(texts), COHERE_BATCH)]
        return [
            _signed(cluster, {"texts": batch, "input_type": COHERE_INPUT_TYPE}, auth) for batch in batches
        ]

    def parse(self, cluster: Cluster, call: EmbeddingCall, answers: list[UpstreamAnswer]) -> Embeddings:
        vectors: list[list[float]] = []
        tokens = 0
        for answer in answers:
            data = _json(cluster, answer)
            items = data.get("embeddings")
            if isinstance(items, dict):  # `embedding_types` asked for: {"float": [[…]]}
                items = items.get("float")
            batch = [float_vector(item) for item in items] if isinstance(items, list) else [None]
            if any(v is None for v in batch):
                raise UpstreamMalformedError(
                    "a Cohere answer without float 'embeddings'", cluster.key, "bedrock"
                )
            vectors.extend(v for v in batch if v is not None)
            count = answer.headers.get(TOKEN_COUNT_HEADER, "")
            tokens += int(count) if count.isdigit() else 0
        if len(vectors) != len(call.inputs):
            raise UpstreamMalformedError("a Cohere answer of another length", cluster.key, "bedrock")
        return Embeddings(tuple(vectors), tokens, cluster.model_id)


TITAN = TitanEmbedder()
COHERE = CohereEmbedder()
