"""The native path (`codec.NativePath`): a Gemini request sent to a Gemini cluster (AI Studio or
Vertex) as it came, with the agent's policy applied in Gemini's own shape (`policy_access`).

The model in the client's path is not used: the URL is the cluster's (its model id, AI Studio or
Vertex), and so is the auth; no client header is forwarded. The answer goes back to the client
byte for byte, so it is only looked at: `validate` reads a whole answer's usage (a Google error
inside a 200 is that error, anything that is not a `GenerateContentResponse` object is malformed),
and `watch` follows a stream (`native_watch`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from astra_sidecar.compiler.table import Cluster
from astra_sidecar.sidecar.protocols.base import AuthMaterial, Body, UpstreamRequest, Usage
from astra_sidecar.sidecar.protocols.codec import IngressCall, PolicyAccess
from astra_sidecar.sidecar.protocols.gemini.native_watch import GeminiStreamWatch
from astra_sidecar.sidecar.protocols.gemini.policy_access import ACCESS
from astra_sidecar.sidecar.protocols.gemini.request import upstream_request
from astra_sidecar.sidecar.protocols.gemini.response import read_response
from astra_sidecar.sidecar.protocols.gemini.wire import usage_from_metadata

if TYPE_CHECKING:
    pass


class GeminiNativePath:
    access: PolicyAccess = ACCESS

    def request(self, cluster: Cluster, body: Body, auth: AuthMaterial, call: IngressCall) -> UpstreamRequest:
        return upstream_request(cluster, body, auth, stream=call.stream)

    def validate(self, cluster: Cluster, raw: bytes) -> Usage | None:
        return usage_from_metadata(read_response(raw, cluster.key).get("usageMetadata"))

    def watch(self, cluster: Cluster) -> GeminiStreamWatch:
        return GeminiStreamWatch(cluster.key)


NATIVE = GeminiNativePath()
