"""OpenAI `tools`, `tool_choice` and JSON mode → Anthropic `tools` and `tool_choice`.

- Tools: `parameters` → `input_schema` (default `{"type": "object", "properties": {}}`),
  `strict: true` kept; with `agent.prompt_cache.tools` the last tool gets `cache_control`.
  Custom tools and legacy `functions` → 400 (no Anthropic equivalent).
- `tool_choice`: auto → auto, none → none, required → any, named → tool, `allowed_tools` →
  the tool list filtered to the allowed names with auto/any; `parallel_tool_calls: false` →
  `disable_parallel_tool_use: true` (not on `none`, which has no such field).
- JSON mode without a schema. `json_object` (and `json_schema` without a schema) has no native
  schema-free equivalent, so it is emulated with a forced tool, `json_response`, whose input schema
  is any object: tool_choice `{"type": "tool"}` (or `{"type": "any"}` when client tools stay
  callable, so the model either calls a client tool or answers in JSON). Its input is returned as
  the message *content* (a JSON string, see `upstream_response` and `upstream_stream`), and a turn
  whose only call was `json_response` finishes with `stop`. The emulation is skipped when the
  client forces its own call (`required`, named, `allowed_tools`) or already has a tool called
  `json_response`. (`json_schema` with a schema is native: see `upstream_request`.)

Reference: https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/implement-tool-use
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from astra_sidecar.compiler.table import Agent
from astra_sidecar.sidecar.protocols.anthropic.upstream_messages import unsupported
from astra_sidecar.sidecar.protocols.anthropic.wire import EPHEMERAL

Json = dict[str, Any]

JSON_TOOL_NAME = "json_response"

_JSON_TOOL: Json = {
    "name": JSON_TOOL_NAME,
    "description": "Give your complete answer to the user as one JSON object: the input of this tool.",
    "input_schema": {"type": "object"},
}


def _client_tools(body: Json) -> list[Json]:
    tools = body.get("tools") or []
    for tool in tools:
        if tool.get("type", "function") != "function":
            raise unsupported(f"tool type {tool.get('type')!r}", param="tools")
    return list(tools)


def _tool_def(tool: Json) -> Json:
    function = tool.get("function") or {}
    spec: Json = {"name": function.get("name")}
    if function.get("description"):
        spec["description"] = function["description"]
    spec["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    if function.get("strict") is True:
        spec["strict"] = True
    return spec


def _tool_names(tools: Iterable[Json]) -> set[str]:
    return {(tool.get("function") or {}).get("name", "") for tool in tools}


def json_tool_emulated(body: Json) -> bool:
    """Whether `response_format` json_object (or a schema-less json_schema) is emulated with the
    forced `json_response` tool for this request (see the module docstring)."""
    response_format = body.get("response_format")
    if not isinstance(response_format, dict):
        return False
    kind = response_format.get("type")
    schemaless = kind == "json_schema" and not (response_format.get("json_schema") or {}).get("schema")
    if kind != "json_object" and not schemaless:
        return False
    choice = body.get("tool_choice")
    if choice == "required" or isinstance(choice, dict):
        return False
    return JSON_TOOL_NAME not in _tool_names(body.get("tools") or ())


def _allowed_tools(tools: list[Json], choice: Json) -> tuple[list[Json], str]:
    allowed = choice.get("allowed_tools") or {}
    names = {(t.get("function") or {}).get("name") for t in allowed.get("tools") or ()}
    kept = [tool for tool in tools if (tool.get("function") or {}).get("name") in names]
    return kept, "required" if allowed.get("mode") == "required" else "auto"


def _choice_type(choice: Any) -> Json:
    if choice is None or choice == "auto":
        return {"type": "auto"}
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    raise unsupported(f"tool_choice {choice!r}", param="tool_choice")


def tools_and_choice(body: Json, agent: Agent) -> tuple[list[Json], Json | None]:
    """The Anthropic tool definitions and tool_choice (none when no tool is left)."""
    tools = _client_tools(body)
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        tools, choice = _allowed_tools(tools, choice)
    specs = [_tool_def(tool) for tool in tools]
    tool_choice: Json
    if json_tool_emulated(body):
        callable_tools = bool(specs) and choice != "none"
        specs.append(dict(_JSON_TOOL))
        tool_choice = {"type": "any"} if callable_tools else {"type": "tool", "name": JSON_TOOL_NAME}
    elif specs:
        tool_choice = _choice_type(choice)
    else:
        return [], None
    if agent.prompt_cache.tools:
        specs[-1] = {**specs[-1], "cache_control": EPHEMERAL}
    if body.get("parallel_tool_calls") is False and tool_choice["type"] != "none":
        tool_choice["disable_parallel_tool_use"] = True
    return specs, tool_choice
