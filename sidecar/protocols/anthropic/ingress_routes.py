"""The routes of the Anthropic Messages API, declared apart from its codec (`ingress`): the app
registers them at start and `ANTHROPIC` imports the codec, with what it imports, at the API's
first request (`protocols/lazy_ingress.py`; issue 15, the footprint)."""

from __future__ import annotations

from astra_sidecar.sidecar.protocols.codec import IngressCodec, Route
from astra_sidecar.sidecar.protocols.lazy_ingress import LazyIngress
from astra_sidecar.sidecar.serving import unrouted

#: This API's folder: route handlers are named by module (`LazyIngress.handler`).
_PACKAGE = __name__.rpartition(".")[0]

PREFIX = "/v1/anthropic/{agent}"
_VERSIONS = ("/v1", "")
#: Everything else under the API's prefix, an empty agent included: a 404 in Anthropic's shape.
_CATCH_ALL = r"/v1/anthropic/{tail:[\s\S]*}"


def _codec() -> IngressCodec:
    from astra_sidecar.sidecar.protocols.anthropic.ingress import CODEC

    return CODEC


def anthropic_routes() -> list[Route]:
    """Messages (served by the flow), count_tokens, the models list, the `HEAD` probe, and a
    catch-all 404 in this API's shape."""
    module = f"{_PACKAGE}.ingress"
    count, models, probe = (
        ANTHROPIC.handler(module, name) for name in ("count_tokens", "list_models", "probe")
    )
    declared: list[Route] = []
    for version in _VERSIONS:
        declared.append(Route("POST", f"{PREFIX}{version}/messages"))
        declared.append(Route("POST", f"{PREFIX}{version}/messages/count_tokens", count))
        declared.append(Route("GET", f"{PREFIX}{version}/models", models))
        declared.append(Route("*", f"{PREFIX}{version}", probe))
    declared.append(Route("*", _CATCH_ALL, unrouted.unknown_route))
    return declared


ANTHROPIC = LazyIngress("anthropic", _codec, anthropic_routes)
