"""`GeminiAdapter`: the `gemini` wire format's four adapter operations, wired to their modules."""

from __future__ import annotations

from collections.abc import Mapping

from astra_sidecar.compiler.table import Agent, Cluster
from astra_sidecar.sidecar.protocols.base import AuthMaterial, Body, Completion, Failure, UpstreamRequest
from astra_sidecar.sidecar.protocols.gemini.errors import classify
from astra_sidecar.sidecar.protocols.gemini.request import translate_request, upstream_request
from astra_sidecar.sidecar.protocols.gemini.response import completion_body, read_response
from astra_sidecar.sidecar.protocols.gemini.stream import GeminiStreamTranslator


def _include_usage(request: Body) -> bool:
    options = request.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _model_name(cluster: Cluster, request: Body) -> str:
    model = request.get("model")
    return model if isinstance(model, str) and model else cluster.model_id


class GeminiAdapter:
    def build_request(
        self, cluster: Cluster, agent: Agent, body: Body, auth: AuthMaterial
    ) -> UpstreamRequest:
        return upstream_request(
            cluster, translate_request(body, agent), auth, stream=bool(body.get("stream"))
        )

    def parse_response(self, cluster: Cluster, request: Body, raw: bytes) -> Completion:
        data = read_response(raw, cluster.key)
        body, usage = completion_body(data, _model_name(cluster, request))
        return Completion(body=body, usage=usage)

    def stream_translator(self, cluster: Cluster, request: Body) -> GeminiStreamTranslator:
        return GeminiStreamTranslator(_model_name(cluster, request), _include_usage(request), cluster.key)

    def classify_error(
        self, cluster: Cluster, status: int, headers: Mapping[str, str], raw: bytes
    ) -> Failure:
        del cluster
        return classify(status, headers, raw)
