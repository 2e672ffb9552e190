"""The agent's policy, applied to every request before it leaves the sidecar.

Per request (whatever cluster serves it):
- the body is checked (an object with a non-empty `messages` array of role-tagged objects);
- request tools (and legacy `functions`) are filtered by the agent's allow/deny lists; removed
  names are reported (tool calls in the answers are checked too: `sidecar.policy.tools`);
- `temperature` defaults to the agent's when the client sent none;
- the output cap (`max_completion_tokens` ?? `max_tokens`) is clamped to `maxOutputTokens`, and
  set to it when the client sent none.

Per attempt (the cluster may be a fallback on another provider):
- `model` becomes the cluster's modelId;
- the rendered system prompt (sandboxed Jinja2) is put first;
- temperature is clamped to the provider's range, and `n` checked against what it supports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jinja2
from jinja2 import meta

from compiler.prompts import make_environment, render_context
from compiler.table import Agent, Cluster
from sidecar.errors import ClientError
from sidecar.policy.tools import ToolGuard
from sidecar.protocols.base import Body

_TIME_VARIABLES = frozenset({"date", "now"})
_OUTPUT_CAPS = ("max_completion_tokens", "max_tokens")


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    body: Body
    removed_tools: tuple[str, ...]
    stream: bool


def check_chat_body(body: Any) -> Body:
    """The OpenAI chat body, or a 400 naming the offending field."""
    if not isinstance(body, dict):
        raise ClientError(400, "request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ClientError(400, "'messages' must be a non-empty array", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ClientError(
                400, f"messages[{index}] must be an object with a 'role'", param=f"messages[{index}]"
            )
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ClientError(400, "'model' must name an agent", param="model")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise ClientError(400, "'stream' must be a boolean", param="stream")
    for key in ("temperature", "top_p"):
        if key in body and body[key] is not None and not _is_number(body[key]):
            raise ClientError(400, f"'{key}' must be a number", param=key)
    for key in (*_OUTPUT_CAPS, "n"):
        if key in body and body[key] is not None and not _is_int(body[key]):
            raise ClientError(400, f"'{key}' must be an integer", param=key)
    if "tools" in body and body["tools"] is not None:
        _check_tools(body["tools"])
    return body


def _check_tools(tools: Any) -> None:
    """Every tool an object; a function tool (the default type) names its function."""
    if not isinstance(tools, list):
        raise ClientError(400, "'tools' must be an array", param="tools")
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise ClientError(400, f"tools[{index}] must be an object", param=f"tools[{index}]")
        function = tool.get("function")
        if tool.get("type", "function") == "function" and not (
            isinstance(function, dict) and isinstance(function.get("name"), str)
        ):
            raise ClientError(
                400,
                f"tools[{index}].function must be an object with a 'name'",
                param=f"tools[{index}].function",
            )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _tool_name(tool: Any) -> str | None:
    if isinstance(tool, dict):
        function = tool.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return str(function["name"])
        if isinstance(tool.get("name"), str):
            return str(tool["name"])
    return None


class AgentPolicy:
    """The compiled policy of one agent (its template parsed once, at table load)."""

    __slots__ = ("_prompt_cache", "_template", "_time_dependent", "agent", "tool_guard")

    def __init__(self, agent: Agent, env: jinja2.Environment | None = None) -> None:
        self.agent = agent
        #: The guard on answers' tool calls; None when the agent refuses no tool (nothing to check).
        self.tool_guard = ToolGuard(agent.id, agent.tools) if agent.tools.restrictive else None
        self._template: jinja2.Template | None = None
        self._time_dependent = False
        self._prompt_cache: dict[str, str] = {}
        if agent.system_prompt is not None:
            env = env or make_environment()
            self._template = env.from_string(agent.system_prompt)
            names = meta.find_undeclared_variables(env.parse(agent.system_prompt))
            self._time_dependent = bool(names & _TIME_VARIABLES)

    def prepare(self, body: Body) -> PreparedRequest:
        body = dict(body)
        removed = self._filter_tools(body) + self._filter_functions(body)
        agent = self.agent
        if body.get("temperature") is None and agent.temperature is not None:
            body["temperature"] = agent.temperature
        self._cap_output(body)
        return PreparedRequest(body=body, removed_tools=removed, stream=bool(body.get("stream")))

    def for_cluster(self, prepared: PreparedRequest, cluster: Cluster, now: datetime | None = None) -> Body:
        body = dict(prepared.body)
        body["model"] = cluster.model_id
        prompt = self.system_prompt(cluster, now)
        if prompt:
            body["messages"] = [{"role": "system", "content": prompt}, *body["messages"]]
        temperature = body.get("temperature")
        if temperature is not None and temperature > cluster.rules.temperature_max:
            body["temperature"] = cluster.rules.temperature_max
        choices = body.get("n")
        limit = cluster.rules.max_choices
        if limit is not None and choices is not None and choices > limit:
            raise ClientError(400, f"'n' must be at most {limit} for this agent's provider", param="n")
        return body

    def system_prompt(self, cluster: Cluster, now: datetime | None = None) -> str | None:
        if self._template is None:
            return None
        if not self._time_dependent and cluster.key in self._prompt_cache:
            return self._prompt_cache[cluster.key]
        context = render_context(self.agent, cluster, now or datetime.now(UTC))
        text = self._template.render(context)
        if not self._time_dependent:
            self._prompt_cache[cluster.key] = text
        return text

    def _filter_tools(self, body: Body) -> tuple[str, ...]:
        tools = body.get("tools")
        if not tools:
            return ()
        policy = self.agent.tools
        kept: list[Any] = []
        removed: list[str] = []
        for tool in tools:
            name = _tool_name(tool)
            if name is not None and not policy.permits(name):
                removed.append(name)
            else:
                kept.append(tool)
        if not removed:
            return ()
        _check_tool_choice(body.get("tool_choice"), removed)
        if kept:
            body["tools"] = kept
        else:
            body.pop("tools", None)
            body.pop("tool_choice", None)
            body.pop("parallel_tool_calls", None)
        return tuple(removed)

    def _filter_functions(self, body: Body) -> tuple[str, ...]:
        """The legacy `functions` list, filtered like `tools` (a forced `function_call` → 400)."""
        functions = body.get("functions")
        if not isinstance(functions, list) or not functions or not self.agent.tools.restrictive:
            return ()
        policy = self.agent.tools
        removed = [
            name for f in functions if (name := _tool_name(f)) is not None and not policy.permits(name)
        ]
        if not removed:
            return ()
        choice = body.get("function_call")
        if isinstance(choice, Mapping) and choice.get("name") in removed:
            raise ClientError(
                400,
                f"tool '{choice['name']}' is not allowed for this agent",
                param="function_call",
                code="tool_not_allowed",
            )
        kept = [f for f in functions if _tool_name(f) not in removed]
        if kept:
            body["functions"] = kept
        else:
            body.pop("functions", None)
            body.pop("function_call", None)
        return tuple(removed)

    def _cap_output(self, body: Body) -> None:
        cap = self.agent.max_output_tokens
        if cap is None:
            return
        present = [key for key in _OUTPUT_CAPS if body.get(key) is not None]
        if not present:
            body["max_completion_tokens"] = cap
        for key in present:
            if body[key] > cap:
                body[key] = cap


def _check_tool_choice(choice: Any, removed: list[str]) -> None:
    if isinstance(choice, Mapping):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else None
        if name in removed:
            raise ClientError(
                400,
                f"tool '{name}' is not allowed for this agent",
                param="tool_choice",
                code="tool_not_allowed",
            )
