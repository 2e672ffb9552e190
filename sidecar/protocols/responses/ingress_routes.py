"""The routes of the OpenAI Responses API, declared apart from its codec (`ingress`): the app
registers them at start and `RESPONSES` imports the codec, with what it imports, at the API's
first request (`protocols/lazy_ingress.py`; issue 15, the footprint)."""

from __future__ import annotations

from astra_sidecar.sidecar.protocols.codec import IngressCodec, Route
from astra_sidecar.sidecar.protocols.lazy_ingress import LazyIngress
from astra_sidecar.sidecar.protocols.openai.ingress import PROVIDER_PREFIXES

#: This API's folder: route handlers are named by module (`LazyIngress.handler`).
_PACKAGE = __name__.rpartition(".")[0]


def _codec() -> IngressCodec:
    from astra_sidecar.sidecar.protocols.responses.ingress import CODEC

    return CODEC


def responses_routes() -> list[Route]:
    """`POST …/responses` (the flow inside a store turn) and `GET`/`DELETE` of a stored response,
    under `/v1` and each OpenAI-compatible provider prefix."""
    create = RESPONSES.handler(f"{_PACKAGE}.ingress", "create")
    stored = RESPONSES.handler(f"{_PACKAGE}.routes", "stored")
    bases = ["/v1"] + [
        f"/v1/{prefix}/{{agent}}{version}" for prefix in PROVIDER_PREFIXES for version in ("", "/v1")
    ]
    declared: list[Route] = []
    for base in bases:
        declared.append(Route("POST", f"{base}/responses", create))
        declared.append(Route("GET", f"{base}/responses/{{response_id}}", stored))
        declared.append(Route("DELETE", f"{base}/responses/{{response_id}}", stored))
    return declared


RESPONSES = LazyIngress("responses", _codec, responses_routes)
