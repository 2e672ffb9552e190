"""Reasoning: one effort scale in the OpenAI body, each provider's control out, one convention back.

- In: `reasoning_effort` (OpenAI; Responses' `reasoning.effort` is mapped to it), Anthropic
  `thinking` and Gemini `thinkingConfig` from the other ingress APIs (`effort_from_thinking`,
  `effort_from_thinking_config`). The agent's default (`model.reasoning`) applies when the
  request sets none (`default_effort`; the native paths' own defaults are in
  `reasoning_defaults`).
- Out: a budget in tokens for budget-driven models (`thinking_budget`): the effort's budget from
  the table in `compiler/table/reasoning.py` — or the agent's `budgetTokens` when the effort is the
  agent's own default — fitted to the model's documented limits and below the output cap.
- Back: reasoning text in `reasoning_content` (the field vLLM and DeepSeek use), never inside
  `content`; an agent with `expose: false` gets it stripped from every answer
  (`hide_in_completion`, `hide_in_chunks`), its reasoning tokens still counted.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from astra_sidecar.compiler.table import Agent
from astra_sidecar.compiler.table.reasoning import (
    BUDGET_BY_EFFORT,
    EFFORTS,
    effort_for_budget,
    fit_budget,
    limits_for,
)
from astra_sidecar.sidecar.protocols.base import StreamTranslator, Usage

__all__ = ["BUDGET_BY_EFFORT", "EFFORTS"]

#: Anthropic's (and Bedrock Claude's) smallest accepted budget.
ANTHROPIC_MIN_BUDGET: Final = 1024

#: The OpenAI-format field reasoning text travels in (message and delta).
REASONING_FIELD: Final = "reasoning_content"


def effort_of(body: dict[str, Any]) -> str | None:
    """The request's `reasoning_effort`, when it is one of the known levels."""
    effort = body.get("reasoning_effort")
    return effort if isinstance(effort, str) and effort in BUDGET_BY_EFFORT else None


def clamped_budget(effort: str, output_cap: int | None, *, minimum: int = 0) -> int:
    """The table budget for `effort`, below `output_cap` and at least `minimum`; 0 when it cannot fit
    (for models the reasoning table does not know)."""
    budget = BUDGET_BY_EFFORT[effort]
    if budget == 0:
        return 0
    if output_cap is not None:
        budget = min(budget, output_cap - 1)
    return budget if budget >= max(minimum, 1) else 0


# --- the agent's default ------------------------------------------------------------------------


def default_effort(agent: Agent) -> str | None:
    """The effort the agent's `model.reasoning` stands for: `effort`, else its budget's level."""
    reasoning = agent.reasoning
    if reasoning is None:
        return None
    if reasoning.effort is not None:
        return reasoning.effort
    return effort_for_budget(reasoning.budget_tokens) if reasoning.budget_tokens is not None else None


def exposes(agent: Agent) -> bool:
    return agent.reasoning is None or agent.reasoning.expose


def _wanted_budget(effort: str, agent: Agent | None) -> int:
    """The agent's `budgetTokens` for its own default effort, else the table's budget."""
    if agent is not None and agent.reasoning is not None:
        own = agent.reasoning.budget_tokens
        if own is not None and effort == default_effort(agent):
            return own
    return BUDGET_BY_EFFORT[effort]


def budget_for_effort(
    effort: str, agent: Agent | None, wire: str, model_id: str, output_cap: int | None
) -> int | None:
    """The thinking budget for `effort` on `model_id`: None where the model takes no budget
    (no reasoning control, or levels only), 0 for off."""
    limits = limits_for(wire, model_id)
    if limits is None:
        return clamped_budget(effort, output_cap)
    if limits.control != "budget":
        return None
    return fit_budget(_wanted_budget(effort, agent), limits, output_cap)


def thinking_budget(
    body: dict[str, Any], agent: Agent | None, wire: str, model_id: str, output_cap: int | None
) -> int | None:
    """The budget for an OpenAI body's `reasoning_effort` on `model_id` (None: no reasoning asked,
    or the model takes no budget; 0: off)."""
    effort = effort_of(body)
    return None if effort is None else budget_for_effort(effort, agent, wire, model_id, output_cap)


def level_for(body: dict[str, Any]) -> str | None:
    """The effort level of an OpenAI body for level-driven models (`minimal` → `low`)."""
    effort = effort_of(body)
    return "low" if effort == "minimal" else effort


# --- other ingress APIs → one effort --------------------------------------------------------------


def effort_from_thinking(thinking: Any) -> str | None:
    """Anthropic `thinking` → an effort: `disabled` → none, `enabled` → its budget's level
    (below 8192 → low, below 24576 → medium, more → high), `adaptive` → medium."""
    if not isinstance(thinking, dict):
        return None
    kind = thinking.get("type")
    if kind == "disabled":
        return "none"
    if kind == "adaptive":
        return "medium"
    budget = thinking.get("budget_tokens")
    if kind == "enabled" and isinstance(budget, int) and not isinstance(budget, bool):
        return effort_for_budget(budget)
    return None


def effort_from_thinking_config(config: Any) -> str | None:
    """Gemini `thinkingConfig` → an effort: `thinkingLevel` as it is, `thinkingBudget` 0 → none,
    -1 (dynamic) → medium, N → its level."""
    if not isinstance(config, dict):
        return None
    level = config.get("thinkingLevel")
    if isinstance(level, str) and level.lower() in BUDGET_BY_EFFORT:
        return level.lower()
    budget = config.get("thinkingBudget")
    if not isinstance(budget, int) or isinstance(budget, bool):
        return None
    return "medium" if budget < 0 else effort_for_budget(budget)


# --- expose: false --------------------------------------------------------------------------------


def _without_reasoning(holder: Any) -> bool:
    """Removes the reasoning text of a message or delta; True when there was some."""
    return isinstance(holder, dict) and holder.pop(REASONING_FIELD, None) is not None


def hide_in_completion(raw: bytes) -> bytes:
    """A whole OpenAI completion without `message.reasoning_content` (usage untouched)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    choices = data.get("choices") if isinstance(data, dict) else None
    changed = False
    for choice in choices if isinstance(choices, list) else ():
        changed |= isinstance(choice, dict) and _without_reasoning(choice.get("message"))
    return orjson.dumps(data) if changed else raw


def _hidden_chunk(payload: bytes) -> bytes | None:
    """A chunk without `delta.reasoning_content`; None when nothing else was in it."""
    try:
        chunk = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    changed, kept = False, False
    for choice in choices if isinstance(choices, list) else ():
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        changed |= _without_reasoning(delta)
        kept |= bool(delta) or choice.get("finish_reason") is not None
    if not changed:
        return payload
    return orjson.dumps(chunk) if kept or chunk.get("usage") else None


def hide_in_chunks(payloads: list[bytes]) -> list[bytes]:
    """OpenAI stream chunks without reasoning text; chunks that held only reasoning are dropped."""
    return [hidden for payload in payloads if (hidden := _hidden_chunk(payload)) is not None]


class HiddenReasoning:
    """A stream translator whose chunks lose their reasoning text (usage is the inner one's)."""

    __slots__ = ("_inner", "usage")

    def __init__(self, inner: StreamTranslator) -> None:
        self._inner = inner
        self.usage: Usage | None = None

    def feed(self, data: bytes) -> list[bytes]:
        payloads = self._inner.feed(data)
        self.usage = self._inner.usage
        return hide_in_chunks(payloads)

    def finish(self) -> list[bytes]:
        payloads = self._inner.finish()
        self.usage = self._inner.usage
        return hide_in_chunks(payloads)
