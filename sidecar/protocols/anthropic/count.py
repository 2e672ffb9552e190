"""Anthropic's count API (https://docs.anthropic.com/en/api/messages-count-tokens): the Messages
request a cluster would get, sent to `{base_url}/v1/messages/count_tokens` with the same headers,
keeping only the fields that endpoint takes (it refuses any other); the answer's `input_tokens`."""

from __future__ import annotations

from dataclasses import replace

import orjson

from astra_sidecar.compiler.table import Cluster
from astra_sidecar.sidecar.protocols.anthropic.upstream_response import load_answer, malformed
from astra_sidecar.sidecar.protocols.anthropic.wire import messages_url
from astra_sidecar.sidecar.protocols.base import AuthMaterial, UpstreamRequest

#: The fields Anthropic's count_tokens endpoint takes.
COUNT_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers")


class AnthropicCounter:
    def request(self, cluster: Cluster, built: UpstreamRequest, auth: AuthMaterial) -> UpstreamRequest:
        body = orjson.loads(built.body)
        kept = {key: body[key] for key in COUNT_FIELDS if key in body}
        url = messages_url(cluster) + "/count_tokens"
        return replace(built, url=url, body=orjson.dumps(kept), stream=False)

    def tokens(self, cluster: Cluster, raw: bytes) -> int:
        count = load_answer(cluster, raw).get("input_tokens")
        if not isinstance(count, int) or isinstance(count, bool):
            raise malformed(cluster, "a count_tokens answer without input_tokens")
        return count


COUNTER = AnthropicCounter()
