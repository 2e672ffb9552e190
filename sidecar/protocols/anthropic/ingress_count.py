"""`POST /v1/anthropic/{agent}[/v1]/messages/count_tokens`
(https://docs.anthropic.com/en/api/messages-count-tokens), by the agent's primary cluster:

- Anthropic's: the body, with the agent's system prompt and tool policy applied as for a message,
  goes to Anthropic's count_tokens (only the fields it takes), and its answer comes back byte for
  byte, `anthropic-version` / `anthropic-beta` forwarded as on the native path;
- Gemini's or Bedrock's: the body is translated as a message would be (`ingress_fields` judges
  its fields first), and the provider's own count API answers (`serving/count_tokens.py`):
  `{"input_tokens": n}`;
- any other provider: `{"input_tokens": n}` with the sidecar's estimate (`policy/context.py`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from astra_sidecar.sidecar.accesslog import with_error_code
from astra_sidecar.sidecar.app_keys import STATE
from astra_sidecar.sidecar.errors import AstraError
from astra_sidecar.sidecar.policy.context import estimate_tokens
from astra_sidecar.sidecar.protocols.anthropic.native import upstream_request
from astra_sidecar.sidecar.protocols.anthropic.policy_access import ACCESS
from astra_sidecar.sidecar.protocols.codec import Handler, IngressCall, IngressCodec
from astra_sidecar.sidecar.serving.common import read_json
from astra_sidecar.sidecar.serving.count_tokens import chat_agent, native_count, translated_count
from astra_sidecar.sidecar.serving.responses import error_response

if TYPE_CHECKING:
    from astra_sidecar.sidecar.runtime import AgentRuntime


def _json(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json")


def count_route(codec: IngressCodec) -> Handler:
    """The count_tokens handler of `codec` (the Anthropic ingress: its parse, size and errors)."""

    async def count_tokens(request: web.Request) -> web.StreamResponse:
        runtime = request.app[STATE].runtime
        try:
            raw = await read_json(request, runtime.table.settings.max_body_bytes)
            call = codec.parse(raw, request.match_info, request.query, request.headers)
            agent = chat_agent(runtime, call.agent_id)
            return _json(await _count(codec, agent, call))
        except AstraError as exc:
            return with_error_code(error_response(codec, exc.failure), exc.failure.code)

    return count_tokens


async def _count(codec: IngressCodec, agent: AgentRuntime, call: IngressCall) -> bytes:
    cluster = agent.plan[0]
    if cluster.cluster.wire == codec.wire:
        prepared = agent.policy.prepare(call.body, ACCESS)
        sent = agent.policy.for_cluster(prepared, cluster.cluster, ACCESS)
        auth = await cluster.credentials.material(call.inbound)
        return await native_count(agent, upstream_request(cluster.cluster, sent, auth, call.inbound), auth)
    tokens = await translated_count(agent, codec.to_openai(call), call.inbound)
    if tokens is None:
        tokens = estimate_tokens(codec.size(call), agent.agent.system_prompt)
    return orjson.dumps({"input_tokens": tokens})
