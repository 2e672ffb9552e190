"""Responses tools → Chat Completions function tools, and function names back.

- `function` tools become function tools (`strict` kept).
- A `namespace` tool (a named group of function tools, as Codex sends its sub-agent tools:
  https://platform.openai.com/docs/api-reference/responses/create, `NamespaceToolParam`) becomes
  one function tool per member, named `{namespace}__{name}`. A call of such a function comes back
  as a `function_call` item with the member's own `name` and its `namespace`, as OpenAI answers
  it; `function_call` input items with a `namespace` go upstream under the joined name again.
- Built-in tools (`web_search`, `file_search`, `code_interpreter`, `custom`, …) have no Chat
  Completions form: only an OpenAI cluster serves them (the native path). On a translated path
  they are refused with a 400 naming the tool type; for `web_search` the message says how to
  turn it off in Codex (`web_search = "disabled"` in its config.toml).

The agent's tool policy names tools the same way (`policy_name`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from astra_sidecar.sidecar.errors import ClientError

Json = dict[str, Any]

SEPARATOR = "__"
_CODEX_HINT = (
    ' (Codex: set web_search = "disabled" in config.toml, or serve this agent from an OpenAI cluster)'
)


def flat_name(namespace: Any, name: Any) -> str:
    """The Chat Completions name of a namespaced function (just `name` without a namespace)."""
    return f"{namespace}{SEPARATOR}{name}" if namespace else str(name)


def policy_name(tool: Any) -> str | None:
    """How the agent's tool policy names a (non-namespace) tool: a function's name, else its type."""
    if not isinstance(tool, dict):
        return None
    if tool.get("type") in ("function", "custom") and isinstance(tool.get("name"), str):
        return str(tool["name"])
    kind = tool.get("type")
    return kind if isinstance(kind, str) else None


@dataclass(frozen=True, slots=True)
class ToolNames:
    """The namespaced functions of one request: joined name → (namespace, name)."""

    namespaced: dict[str, tuple[str, str]] = field(default_factory=dict)

    def original(self, chat_name: str) -> tuple[str | None, str]:
        found = self.namespaced.get(chat_name)
        return found if found is not None else (None, chat_name)


def _bad(message: str, param: str, code: str = "invalid_value") -> ClientError:
    return ClientError(400, message, param=param, code=code)


def _name(tool: Json, where: str) -> str:
    value = tool.get("name")
    if not isinstance(value, str) or not value:
        raise _bad(f"{where}.name must be a non-empty string", f"{where}.name")
    return value


def _function(tool: Json, name: str) -> Json:
    function: Json = {"name": name}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    function["parameters"] = tool.get("parameters") or {"type": "object", "properties": {}}
    if tool.get("strict") is True:
        function["strict"] = True
    return {"type": "function", "function": function}


def _builtin(kind: Any, where: str) -> ClientError:
    hint = _CODEX_HINT if kind == "web_search" else ""
    return _bad(
        f"{where}: tools of type {kind!r} are only served by OpenAI clusters; this agent's provider is "
        f"reached through Chat Completions, where only function tools exist{hint}",
        f"{where}.type",
        "unsupported_tool",
    )


def _namespace(tool: Json, where: str, names: ToolNames, translate: bool) -> list[Json]:
    namespace = _name(tool, where)
    members = tool.get("tools")
    if not isinstance(members, list) or not members:
        raise _bad(f"{where}.tools must be a non-empty array of function tools", f"{where}.tools")
    out: list[Json] = []
    for index, member in enumerate(members):
        inner = f"{where}.tools[{index}]"
        kind = member.get("type") if isinstance(member, dict) else None
        if kind != "function":
            if translate:
                raise _builtin(kind, inner)
            continue
        name = _name(member, inner)
        joined = flat_name(namespace, name)
        names.namespaced[joined] = (namespace, name)
        out.append(_function(member, joined))
    return out


def chat_tools(tools: list[Any], *, translate: bool = True) -> tuple[list[Json], ToolNames]:
    """The function tools for Chat Completions and the names to map back. With `translate`
    false (the request is only checked), built-in tools pass: a native path may serve them."""
    names = ToolNames()
    out: list[Json] = []
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "function":
            out.append(_function(tool, _name(tool, where)))
        elif kind == "namespace":
            out.extend(_namespace(tool, where, names, translate))
        elif translate or not isinstance(kind, str):
            raise _builtin(kind, where)
    seen: set[str] = set()
    for tool in out:
        name = tool["function"]["name"]
        if name in seen:
            raise _bad(f"tools: the function name '{name}' is given twice", "tools")
        seen.add(name)
    return out, names


def tool_names(tools: Any) -> ToolNames:
    """The namespaced functions of a request's `tools` (for answers)."""
    names = ToolNames()
    for tool in tools if isinstance(tools, list) else ():
        if isinstance(tool, dict) and tool.get("type") == "namespace" and isinstance(tool.get("name"), str):
            for member in tool.get("tools") or ():
                if isinstance(member, dict) and isinstance(member.get("name"), str):
                    names.namespaced[flat_name(tool["name"], member["name"])] = (tool["name"], member["name"])
    return names
