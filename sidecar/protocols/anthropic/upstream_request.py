"""An OpenAI chat body (the agent's policy already applied) → an Anthropic Messages request body.

The conversation is `upstream_messages`, the tools and JSON-mode emulation `upstream_tools`; here:

- `max_tokens` is required: `max_completion_tokens ?? max_tokens`, else the agent's
  `max_output_tokens`, else 4096.
- `stop` (string or list) → `stop_sequences`; `user`/`safety_identifier` → `metadata.user_id`;
  `top_k` (an extension some clients send) passes through; `top_p` is dropped when `temperature`
  is also set (recent Claude models reject the pair); `n` > 1 → 400; legacy `functions` → 400.
- `response_format` json_schema with a schema → native structured outputs,
  `output_config.format = {"type": "json_schema", "schema": ...}` (name/description/strict
  dropped: Anthropic always constrains).
- Dropped (no Anthropic equivalent): `seed`, penalties, `logprobs`/`top_logprobs`, `logit_bias`,
  `service_tier`, `store`, OpenAI `metadata`, `stream_options` (honoured locally),
  `prediction`, `modalities`, ...
- `reasoning_effort` → extended thinking (`upstream_thinking`: budget, sampling limits, the
  thinking blocks carried back in tool-call ids); without thinking, carried blocks are not sent.

Reference: https://docs.anthropic.com/en/api/messages
"""

from __future__ import annotations

from typing import Any

from astra_sidecar.compiler.table import Agent, Cluster
from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.protocols.anthropic.upstream_messages import system_and_turns, unsupported
from astra_sidecar.sidecar.protocols.anthropic.upstream_thinking import (
    THINKING_BLOCKS,
    sampling_with_thinking,
    thinking_param,
)
from astra_sidecar.sidecar.protocols.anthropic.upstream_tools import tools_and_choice
from astra_sidecar.sidecar.protocols.anthropic.wire import DEFAULT_MAX_TOKENS

Json = dict[str, Any]


def _max_tokens(body: Json, agent: Agent) -> int:
    for value in (body.get("max_completion_tokens"), body.get("max_tokens"), agent.max_output_tokens):
        if value is not None:
            return int(value)
    return DEFAULT_MAX_TOKENS


def _stop_sequences(stop: Any) -> list[str]:
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else [s for s in stop if s]


def _sampling(body: Json) -> Json:
    out: Json = {}
    if body.get("temperature") is not None:
        out["temperature"] = body["temperature"]
    elif body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    if body.get("top_k") is not None:
        out["top_k"] = body["top_k"]
    return out


def _check_unsupported(body: Json) -> None:
    if (body.get("n") or 1) > 1:
        raise ClientError(
            400, "provider claude returns one choice: n must be 1", code="unsupported_parameter", param="n"
        )
    if body.get("functions") or body.get("function_call"):
        raise unsupported("legacy functions/function_call (use tools/tool_choice)", param="functions")


def _output_config(body: Json) -> Json | None:
    response_format = body.get("response_format")
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    schema = (response_format.get("json_schema") or {}).get("schema")
    return {"format": {"type": "json_schema", "schema": schema}} if schema else None


def _json_tool_forced(tool_choice: Any) -> bool:
    return isinstance(tool_choice, dict) and tool_choice.get("type") in ("tool", "any")


def _drop_thinking(messages: list[Json]) -> None:
    """Thinking blocks carried back from an earlier turn are only sent while thinking is on."""
    for message in messages:
        content = message.get("content")
        if message.get("role") == "assistant" and isinstance(content, list):
            message["content"] = [b for b in content if b.get("type") not in THINKING_BLOCKS]


def messages_body(cluster: Cluster, agent: Agent, body: Json) -> Json:
    """The Anthropic Messages request for an OpenAI chat request (policy already applied)."""
    _check_unsupported(body)
    system, messages = system_and_turns(body.get("messages") or [], agent)
    out: Json = {"model": cluster.model_id, "max_tokens": _max_tokens(body, agent)}
    if system:
        out["system"] = system
    out["messages"] = messages
    tools, tool_choice = tools_and_choice(body, agent)
    if tools:
        out["tools"] = tools
        out["tool_choice"] = tool_choice
    forced = _json_tool_forced(tool_choice)
    thinking = None if forced else thinking_param(body, out["max_tokens"], agent, cluster.model_id)
    if thinking is not None:
        out["thinking"] = thinking
        out.update(sampling_with_thinking(_sampling(body)))
    else:
        out.update(_sampling(body))
        _drop_thinking(messages)
    stop = _stop_sequences(body.get("stop"))
    if stop:
        out["stop_sequences"] = stop
    output_config = _output_config(body)
    if output_config:
        out["output_config"] = output_config
    user_id = body.get("safety_identifier") or body.get("user")
    if user_id:
        out["metadata"] = {"user_id": str(user_id)}
    if body.get("stream"):
        out["stream"] = True
    return out
