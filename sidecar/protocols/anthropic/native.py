"""The agent's policy applied to an Anthropic Messages body that goes to an Anthropic cluster as is.

Per request (`prepare`):
- tools are filtered by the agent's allow/deny lists (by `name`, server tools included); removed
  names are reported; a `tool_choice` naming a removed tool → 400 `tool_not_allowed`; when none is
  left, `tools` and `tool_choice` go;
- `max_tokens` is clamped to `maxOutputTokens`, and set to it (else 4096) when the caller sent
  none (Anthropic requires it);
- `temperature` defaults to the agent's when the caller sent none, unless the caller chose
  `top_p` or extended thinking instead (recent Claude models reject temperature with either).

Per attempt (`for_cluster`):
- `model` becomes the cluster's modelId;
- the rendered agent prompt is put first in `system` (a string `system` becomes a text block
  after it), marked `cache_control: ephemeral` with `promptCache.systemPrompt`; with
  `promptCache.tools` the last tool is marked too, unless it already is. Marks are only added
  while the request has fewer than Anthropic's maximum of 4;
- temperature is clamped to the provider's range.

Upstream (`upstream_request`): `{base_url}/v1/messages` with the cluster's auth and headers (see
`sidecar.protocols.anthropic.wire`), the caller's `anthropic-version` when it sent one and its
`anthropic-beta` flags (added to the cluster's own). No other caller header is forwarded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from compiler.table import Agent, Cluster, ToolPolicy
from sidecar.errors import ClientError
from sidecar.policy.agent import AgentPolicy
from sidecar.protocols.anthropic.adapter import DEFAULT_MAX_TOKENS, EPHEMERAL, usage_from
from sidecar.protocols.anthropic.wire import messages_url, request_headers
from sidecar.protocols.base import AuthMaterial, Body, UpstreamRequest, Usage
from sidecar.protocols.codec import NativePrepared

Json = dict[str, Any]

MAX_CACHE_MARKS = 4
_THINKING_ON = frozenset({"enabled", "adaptive"})


def prepare(body: Json, agent: Agent) -> NativePrepared:
    body = dict(body)
    removed = _filter_tools(body, agent.tools)
    cap = agent.max_output_tokens
    if body.get("max_tokens") is None:
        body["max_tokens"] = cap or DEFAULT_MAX_TOKENS
    elif cap is not None and body["max_tokens"] > cap:
        body["max_tokens"] = cap
    if body.get("temperature") is None and agent.temperature is not None and not _sampling_chosen(body):
        body["temperature"] = agent.temperature
    return NativePrepared(body=body, removed_tools=removed)


def _sampling_chosen(body: Json) -> bool:
    thinking = body.get("thinking")
    return body.get("top_p") is not None or (
        isinstance(thinking, dict) and thinking.get("type") in _THINKING_ON
    )


def _filter_tools(body: Json, policy: ToolPolicy) -> tuple[str, ...]:
    tools = body.get("tools") or []
    kept = [tool for tool in tools if policy.permits(tool["name"])]
    removed = tuple(tool["name"] for tool in tools if not policy.permits(tool["name"]))
    if not removed:
        return ()
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "tool" and choice.get("name") in removed:
        raise ClientError(
            400,
            f"tool '{choice['name']}' is not allowed for this agent",
            param="tool_choice",
            code="tool_not_allowed",
        )
    if kept:
        body["tools"] = kept
    else:
        body.pop("tools", None)
        body.pop("tool_choice", None)
    return removed


def for_cluster(prepared: NativePrepared, policy: AgentPolicy, cluster: Cluster) -> Body:
    body = dict(prepared.body)
    body["model"] = cluster.model_id
    cache = policy.agent.prompt_cache
    budget = MAX_CACHE_MARKS - _cache_marks(body)
    prompt = policy.system_prompt(cluster)
    if prompt:
        block: Json = {"type": "text", "text": prompt}
        if cache.system_prompt and budget > 0:
            block["cache_control"] = dict(EPHEMERAL)
            budget -= 1
        body["system"] = [block, *_system_blocks(body.get("system"))]
    tools = body.get("tools")
    if cache.tools and tools and budget > 0 and "cache_control" not in tools[-1]:
        body["tools"] = [*tools[:-1], {**tools[-1], "cache_control": dict(EPHEMERAL)}]
    temperature = body.get("temperature")
    if temperature is not None and temperature > cluster.rules.temperature_max:
        body["temperature"] = cluster.rules.temperature_max
    return body


def _system_blocks(system: Any) -> list[Json]:
    if isinstance(system, str):
        return [{"type": "text", "text": system}] if system else []
    return list(system or ())


def _cache_marks(body: Json) -> int:
    """The `cache_control` breakpoints the caller already set (system, tools, message blocks)."""
    blocks: list[Any] = [*_system_blocks(body.get("system")), *(body.get("tools") or ())]
    for message in body.get("messages") or ():
        content = message.get("content")
        for block in content if isinstance(content, list) else ():
            blocks.append(block)
            inner = block.get("content") if block.get("type") == "tool_result" else None
            blocks.extend(inner if isinstance(inner, list) else ())
    return sum(1 for block in blocks if isinstance(block, dict) and "cache_control" in block)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value.strip() if value and value.strip() else None


def _merged_betas(own: str | None, caller: str) -> str:
    flags: list[str] = []
    for flag in f"{own or ''},{caller}".split(","):
        if flag.strip() and flag.strip() not in flags:
            flags.append(flag.strip())
    return ",".join(flags)


def upstream_request(
    cluster: Cluster, body: Body, auth: AuthMaterial, inbound: Mapping[str, str]
) -> UpstreamRequest:
    headers = request_headers(cluster, auth)
    version = _header(inbound, "anthropic-version")
    if version is not None:
        headers["anthropic-version"] = version
    beta = _header(inbound, "anthropic-beta")
    if beta is not None:
        headers["anthropic-beta"] = _merged_betas(headers.get("anthropic-beta"), beta)
    return UpstreamRequest(
        url=messages_url(cluster),
        headers=headers,
        body=orjson.dumps(body),
        stream=bool(body.get("stream")),
    )


def usage(raw: bytes) -> Usage | None:
    """OpenAI-terms usage of a native answer (prompt includes the cache buckets)."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    found = message.get("usage") if isinstance(message, dict) else None
    return usage_from(found) if isinstance(found, dict) else None
