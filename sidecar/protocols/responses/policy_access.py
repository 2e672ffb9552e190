"""The agent policy's accessors for Responses bodies (`astra_sidecar.sidecar.protocols.codec.PolicyAccess`).

- Tools are named as the translation names them (`tools.policy_name`): a function tool by its
  `name`, a function inside a `namespace` tool as `{namespace}__{name}`, a built-in tool by its
  type (`web_search`, `file_search`, …). A refused function leaves its namespace (an emptied
  namespace goes); a `tool_choice` forcing a removed tool → 400 `tool_not_allowed`; when no tool
  is left, `tools`, `tool_choice` and `parallel_tool_calls` go.
- The output cap is `max_output_tokens`; the agent's prompt goes before the caller's
  `instructions` (a blank line between them); there is no `n`.

Reference: https://platform.openai.com/docs/api-reference/responses/create
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from astra_sidecar.compiler.table import Agent, PromptCache
from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.policy import reasoning_defaults
from astra_sidecar.sidecar.protocols.base import Body
from astra_sidecar.sidecar.protocols.codec import PolicyAccess
from astra_sidecar.sidecar.protocols.responses.tools import flat_name, policy_name

Json = dict[str, Any]


def _forced(choice: Any) -> str | None:
    if not isinstance(choice, dict) or not isinstance(choice.get("name"), str):
        return None
    if choice.get("type") == "function":
        namespace = choice.get("namespace")
        return flat_name(namespace, choice["name"]) if isinstance(namespace, str) else str(choice["name"])
    return None


def _kept_namespace(tool: Json, refused: Callable[[str], bool], removed: list[str]) -> Json | None:
    kept: list[Any] = []
    for inner in tool.get("tools") or ():
        name = flat_name(tool.get("name"), inner.get("name") if isinstance(inner, dict) else None)
        if refused(name):
            removed.append(name)
        else:
            kept.append(inner)
    return {**tool, "tools": kept} if kept else None


class ResponsesPolicyAccess:
    default_output_cap: int | None = None

    def remove_tools(self, body: Body, refused: Callable[[str], bool]) -> tuple[str, ...]:
        tools = body.get("tools")
        if not isinstance(tools, list) or not tools:
            return ()
        kept: list[Any] = []
        removed: list[str] = []
        for tool in tools:
            if isinstance(tool, dict) and tool.get("type") == "namespace":
                namespace = _kept_namespace(tool, refused, removed)
                if namespace is not None:
                    kept.append(namespace)
                continue
            name = policy_name(tool)
            if name is not None and refused(name):
                removed.append(name)
            else:
                kept.append(tool)
        if not removed:
            return ()
        forced = _forced(body.get("tool_choice"))
        if forced in removed:
            raise ClientError(
                400,
                f"tool '{forced}' is not allowed for this agent",
                param="tool_choice",
                code="tool_not_allowed",
            )
        if kept:
            body["tools"] = kept
        else:
            for key in ("tools", "tool_choice", "parallel_tool_calls"):
                body.pop(key, None)
        return tuple(removed)

    def temperature(self, body: Body) -> float | None:
        value = body.get("temperature")
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None

    def set_temperature(self, body: Body, value: float) -> None:
        body["temperature"] = value

    def sampling_chosen(self, body: Body) -> bool:
        return False

    def output_cap(self, body: Body) -> int | None:
        value = body.get("max_output_tokens")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def set_output_cap(self, body: Body, value: int) -> None:
        present = self.output_cap(body)
        body["max_output_tokens"] = value if present is None else min(present, value)

    def set_model(self, body: Body, model_id: str) -> None:
        body["model"] = model_id

    def add_system_prompt(self, body: Body, prompt: str | None, cache: PromptCache) -> None:
        # OpenAI caches prompt prefixes by itself: there are no cache marks to add.
        if not prompt:
            return
        own = body.get("instructions")
        body["instructions"] = f"{prompt}\n\n{own}" if isinstance(own, str) and own else prompt

    def choices(self, body: Body) -> tuple[int | None, str]:
        return None, "n"

    def apply_reasoning_default(self, body: Body, agent: Agent, model_id: str) -> None:
        reasoning_defaults.responses_default(body, agent)


ACCESS: PolicyAccess = ResponsesPolicyAccess()
