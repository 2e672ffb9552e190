"""The token count in a provider count API's JSON answer (Gemini `countTokens`, Bedrock
`CountTokens`): a malformed answer is an `UpstreamMalformedError` naming the API and the field."""

from __future__ import annotations

import orjson

from astra_sidecar.compiler.table import Cluster
from astra_sidecar.sidecar.errors import UpstreamMalformedError


def counted_tokens(cluster: Cluster, raw: bytes, *, api: str, field: str, default: int | None = None) -> int:
    """`field` of the answer object (`default` when absent and a default is given)."""
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamMalformedError(
            f"a {api} answer that is not JSON", cluster.key, cluster.provider
        ) from exc
    count = answer.get(field, default) if isinstance(answer, dict) else None
    if not isinstance(count, int) or isinstance(count, bool):
        raise UpstreamMalformedError(f"a {api} answer without {field}", cluster.key, cluster.provider)
    return count
