"""Bedrock's count API, `CountTokens` (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_CountTokens.html):
`POST /model/{modelId}/count-tokens` with `{"input": {"converse": …}}` — the Converse request a
cluster would get, reduced to what `ConverseTokensRequest` takes (`messages`, `system`,
`toolConfig`, `additionalModelRequestFields`) — signed like any Bedrock call (SigV4 over the new
path and body, or the API key as a bearer token). The answer's `inputTokens`."""

from __future__ import annotations

import orjson

from astra_sidecar.compiler.table import Cluster
from astra_sidecar.sidecar.errors import UpstreamMalformedError
from astra_sidecar.sidecar.protocols.base import AuthMaterial, UpstreamRequest
from astra_sidecar.sidecar.protocols.bedrock.signing import (
    cluster_region,
    no_region,
    operation_url,
    sign_headers,
)

_CONVERSE_FIELDS = ("messages", "system", "toolConfig", "additionalModelRequestFields")


def count_url(cluster: Cluster) -> str:
    return operation_url(cluster, stream=False).removesuffix("/converse") + "/count-tokens"


class BedrockCounter:
    def request(self, cluster: Cluster, built: UpstreamRequest, auth: AuthMaterial) -> UpstreamRequest:
        converse = orjson.loads(built.body)
        payload = orjson.dumps(
            {"input": {"converse": {k: converse[k] for k in _CONVERSE_FIELDS if k in converse}}}
        )
        url = count_url(cluster)
        headers = {"Content-Type": "application/json", "Accept": "application/json", **cluster.headers}
        if auth.token is not None:
            headers["Authorization"] = f"Bearer {auth.token.reveal()}"
        elif auth.aws is not None:
            region = cluster_region(cluster)
            if region is None:
                raise no_region(cluster)
            headers = sign_headers(url, headers, payload, auth.aws, region)
        return UpstreamRequest(url=url, headers=headers, body=payload, stream=False)

    def tokens(self, cluster: Cluster, raw: bytes) -> int:
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamMalformedError(
                "a CountTokens answer that is not JSON", cluster.key, "bedrock"
            ) from exc
        count = answer.get("inputTokens") if isinstance(answer, dict) else None
        if not isinstance(count, int) or isinstance(count, bool):
            raise UpstreamMalformedError("a CountTokens answer without inputTokens", cluster.key, "bedrock")
        return count


COUNTER = BedrockCounter()
