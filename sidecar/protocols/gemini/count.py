"""Gemini's count API, `models/{model}:countTokens` (https://ai.google.dev/api/tokens, and
https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/count-tokens): the
`GenerateContentRequest` a cluster would get, at the same URL with `:countTokens` for the method
and the same auth. AI Studio takes it whole as `generateContentRequest` (with the model's name);
Vertex AI takes `contents`, `systemInstruction`, `tools` and `generationConfig` at the top level.
The answer's `totalTokens` (proto3 JSON leaves a zero out)."""

from __future__ import annotations

from dataclasses import replace

import orjson

from astra_sidecar.compiler.table import Cluster
from astra_sidecar.sidecar.protocols.base import AuthMaterial, UpstreamRequest
from astra_sidecar.sidecar.protocols.count_answer import counted_tokens
from astra_sidecar.sidecar.protocols.gemini.request import model_url

_VERTEX_FIELDS = ("contents", "systemInstruction", "tools", "generationConfig")


def count_url(cluster: Cluster) -> str:
    return model_url(cluster, "countTokens")


def count_body(cluster: Cluster, payload: dict[str, object]) -> dict[str, object]:
    if cluster.vertex is not None:
        return {key: payload[key] for key in _VERTEX_FIELDS if key in payload}
    model = "models/" + cluster.model_id.removeprefix("models/")
    return {"generateContentRequest": {"model": model, **payload}}


class GeminiCounter:
    def request(self, cluster: Cluster, built: UpstreamRequest, auth: AuthMaterial) -> UpstreamRequest:
        headers = {name: value for name, value in built.headers.items() if name.lower() != "accept"}
        body = orjson.dumps(count_body(cluster, orjson.loads(built.body)))
        return replace(built, url=count_url(cluster), headers=headers, body=body, stream=False)

    def tokens(self, cluster: Cluster, raw: bytes) -> int:
        return counted_tokens(cluster, raw, api="countTokens", field="totalTokens", default=0)


COUNTER = GeminiCounter()
