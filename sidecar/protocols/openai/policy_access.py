"""The agent policy's accessors for OpenAI Chat Completions bodies (`astra_sidecar.sidecar.protocols.codec`).

Tools are filtered in `tools` and in the legacy `functions` list; forcing a removed tool
(`tool_choice` or `function_call` naming it) is a 400 `tool_not_allowed`. The output cap is
`max_completion_tokens` and/or the older `max_tokens`: each present one is capped, and
`max_completion_tokens` is set when neither is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from astra_sidecar.compiler.table import Agent, PromptCache
from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.policy import reasoning_defaults
from astra_sidecar.sidecar.protocols.base import Body
from astra_sidecar.sidecar.protocols.openai.validate import OUTPUT_CAPS


def tool_name(tool: Any) -> str | None:
    """The name of an OpenAI tool (`function.name`) or legacy function (`name`)."""
    if isinstance(tool, dict):
        function = tool.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return str(function["name"])
        if isinstance(tool.get("name"), str):
            return str(tool["name"])
    return None


def _not_allowed(name: Any, param: str) -> ClientError:
    return ClientError(400, f"tool '{name}' is not allowed for this agent", param=param, code="tool_not_allowed")


def _forced_tool(choice: Any) -> Any:
    if isinstance(choice, Mapping):
        function = choice.get("function")
        return function.get("name") if isinstance(function, Mapping) else None
    return None


def _split(items: list[Any], refused: Callable[[str], bool]) -> tuple[list[Any], list[str]]:
    kept: list[Any] = []
    removed: list[str] = []
    for item in items:
        name = tool_name(item)
        if name is not None and refused(name):
            removed.append(name)
        else:
            kept.append(item)
    return kept, removed


def _remove_from(body: Body, key: str, refused: Callable[[str], bool], *, choice_key: str) -> list[str]:
    """Filters `body[key]` (tools or functions); the keys that only make sense with them go too."""
    items = body.get(key)
    if not isinstance(items, list) or not items:
        return []
    kept, removed = _split(items, refused)
    if not removed:
        return []
    choice = body.get(choice_key)
    forced = _forced_tool(choice) if key == "tools" else (choice.get("name") if isinstance(choice, Mapping) else None)
    if forced in removed:
        raise _not_allowed(forced, choice_key)
    if kept:
        body[key] = kept
    else:
        body.pop(key, None)
        body.pop(choice_key, None)
        if key == "tools":
            body.pop("parallel_tool_calls", None)
    return removed


class OpenAIPolicyAccess:
    default_output_cap: int | None = None

    def remove_tools(self, body: Body, refused: Callable[[str], bool]) -> tuple[str, ...]:
        removed = _remove_from(body, "tools", refused, choice_key="tool_choice")
        removed += _remove_from(body, "functions", refused, choice_key="function_call")
        return tuple(removed)

    def temperature(self, body: Body) -> float | None:
        value = body.get("temperature")
        return value if isinstance(value, int | float) else None

    def set_temperature(self, body: Body, value: float) -> None:
        body["temperature"] = value

    def sampling_chosen(self, body: Body) -> bool:
        return False

    def output_cap(self, body: Body) -> int | None:
        present = [body[key] for key in OUTPUT_CAPS if body.get(key) is not None]
        return max(present) if present else None

    def set_output_cap(self, body: Body, value: int) -> None:
        present = [key for key in OUTPUT_CAPS if body.get(key) is not None]
        if not present:
            body["max_completion_tokens"] = value
        for key in present:
            body[key] = min(body[key], value)

    def set_model(self, body: Body, model_id: str) -> None:
        body["model"] = model_id

    def add_system_prompt(self, body: Body, prompt: str | None, cache: PromptCache) -> None:
        # Prompt-cache marks are the adapters' business for OpenAI bodies (`promptCache` reaches
        # them through the agent).
        if prompt:
            body["messages"] = [{"role": "system", "content": prompt}, *body["messages"]]

    def choices(self, body: Body) -> tuple[int | None, str]:
        value = body.get("n")
        return (value if isinstance(value, int) else None), "n"

    def apply_reasoning_default(self, body: Body, agent: Agent, model_id: str) -> None:
        reasoning_defaults.openai_default(body, agent)


ACCESS = OpenAIPolicyAccess()
