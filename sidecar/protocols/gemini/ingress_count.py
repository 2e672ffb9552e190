"""``POST /v1/gemini/{agent}/{v1|v1beta}/models/{model}:countTokens`` (https://ai.google.dev/api/tokens):
the body is `{"contents": …}` (what google-genai sends to AI Studio), `{"generateContentRequest":
…}`, or Vertex AI's top-level `contents`, `systemInstruction`, `tools` and `generationConfig`; it
is read as a `GenerateContentRequest` (`ingress_request`). By the agent's primary cluster:

- Gemini's: the request, with the agent's system prompt and tool policy applied as for a
  generateContent call, goes to that cluster's `:countTokens` (AI Studio or Vertex AI), and its
  answer (`totalTokens`, `promptTokensDetails`, …) comes back byte for byte;
- Anthropic's or Bedrock's: translated as a generateContent call would be, and counted by that
  provider's count API (`serving/count_tokens.py`): `{"totalTokens": n}`;
- any other provider: `{"totalTokens": n}` with the sidecar's estimate (`policy/context.py`).
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from astra_sidecar.sidecar.accesslog import with_error_code
from astra_sidecar.sidecar.app_keys import STATE
from astra_sidecar.sidecar.errors import AstraError
from astra_sidecar.sidecar.policy.context import estimate_tokens
from astra_sidecar.sidecar.protocols.codec import Handler, IngressCall, IngressCodec
from astra_sidecar.sidecar.protocols.gemini.ingress_request import parse_request
from astra_sidecar.sidecar.protocols.gemini.ingress_translate import to_openai_body
from astra_sidecar.sidecar.protocols.gemini.policy_access import ACCESS
from astra_sidecar.sidecar.protocols.gemini.request import upstream_request
from astra_sidecar.sidecar.serving.common import read_json
from astra_sidecar.sidecar.serving.count_tokens import chat_agent, native_count, translated_count
from astra_sidecar.sidecar.serving.responses import error_response

COUNT_METHOD = "countTokens"


def generate_request(body: Any) -> Any:
    """The `GenerateContentRequest` a countTokens body stands for."""
    if not isinstance(body, dict):
        return body
    inner = body.get("generateContentRequest", body.get("generate_content_request"))
    if inner is not None:
        return inner
    return {key: value for key, value in body.items() if key != "model"}


def count_route(codec: IngressCodec, inbound_headers: Any) -> Handler:
    """The countTokens handler of the Gemini ingress (`codec` for its errors and size estimate;
    `inbound_headers` folds `?key=` into the caller's headers)."""

    async def count_tokens(request: web.Request) -> web.StreamResponse:
        runtime = request.app[STATE].runtime
        agent_id = request.match_info["agent"]
        try:
            raw = await read_json(request, runtime.table.settings.max_body_bytes)
            body = parse_request(generate_request(raw))
            agent = chat_agent(runtime, agent_id)
            call = IngressCall(agent_id, body, False, inbound=inbound_headers(request.headers, request.query))
            cluster = agent.plan[0]
            if cluster.cluster.wire == codec.wire:
                prepared = agent.policy.prepare(body, ACCESS)
                sent = agent.policy.for_cluster(prepared, cluster.cluster, ACCESS)
                auth = await cluster.credentials.material(call.inbound)
                built = upstream_request(cluster.cluster, sent, auth, stream=False)
                answer = await native_count(agent, built, auth)
            else:
                tokens = await translated_count(agent, to_openai_body(body, agent_id, False), call.inbound)
                if tokens is None:
                    tokens = estimate_tokens(codec.size(call), agent.agent.system_prompt)
                answer = orjson.dumps({"totalTokens": tokens})
        except AstraError as exc:
            return with_error_code(error_response(codec, exc.failure), exc.failure.code)
        return web.Response(body=answer, content_type="application/json")

    return count_tokens
