"""Bedrock's count API, `CountTokens` (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_CountTokens.html):
`POST /model/{modelId}/count-tokens` with `{"input": {"converse": …}}` — the Converse request a
cluster would get, reduced to what `ConverseTokensRequest` takes (`messages`, `system`,
`toolConfig`, `additionalModelRequestFields`) — signed like any Bedrock call (SigV4 over the new
path and body, or the API key as a bearer token). The answer's `inputTokens`."""

from __future__ import annotations

import orjson

from astra_sidecar.compiler.table import Cluster
from astra_sidecar.sidecar.protocols.base import AuthMaterial, UpstreamRequest
from astra_sidecar.sidecar.protocols.bedrock.signing import authorized_request, model_url
from astra_sidecar.sidecar.protocols.count_answer import counted_tokens

_CONVERSE_FIELDS = ("messages", "system", "toolConfig", "additionalModelRequestFields")


def count_url(cluster: Cluster) -> str:
    return model_url(cluster, "count-tokens")


class BedrockCounter:
    def request(self, cluster: Cluster, built: UpstreamRequest, auth: AuthMaterial) -> UpstreamRequest:
        converse = orjson.loads(built.body)
        payload = orjson.dumps(
            {"input": {"converse": {k: converse[k] for k in _CONVERSE_FIELDS if k in converse}}}
        )
        return authorized_request(cluster, count_url(cluster), payload, auth)

    def tokens(self, cluster: Cluster, raw: bytes) -> int:
        return counted_tokens(cluster, raw, api="CountTokens", field="inputTokens")


COUNTER = BedrockCounter()
