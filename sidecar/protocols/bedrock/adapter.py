"""`BedrockAdapter`: the `bedrock` wire format's four adapter operations, wired to their modules."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from astra_sidecar.compiler.table import Agent, Cluster
from astra_sidecar.sidecar.errors import UpstreamMalformedError
from astra_sidecar.sidecar.large_json import answer_json
from astra_sidecar.sidecar.protocols.base import AuthMaterial, Body, Completion, Failure, UpstreamRequest
from astra_sidecar.sidecar.protocols.bedrock.errors import classify
from astra_sidecar.sidecar.protocols.bedrock.request import converse_body
from astra_sidecar.sidecar.protocols.bedrock.response import finish_reason, response_message, usage_from
from astra_sidecar.sidecar.protocols.bedrock.signing import authorized_request, operation_url
from astra_sidecar.sidecar.protocols.bedrock.stream import EVENT_STREAM_TYPE, BedrockStreamTranslator
from astra_sidecar.sidecar.protocols.openai import wire as shapes


def _model(cluster: Cluster, request: Body) -> str:
    model = request.get("model")
    return model if isinstance(model, str) and model else cluster.model_id


class BedrockAdapter:
    """The `bedrock` wire format (Converse / ConverseStream)."""

    def build_request(
        self, cluster: Cluster, agent: Agent, body: Body, auth: AuthMaterial
    ) -> UpstreamRequest:
        stream = bool(body.get("stream"))
        payload = orjson.dumps(converse_body(body, agent, cluster.model_id))
        accept = EVENT_STREAM_TYPE if stream else "application/json"
        return authorized_request(
            cluster, operation_url(cluster, stream), payload, auth, stream=stream, accept=accept
        )

    def parse_response(self, cluster: Cluster, request: Body, raw: bytes) -> Completion:
        try:
            data = answer_json(raw)
            message = data["output"]["message"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise UpstreamMalformedError("not a Converse response", cluster.key, "bedrock") from exc
        usage = usage_from(data["usage"]) if isinstance(data.get("usage"), dict) else None
        body = shapes.completion(
            id=shapes.completion_id(),
            model=_model(cluster, request),
            created=shapes.now_s(),
            message=response_message(message.get("content") if isinstance(message, dict) else None),
            finish_reason=finish_reason(data.get("stopReason")),
            usage=usage,
        )
        return Completion(body=body, usage=usage)

    def stream_translator(self, cluster: Cluster, request: Body) -> BedrockStreamTranslator:
        options = request.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return BedrockStreamTranslator(_model(cluster, request), include_usage, cluster.key)

    def classify_error(
        self, cluster: Cluster, status: int, headers: Mapping[str, str], raw: bytes
    ) -> Failure:
        del cluster
        return classify(status, headers, raw)
