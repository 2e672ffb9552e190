"""Where a Converse request goes, and its SigV4 signature (the two are coupled by the path).

The model id is percent-encoded in the path (`:` → `%3A`, `/` → `%2F`) exactly as botocore's
serializer does; botocore's `SigV4Auth` (signing name `bedrock`) encodes that path again for the
canonical request and signs the SHA-256 of the exact body bytes, so the I/O layer must send the
path unchanged. The region is `cluster.region`, else parsed from a regional base URL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

from astra_sidecar.compiler.table import Cluster
from astra_sidecar.sidecar.errors import UpstreamError
from astra_sidecar.sidecar.protocols.base import AuthMaterial, AwsCredentials, Failure, UpstreamRequest

SIGNING_NAME = "bedrock"

_REGIONAL_HOST = re.compile(r"^bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")


def cluster_region(cluster: Cluster) -> str | None:
    if cluster.region:
        return cluster.region
    match = _REGIONAL_HOST.match(urlsplit(cluster.base_url).hostname or "")
    return match.group(1) if match else None


def no_region(cluster: Cluster) -> UpstreamError:
    message = "no AWS region configured for Bedrock (set region or AWS_REGION)"
    return UpstreamError(Failure(500, "server_error", message, code="bedrock_misconfigured"), cluster.key)


def model_url(cluster: Cluster, operation: str) -> str:
    """`{runtime endpoint}/model/{model id}/{operation}`: the cluster's base URL, else the region's."""
    base = cluster.base_url.rstrip("/")
    if not base:
        region = cluster_region(cluster)
        if region is None:
            raise no_region(cluster)
        base = f"https://bedrock-runtime.{region}.amazonaws.com"
    return f"{base}/model/{quote(cluster.model_id, safe='')}/{operation}"


def operation_url(cluster: Cluster, stream: bool) -> str:
    return model_url(cluster, "converse-stream" if stream else "converse")


def authorized_request(
    cluster: Cluster,
    url: str,
    body: bytes,
    auth: AuthMaterial,
    *,
    stream: bool = False,
    accept: str = "application/json",
) -> UpstreamRequest:
    """A POST of `body` to `url`: a Bedrock API key as a bearer token, else signed with SigV4."""
    headers = {"Content-Type": "application/json", "Accept": accept, **cluster.headers}
    if auth.token is not None:
        headers["Authorization"] = f"Bearer {auth.token.reveal()}"
    elif auth.aws is not None:
        region = cluster_region(cluster)
        if region is None:
            raise no_region(cluster)
        headers = sign_headers(url, headers, body, auth.aws, region)
    return UpstreamRequest(url=url, headers=headers, body=body, stream=stream)


def sign_headers(
    url: str, headers: Mapping[str, str], body: bytes, credentials: AwsCredentials, region: str
) -> dict[str, str]:
    """`headers` plus `X-Amz-Date`, `X-Amz-Security-Token` and `Authorization`, by botocore.

    botocore is imported on the first signature: a sidecar without Bedrock agents never loads it."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import ReadOnlyCredentials

    request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
    token = credentials.token.reveal() if credentials.token is not None else None
    signer_credentials = ReadOnlyCredentials(credentials.access_key, credentials.secret_key.reveal(), token)
    SigV4Auth(signer_credentials, SIGNING_NAME, region).add_auth(request)
    return {name: str(value) for name, value in request.headers.items()}
