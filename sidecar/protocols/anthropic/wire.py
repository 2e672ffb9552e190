"""What every request to the Anthropic Messages API carries, whoever builds its body: the URL and
the headers (the adapter for OpenAI-format callers, the Anthropic ingress for native callers).

`POST {base_url}/v1/messages` with `x-api-key` (or `Authorization: Bearer` when the cluster's
auth style is `bearer`) and `anthropic-version: 2023-06-01`; the cluster's extra headers (e.g.
`anthropic-beta`) are added, lower-cased, and may override the version but never the auth header.
"""

from __future__ import annotations

from compiler.table import Cluster
from sidecar.protocols.base import AuthMaterial

ANTHROPIC_VERSION = "2023-06-01"


def messages_url(cluster: Cluster) -> str:
    return cluster.base_url.rstrip("/") + "/v1/messages"


def request_headers(cluster: Cluster, auth: AuthMaterial) -> dict[str, str]:
    """The upstream headers (lower-case names) for one request to this cluster."""
    headers = {"content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
    headers.update({name.lower(): value for name, value in cluster.headers.items()})
    headers.pop("x-api-key", None)
    headers.pop("authorization", None)
    if auth.token is not None:
        if cluster.auth == "bearer":
            headers["authorization"] = "Bearer " + auth.token.reveal()
        else:
            headers["x-api-key"] = auth.token.reveal()
    return headers
