"""``GET /v1/gemini/{agent}/{v1|v1beta}/models[/{model}]``: the agent, as a Gemini `Model`
(https://ai.google.dev/api/models#Model). An unknown agent is a 404 in Google's shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from astra_sidecar.sidecar.app_keys import STATE
from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.protocols.gemini.ingress_errors import error_object
from astra_sidecar.sidecar.protocols.gemini.wire import GENERATE_METHODS

if TYPE_CHECKING:
    from astra_sidecar.sidecar.runtime import AgentRuntime


#: What an embedding agent serves here (`embeddings_ingress`).
_EMBED_METHODS = ("embedContent", "batchEmbedContents")


def _model_resource(name: str, agent: AgentRuntime) -> dict[str, Any]:
    spec = agent.agent
    provider = agent.plan[0].cluster.provider
    resource: dict[str, Any] = {
        "name": f"models/{name}",
        "baseModelId": spec.id,
        "version": "astra",
        "displayName": spec.display_name or spec.id,
        "description": f"astra agent '{spec.id}' (served by {provider})",
        "supportedGenerationMethods": list(_EMBED_METHODS if spec.kind == "embedding" else GENERATE_METHODS),
    }
    if spec.max_context_tokens is not None:
        resource["inputTokenLimit"] = spec.max_context_tokens
    if spec.max_output_tokens is not None:
        resource["outputTokenLimit"] = spec.max_output_tokens
    return resource


def _json(payload: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json")


def _agent_or_404(request: web.Request) -> AgentRuntime | web.Response:
    agent_id = request.match_info["agent"]
    agent = request.app[STATE].runtime.agents.get(agent_id)
    if agent is None:
        failure = ClientError(404, f"no agent '{agent_id}' on this sidecar", code="model_not_found").failure
        return _json(error_object(failure), failure.status)
    return agent


async def get_model(request: web.Request) -> web.Response:
    agent = _agent_or_404(request)
    if isinstance(agent, web.Response):
        return agent
    return _json(_model_resource(request.match_info["model"], agent))


async def list_models(request: web.Request) -> web.Response:
    agent = _agent_or_404(request)
    if isinstance(agent, web.Response):
        return agent
    return _json({"models": [_model_resource(agent.agent.id, agent)]})
