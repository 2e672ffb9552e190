"""The agent policy's accessors for Anthropic Messages bodies (`astra_sidecar.sidecar.protocols.codec.PolicyAccess`).

- Tools are filtered by `name` (server tools included); a `tool_choice` of type `tool` naming a
  removed tool → 400 `tool_not_allowed`; when no tool is left, `tools` and `tool_choice` go.
- The output cap is `max_tokens`, which the API requires: 4096 when neither the caller nor the
  agent sets one.
- A default temperature yields to `top_p` and to extended thinking (enabled or adaptive): recent
  Claude models reject temperature with either.
- The agent's prompt goes first in `system` (a string `system` becomes a text block after it),
  marked `cache_control: ephemeral` with `promptCache.systemPrompt`; with `promptCache.tools` the
  last tool is marked too, unless it already is. Marks are only added while the request has fewer
  than the API's maximum of 4 (the caller's own marks count).
- There is no `n`: one answer per request.

Every change replaces the lists it touches: the nested values of the body stay shared with the
caller's, unchanged (the per-attempt steps run again on each attempt's copy).

Reference: https://docs.anthropic.com/en/api/messages,
https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from astra_sidecar.compiler.table import Agent, PromptCache
from astra_sidecar.sidecar.errors import ClientError
from astra_sidecar.sidecar.policy import reasoning_defaults
from astra_sidecar.sidecar.protocols.anthropic.wire import DEFAULT_MAX_TOKENS, EPHEMERAL, MAX_CACHE_MARKS
from astra_sidecar.sidecar.protocols.base import Body
from astra_sidecar.sidecar.protocols.codec import PolicyAccess

Json = dict[str, Any]

_THINKING_ON = frozenset({"enabled", "adaptive"})


def _refuse_forced(choice: Any, removed: tuple[str, ...]) -> None:
    """A `tool_choice` forcing a removed tool is the caller's mistake."""
    if isinstance(choice, dict) and choice.get("type") == "tool" and choice.get("name") in removed:
        raise ClientError(
            400,
            f"tool '{choice['name']}' is not allowed for this agent",
            param="tool_choice",
            code="tool_not_allowed",
        )


def system_blocks(system: Any) -> list[Json]:
    """The caller's `system` as a list of blocks (a string becomes one text block)."""
    if isinstance(system, str):
        return [{"type": "text", "text": system}] if system else []
    return list(system or ())


def cache_marks(body: Body) -> int:
    """The `cache_control` breakpoints the caller already set (system, tools, message blocks)."""
    blocks: list[Any] = [*system_blocks(body.get("system")), *(body.get("tools") or ())]
    for message in body.get("messages") or ():
        content = message.get("content")
        for block in content if isinstance(content, list) else ():
            blocks.append(block)
            inner = block.get("content") if block.get("type") == "tool_result" else None
            blocks.extend(inner if isinstance(inner, list) else ())
    return sum(1 for block in blocks if isinstance(block, dict) and "cache_control" in block)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class AnthropicPolicyAccess:
    default_output_cap: int | None = DEFAULT_MAX_TOKENS

    def remove_tools(self, body: Body, refused: Callable[[str], bool]) -> tuple[str, ...]:
        tools = body.get("tools") or []
        kept = [tool for tool in tools if not refused(tool["name"])]
        removed = tuple(tool["name"] for tool in tools if refused(tool["name"]))
        if not removed:
            return ()
        _refuse_forced(body.get("tool_choice"), removed)
        if kept:
            body["tools"] = kept
        else:
            body.pop("tools", None)
            body.pop("tool_choice", None)
        return removed

    def temperature(self, body: Body) -> float | None:
        value = body.get("temperature")
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None

    def set_temperature(self, body: Body, value: float) -> None:
        body["temperature"] = value

    def sampling_chosen(self, body: Body) -> bool:
        thinking = body.get("thinking")
        return body.get("top_p") is not None or (
            isinstance(thinking, dict) and thinking.get("type") in _THINKING_ON
        )

    def output_cap(self, body: Body) -> int | None:
        value = body.get("max_tokens")
        return value if _is_int(value) else None

    def set_output_cap(self, body: Body, value: int) -> None:
        current = self.output_cap(body)
        body["max_tokens"] = value if current is None else min(current, value)

    def set_model(self, body: Body, model_id: str) -> None:
        body["model"] = model_id

    def add_system_prompt(self, body: Body, prompt: str | None, cache: PromptCache) -> None:
        budget = MAX_CACHE_MARKS - cache_marks(body)
        if prompt:
            block: Json = {"type": "text", "text": prompt}
            if cache.system_prompt and budget > 0:
                block["cache_control"] = dict(EPHEMERAL)
                budget -= 1
            body["system"] = [block, *system_blocks(body.get("system"))]
        tools = body.get("tools")
        if cache.tools and tools and budget > 0 and "cache_control" not in tools[-1]:
            body["tools"] = [*tools[:-1], {**tools[-1], "cache_control": dict(EPHEMERAL)}]

    def choices(self, body: Body) -> tuple[int | None, str]:
        del body
        return None, "n"

    def apply_reasoning_default(self, body: Body, agent: Agent, model_id: str) -> None:
        reasoning_defaults.anthropic_default(body, agent, model_id)


ACCESS: PolicyAccess = AnthropicPolicyAccess()
