"""The native path: a Gemini request sent to a Gemini cluster (AI Studio or Vertex) as it came,
with the agent's policy applied in Gemini's own shape.

Per request:
- tools: each `functionDeclarations` entry the agent's tool policy refuses is removed (a tool
  object left empty is dropped), and so is a built-in tool (`googleSearch`, `codeExecution`, …)
  whose field name the policy refuses. Removed names are reported. `allowedFunctionNames` loses
  removed names (all of them removed → 400 `tool_not_allowed`, as forcing a removed tool on the
  OpenAI route); with no function left, `functionCallingConfig` goes too.
- `generationConfig.temperature` defaults to the agent's; `maxOutputTokens` is clamped to the
  agent's cap, and set to it when absent.

Per attempt (the cluster may be a fallback): the agent's system prompt for that cluster goes
first in `systemInstruction.parts`; the temperature is clamped to the provider's range and
`candidateCount` checked against it. The model in the client's path is not used: the URL is the
cluster's (its model id, AI Studio or Vertex), and so is the auth; no client header is forwarded.
"""

from __future__ import annotations

from typing import Any

import orjson

from compiler.table import Agent, Cluster, ToolPolicy
from sidecar.errors import ClientError
from sidecar.policy.agent import AgentPolicy
from sidecar.protocols.base import AuthMaterial, Body, UpstreamRequest, Usage
from sidecar.protocols.codec import NativePrepared
from sidecar.protocols.gemini import upstream_request, usage_from_metadata

Json = dict[str, Any]

_ALLOWED = "toolConfig.functionCallingConfig.allowedFunctionNames"


def _filter_tool(tool: Json, policy: ToolPolicy, removed: list[str]) -> Json:
    kept: Json = {}
    for key, value in tool.items():
        if key == "functionDeclarations":
            declarations = []
            for declaration in value:
                if policy.permits(declaration["name"]):
                    declarations.append(declaration)
                else:
                    removed.append(declaration["name"])
            if declarations:
                kept[key] = declarations
        elif policy.permits(key):
            kept[key] = value
        else:
            removed.append(key)
    return kept


def _has_functions(tools: list[Json]) -> bool:
    return any(tool.get("functionDeclarations") for tool in tools)


def _fix_tool_config(body: Body, removed: list[str], functions_left: bool) -> None:
    config = body.get("toolConfig")
    if not isinstance(config, dict) or not isinstance(config.get("functionCallingConfig"), dict):
        return
    config, calling = dict(config), dict(config["functionCallingConfig"])
    names = calling.get("allowedFunctionNames")
    if names:
        left = [name for name in names if name not in removed]
        if not left:
            raise ClientError(
                400,
                f"tool '{names[0]}' is not allowed for this agent",
                param=_ALLOWED,
                code="tool_not_allowed",
            )
        calling["allowedFunctionNames"] = left
    if functions_left:
        config["functionCallingConfig"] = calling
    else:
        del config["functionCallingConfig"]
    if config:
        body["toolConfig"] = config
    else:
        del body["toolConfig"]


def _filter_tools(body: Body, policy: ToolPolicy) -> tuple[str, ...]:
    tools = body.get("tools")
    if not tools:
        return ()
    removed: list[str] = []
    kept = [t for t in (_filter_tool(tool, policy, removed) for tool in tools) if t]
    if not removed:
        return ()
    if kept:
        body["tools"] = kept
    else:
        del body["tools"]
    _fix_tool_config(body, removed, _has_functions(kept))
    return tuple(removed)


def prepare(body: Body, agent: Agent) -> NativePrepared:
    """The per-request policy: tools filtered, temperature defaulted, output capped."""
    body = dict(body)
    removed = _filter_tools(body, agent.tools)
    config = dict(body.get("generationConfig") or {})
    if config.get("temperature") is None and agent.temperature is not None:
        config["temperature"] = agent.temperature
    cap = agent.max_output_tokens
    if cap is not None and (config.get("maxOutputTokens") is None or config["maxOutputTokens"] > cap):
        config["maxOutputTokens"] = cap
    if config or "generationConfig" in body:
        body["generationConfig"] = config
    return NativePrepared(body=body, removed_tools=removed)


def for_cluster(prepared: NativePrepared, policy: AgentPolicy, cluster: Cluster) -> Body:
    """The per-attempt policy: the cluster's system prompt first, its limits applied."""
    body = dict(prepared.body)
    prompt = policy.system_prompt(cluster)
    if prompt:
        instruction = dict(body.get("systemInstruction") or {})
        instruction["parts"] = [{"text": prompt}, *(instruction.get("parts") or ())]
        body["systemInstruction"] = instruction
    config = body.get("generationConfig")
    if isinstance(config, dict):
        temperature = config.get("temperature")
        if temperature is not None and temperature > cluster.rules.temperature_max:
            body["generationConfig"] = {**config, "temperature": cluster.rules.temperature_max}
        count, limit = config.get("candidateCount"), cluster.rules.max_choices
        if limit is not None and count is not None and count > limit:
            raise ClientError(
                400,
                f"candidateCount must be at most {limit} for this agent's provider",
                param="generationConfig.candidateCount",
            )
    return body


def request(cluster: Cluster, body: Body, auth: AuthMaterial, *, stream: bool) -> UpstreamRequest:
    return upstream_request(cluster, body, auth, stream=stream)


def usage(raw: bytes) -> Usage | None:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    return usage_from_metadata(data.get("usageMetadata")) if isinstance(data, dict) else None
