"""`GET /v1/models` and `GET /v1/models/{id}` (and the same under the provider-style prefixes).

Each agent is one OpenAI model object (https://platform.openai.com/docs/api-reference/models/object):
`{"id", "object": "model", "created": 0, "owned_by": "astra:<primary provider>"}`, plus one
extra field, `capabilities`: the routes it serves — `["chat", "responses"]` for a chat agent
(Chat Completions, Responses, and the Anthropic and Gemini chat routes), `["embeddings"]` for an
embedding agent. An unknown id is a 404 in OpenAI's shape naming it. Under a prefix
(`/v1/openai/{agent}/models`), the list holds the path's agent only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from astra_sidecar.sidecar.app_keys import STATE
from astra_sidecar.sidecar.errors import ClientError

if TYPE_CHECKING:
    from astra_sidecar.sidecar.runtime import AgentRuntime

CAPABILITIES: Mapping[str, tuple[str, ...]] = {"chat": ("chat", "responses"), "embedding": ("embeddings",)}


def model_object(runtime: AgentRuntime) -> dict[str, Any]:
    agent = runtime.agent
    return {
        "id": agent.id,
        "object": "model",
        "created": 0,
        "owned_by": f"astra:{runtime.plan[0].cluster.provider}",
        "capabilities": list(CAPABILITIES.get(agent.kind, ())),
    }


def models_body(agents: Mapping[str, AgentRuntime]) -> bytes:
    """The list of every agent, sorted by id (built once per runtime)."""
    return orjson.dumps({"object": "list", "data": [model_object(agents[k]) for k in sorted(agents)]})


def _json(body: bytes, status: int = 200) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json")


def _not_found(model_id: str) -> web.Response:
    from astra_sidecar.sidecar.protocols.openai.ingress import error_payload  # which imports this module

    failure = ClientError(
        404, f"The model '{model_id}' does not exist: it names no agent of this sidecar",
        code="model_not_found", error_type="invalid_request_error", param="model",
    ).failure  # fmt: skip
    return _json(error_payload(failure), 404)


async def list_models(request: web.Request) -> web.Response:
    runtime = request.app[STATE].runtime
    agent = request.match_info.get("agent")
    if agent is None:
        return _json(runtime.models_body)
    if agent not in runtime.agents:
        return _not_found(agent)
    return _json(orjson.dumps({"object": "list", "data": [model_object(runtime.agents[agent])]}))


async def retrieve_model(request: web.Request) -> web.Response:
    runtime = request.app[STATE].runtime
    agent = request.match_info.get("agent")
    if agent is not None and agent not in runtime.agents:
        return _not_found(agent)
    model_id = request.match_info["model"]
    found = runtime.agents.get(model_id)
    return _json(orjson.dumps(model_object(found))) if found is not None else _not_found(model_id)
