"""The routes of the Gemini API, declared apart from its codec (`ingress`): the app registers them
at start and `GEMINI` imports the codec, with what it imports, at the API's first request
(`protocols/lazy_ingress.py`; issue 15, the footprint)."""

from __future__ import annotations

from astra_sidecar.sidecar.protocols.codec import IngressCodec, Route
from astra_sidecar.sidecar.protocols.lazy_ingress import LazyIngress
from astra_sidecar.sidecar.serving import unrouted

#: This API's folder: route handlers are named by module (`LazyIngress.handler`).
_PACKAGE = __name__.rpartition(".")[0]

GEMINI_MODELS = "/v1/gemini/{agent}/{version:v1beta|v1}/models"
_EMBED_METHODS = "embedContent|batchEmbedContents"


def _codec() -> IngressCodec:
    from astra_sidecar.sidecar.protocols.gemini.ingress import CODEC

    return CODEC


def gemini_routes() -> list[Route]:
    """Embeddings, countTokens, the generate methods (served by the flow), the model gets, and a
    catch-all 404 in Google's shape."""
    embed = GEMINI.handler(f"{_PACKAGE}.embeddings_ingress", "embed_content")
    count = GEMINI.handler(f"{_PACKAGE}.ingress", "count_tokens")
    get_model = GEMINI.handler(f"{_PACKAGE}.ingress_models", "get_model")
    list_models = GEMINI.handler(f"{_PACKAGE}.ingress_models", "list_models")
    return [
        Route("POST", GEMINI_MODELS + "/{model}:{method:" + _EMBED_METHODS + "}", embed),
        Route("POST", GEMINI_MODELS + "/{model}:countTokens", count),
        Route("POST", GEMINI_MODELS + "/{target}"),
        Route("GET", GEMINI_MODELS + "/{model}", get_model),
        Route("GET", GEMINI_MODELS, list_models),
        Route("*", r"/v1/gemini/{tail:[\s\S]*}", unrouted.unknown_route),
    ]


GEMINI = LazyIngress("gemini", _codec, gemini_routes)
